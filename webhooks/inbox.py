"""POST /dev/webhook-inbox, outside production only: a seller's system to point a webhook endpoint at (the demo's
endpoint is this one). Each delivery is verified as the seller's system would, with the secret of an endpoint
registered at this address, and kept in WEBHOOK_INBOX_DIR (var/webhook-inbox/) as one JSON file named by its
webhook-id (a repeat overwrites its first copy), as emails without SMTP_URL are kept in var/outbox/."""

import binascii
import json
import re

from flask import Blueprint, Response, request
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from models import WebhookEndpoint
from runtime import settings
from webhooks.answers import refused
from webhooks.events import InvalidEvent, event_text

bp = Blueprint("webhook_inbox", __name__)
PATH = "/dev/webhook-inbox"
INBOX = "webhook-inbox"
# It names the file: nothing that could climb out of the folder.
WEBHOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


@bp.post(PATH)
def receive() -> Response | tuple[Response, int]:
    try:
        body = event_text(request.get_data())
    except InvalidEvent as error:
        return refused(INBOX, 400, error.code, str(error))
    webhook_id = request.headers.get("webhook-id", "")
    if not WEBHOOK_ID.fullmatch(webhook_id):
        return refused(INBOX, 400, InvalidEvent.code, "the webhook-id header must be 1 to 100 letters, digits, _ or -")
    registered = WebhookEndpoint.select(WebhookEndpoint.secret).where(WebhookEndpoint.url == request.base_url)
    for endpoint in registered:
        try:
            payload = Webhook(endpoint.secret).verify(body, dict(request.headers))
        except (WebhookVerificationError, ValueError, binascii.Error):
            continue  # another seller's endpoint at this address, maybe
        inbox = settings().webhook_inbox_dir
        inbox.mkdir(parents=True, exist_ok=True)
        kept = {"webhook-id": webhook_id, "headers": dict(request.headers), "payload": payload}
        (inbox / f"{webhook_id}.json").write_text(json.dumps(kept, indent=2, sort_keys=True))
        return Response(status=204)
    return refused(INBOX, 401, "bad_signature", f"signed by no endpoint registered at {request.base_url}")
