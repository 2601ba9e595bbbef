"""The Slack routes of the Flask app: POST /slack/events, and the OAuth install pages when OAuth is set up."""

from flask import Blueprint, request
from slack_bolt.adapter.flask.handler import to_bolt_request, to_flask_response
from slack_sdk.signature import SignatureVerifier

from billing.workspaces import INSTALL_PATH
from bot.bolt import bolt_app
from bot.linking import REDIRECT_PATH
from runtime import settings

bp = Blueprint("slack", __name__)


def _bolt():
    app = bolt_app(settings())
    if app is None:
        return None, ("Slack is not configured on this server.", 404, {"Content-Type": "text/plain"})
    return app, None


@bp.post("/slack/events")
def events():
    app, off = _bolt()
    if off:
        return off
    # Checked here on the raw bytes before bolt parses the body: a forged, stale or garbled request is a 401,
    # and nothing runs. Bolt does not check again (bot/bolt.py).
    verifier = SignatureVerifier(settings().slack_signing_secret)
    try:
        valid = verifier.is_valid(
            request.get_data(),
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
        )
    except ValueError:  # a timestamp that is not a number
        valid = False
    if not valid:
        return {"error": "invalid or stale signature"}, 401
    try:
        bolt_request = to_bolt_request(request)
    except ValueError:  # signed, yet not a body Slack sends (a payload that is not JSON)
        return {"error": "malformed body"}, 400
    return to_flask_response(app.dispatch(bolt_request))


@bp.get(INSTALL_PATH)
def install():
    app, off = _bolt()
    if off or app.oauth_flow is None:
        return off or ("Slack OAuth is not configured (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET).", 404)
    return to_flask_response(app.oauth_flow.handle_installation(to_bolt_request(request)))


@bp.get(REDIRECT_PATH)
def oauth_redirect():
    app, off = _bolt()
    if off or app.oauth_flow is None:
        return off or ("Slack OAuth is not configured (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET).", 404)
    return to_flask_response(app.oauth_flow.handle_callback(to_bolt_request(request)))
