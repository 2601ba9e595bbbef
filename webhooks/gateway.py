"""POST /webhooks/gateway: Standard Webhooks verification, stored once by webhook-id, then a job."""

import binascii

from flask import Blueprint, jsonify, request
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from jobs import database, settings, utcnow
from jobs.work import wake_event_processor
from models import GatewayEvent, transaction
from webhooks.events import InvalidEvent, parse_outcome

bp = Blueprint("webhooks", __name__)


def _error(status: int, message: str):
    return jsonify(error=message), status


@bp.post("/webhooks/gateway")
def gateway_event():
    raw = request.get_data()
    try:
        # json_parse=False: the library would parse after verifying, turning a signed malformed body into a 401.
        Webhook(settings().gateway_webhook_secret).verify(raw, dict(request.headers), json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error) as error:
        # The library lets malformed headers escape as ValueError or binascii.Error: all mean "not signed by us".
        return _error(401, f"signature rejected: {error}")
    try:
        outcome = parse_outcome(raw)
    except InvalidEvent as error:
        return _error(400, str(error))
    webhook_id = request.headers["webhook-id"][:255]
    with transaction():
        stored = (
            GatewayEvent.insert(
                webhook_id=webhook_id,
                type="payment.succeeded" if outcome.succeeded else "payment.failed",
                body=raw.decode(),
                received_at=utcnow(),
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        if stored:
            database().after_commit(wake_event_processor)
    return jsonify(status="stored" if stored else "duplicate", webhook_id=webhook_id), 200
