"""POST /webhooks/gateway: Standard Webhooks verification, stored once by webhook-id, then a job."""

from flask import Blueprint, Response, request

from billing.charging import store_event
from config import gateway_webhook_secret
from runtime import touched, utcnow
from webhooks.answers import accepted, refused
from webhooks.events import InvalidEvent, checked_text, event_text, parse_outcome
from webhooks.signatures import signature_error

bp = Blueprint("webhooks", __name__)
GATEWAY = "gateway"


@bp.post("/webhooks/gateway")
def gateway_event() -> tuple[Response, int]:
    try:
        # Decoded first: the signature library would decode it too, and call a non-UTF-8 body a bad signature.
        body = event_text(request.get_data())
    except InvalidEvent as error:
        return refused(GATEWAY, 400, error.code, str(error))
    unsigned = signature_error(gateway_webhook_secret(), body)
    if unsigned is not None:
        return refused(GATEWAY, 401, "bad_signature", f"signature rejected: {unsigned}")
    try:
        webhook_id = checked_text(request.headers["webhook-id"], "the webhook-id header")
        outcome = parse_outcome(body)
    except InvalidEvent as error:
        return refused(GATEWAY, 400, error.code, str(error))
    touched(order=outcome.order_id)
    event_type = "payment.succeeded" if outcome.succeeded else "payment.failed"
    stored = store_event(webhook_id, event_type, body, utcnow())
    return accepted(GATEWAY, "stored" if stored else "duplicate", webhook_id=webhook_id)
