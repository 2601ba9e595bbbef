"""create_app(): configuration, blueprints and CLI commands of the Tranche web app."""

import logging
import re
import uuid

from flask import Flask, Response, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from models import db
from ops.readiness import readiness, ready
from pages.rendering import render
from runtime import database, logged, redis_connection, settings, touched

# A caller's own request id is kept (a proxy's X-Request-Id) when it looks like one; else one is made.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
log = logging.getLogger(__name__)  # not "tranche": that is the Slack app's logger, which slack-bolt sets to WARNING

ABOUT = (
    "Tranche keeps the installment plans and subscriptions of digital-product sellers paid: it charges each "
    "installment, retries failed card debits, emails customers signed links to confirm a new amount or update "
    "their card, and tells sellers on Slack or by email."
)


def create_app() -> Flask:
    """The web app, configured from the environment (config.Settings)."""
    settings().check()  # GATEWAY=stripe without its keys refuses to start, naming the one missing
    app = Flask(__name__)
    database()

    @app.before_request
    def _open_connection():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        # The request's one log line (runtime.logged), written when the request ends; link tokens hidden.
        g.log_line = logged(log, "request", request_id=g.request_id, method=request.method, path=request.path)
        g.log_fields = g.log_line.__enter__()
        touched(order=(request.view_args or {}).get("order_id"))
        # A context rather than connect(): work run inline nests inside it without closing it.
        g.db_context = db.connection_context()
        g.db_context.__enter__()

    @app.after_request
    def _answered(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if "log_fields" in g:
            g.log_fields.update(status=response.status_code, failed=response.status_code >= 500)
        return response

    @app.teardown_request
    def _close_connection(_exc):
        context = g.pop("db_context", None)
        if context is not None:
            context.__exit__(None, None, None)
        line = g.pop("log_line", None)
        if line is not None:
            line.__exit__(None, None, None)

    @app.get("/")
    def front_page():
        """What Tranche is and where its API is described: a page, or JSON to a client that prefers it."""
        about = {
            "name": "Tranche",
            "description": ABOUT,
            "api": url_for("api.openapi_document"),
            "health": url_for("healthz"),
        }
        if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
            return jsonify(about)
        return Response(render("front.html", "en", about=about, seller=None), mimetype="text/html")

    @app.get("/healthz")
    def healthz():
        checks = {}
        try:
            db.execute_sql("SELECT 1")
            checks["database"] = "ok"
        except Exception as error:  # noqa: BLE001 — any failure means "not reachable"
            checks["database"] = f"unreachable: {type(error).__name__}"
        try:
            redis_connection().ping()
            checks["redis"] = "ok"
        except Exception as error:  # noqa: BLE001
            checks["redis"] = f"unreachable: {type(error).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503

    @app.get("/readyz")
    def readyz():
        """Ready to work: the database, Redis, the schema, a worker and the tick; 503 naming what is not."""
        checks = readiness()
        is_ready = ready(checks)
        return jsonify(status="ready" if is_ready else "not ready", **checks), 200 if is_ready else 503

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        # API clients get JSON for unknown paths and methods too, not Flask's HTML page.
        if request.path.startswith("/api/"):
            code = error.name.lower().replace(" ", "_")
            response = jsonify(error={"code": code, "message": error.description})
            # The exception's own headers, but its HTML type: a 405 says which methods are allowed (Allow).
            response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
            return response, error.code
        return error

    from api import bp as api_bp
    from bot.web import bp as slack_bp
    from cli import register_commands
    from ops import bp as ops_bp
    from ops.dashboard import PATH, queue_dashboard
    from pages.views import bp as pages_bp
    from webhooks.gateway import bp as webhooks_bp
    from webhooks.stripe import bp as stripe_webhooks_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(stripe_webhooks_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(slack_bp)
    app.register_blueprint(ops_bp)
    if not settings().production:
        from webhooks.inbox import bp as inbox_bp

        app.register_blueprint(inbox_bp)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PATH: queue_dashboard()})
    register_commands(app)
    return app
