"""POST /dev/webhook-inbox, outside production only: a seller's system to point a webhook endpoint at (the demo's
endpoint is this one). Each delivery is verified as the seller's system would, with the secret of an endpoint
registered at this address, and kept in WEBHOOK_INBOX_DIR (var/webhook-inbox/) as one JSON file named by its
webhook-id, with its webhook-* headers (a repeat overwrites its first copy), as emails without SMTP_URL are kept
in var/outbox/."""

import json
import re

from flask import Blueprint, Response, request

from models import WebhookEndpoint
from runtime import settings
from webhooks.answers import accepted, refused
from webhooks.events import InvalidEvent, event_text
from webhooks.signatures import signature_error

bp = Blueprint("webhook_inbox", __name__)
PATH = "/dev/webhook-inbox"
INBOX = "webhook-inbox"
# It names the file: nothing that could climb out of the folder.
WEBHOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


@bp.post(PATH)
def receive() -> tuple[Response, int]:
    try:
        body = event_text(request.get_data())
    except InvalidEvent as error:
        return refused(INBOX, 400, error.code, str(error))
    webhook_id = request.headers.get("webhook-id", "")
    if not WEBHOOK_ID.fullmatch(webhook_id):
        return refused(INBOX, 400, InvalidEvent.code, "the webhook-id header must be 1 to 100 letters, digits, _ or -")
    if all(signature_error(endpoint.secret, body) for endpoint in _registered_here()):
        return refused(INBOX, 401, "bad_signature", f"signed by no endpoint registered at {request.base_url}")
    try:
        payload = json.loads(body)
    except ValueError:
        return refused(INBOX, 400, InvalidEvent.code, "the body must be JSON")
    inbox = settings().webhook_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    signature = {name: value for name, value in request.headers.items() if name.lower().startswith("webhook-")}
    kept = {"webhook-id": webhook_id, "headers": signature, "payload": payload}
    (inbox / f"{webhook_id}.json").write_text(json.dumps(kept, indent=2, sort_keys=True))
    return accepted(INBOX, "stored", webhook_id=webhook_id)


def _registered_here() -> list[WebhookEndpoint]:
    """The endpoints registered at this address: several sellers may point one here."""
    return list(WebhookEndpoint.select(WebhookEndpoint.secret).where(WebhookEndpoint.url == request.base_url))
