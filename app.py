"""create_app(): configuration, blueprints and CLI commands of the Tranche web app."""

from flask import Flask, Response, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from billing.links import HIDE_LINK_TOKENS
from models import db
from pages.rendering import render
from runtime import database, redis_connection, settings

ABOUT = (
    "Tranche keeps the installment plans and subscriptions of digital-product sellers paid: it charges each "
    "installment, retries failed card debits, emails customers signed links to confirm a new amount or update "
    "their card, and tells sellers on Slack or by email."
)


def create_app() -> Flask:
    """The web app, configured from the environment (config.Settings)."""
    settings().check()  # GATEWAY=stripe without its keys refuses to start, naming the one missing
    app = Flask(__name__)
    # Flask logs an unexpected error with the request's path, which may be a customer's link.
    app.logger.addFilter(HIDE_LINK_TOKENS)
    database()

    @app.before_request
    def _open_connection():
        # A context rather than connect(): work run inline nests inside it without closing it.
        g.db_context = db.connection_context()
        g.db_context.__enter__()

    @app.teardown_request
    def _close_connection(_exc):
        context = g.pop("db_context", None)
        if context is not None:
            context.__exit__(None, None, None)

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
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PATH: queue_dashboard()})
    register_commands(app)
    return app
