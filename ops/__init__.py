"""The operators' surfaces: GET /metrics for Prometheus (METRICS_TOKEN as a bearer token when set), and the queue
dashboard under /ops/rq (ops.dashboard, behind OPS_PASSWORD)."""

import hmac

from flask import Blueprint, Response, request

from metrics import exposition
from runtime import settings, utcnow, work_queues

bp = Blueprint("ops", __name__)


def secret_matches(given: str | None, secret: str) -> bool:
    """Whether `given` is `secret`, compared in constant time: how long the answer takes tells nothing of it."""
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


@bp.get("/metrics")
def metrics_text() -> Response:
    token = settings().metrics_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and not (scheme.lower() == "bearer" and secret_matches(given.strip(), token)):
        return Response(
            "Send METRICS_TOKEN as 'Authorization: Bearer <token>'.\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="tranche metrics"'},
            mimetype="text/plain",
        )
    body, content_type = exposition(utcnow, work_queues(), request.headers.get("Accept"))
    return Response(body, content_type=content_type)
