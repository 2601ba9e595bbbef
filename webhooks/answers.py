"""What the webhook routes answer, in the API's error shape so that one client reads every surface's errors; each
answer is counted by gateway (the route's last part) and result (metrics.WEBHOOKS)."""

from flask import Response, jsonify

from metrics import WEBHOOKS


def accepted(gateway: str, result: str, **ids: str) -> tuple[Response, int]:
    """200 with `result` (stored, duplicate, ignored): the sender may forget the event."""
    WEBHOOKS.labels(gateway, result).inc()
    return jsonify(status=result, **ids), 200


def refused(gateway: str, status: int, code: str, message: str) -> tuple[Response, int]:
    """`status` (400 malformed, 401 bad signature) with the error's `code`, which is also its result."""
    WEBHOOKS.labels(gateway, code).inc()
    return jsonify(error={"code": code, "message": message}), status
