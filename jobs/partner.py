"""The collection partner's end of R9: a signed POST, Standard Webhooks style, as the partner verifies it."""

import datetime as dt
import json

import requests
from standardwebhooks import Webhook


def post_to_partner(settings, message_id: str, payload: dict) -> str | None:
    """POST `payload`; None once the partner accepted it (2xx), else the reason it did not."""
    if not settings.collection_partner_url:
        return "COLLECTION_PARTNER_URL is not set"
    body = json.dumps(payload, sort_keys=True)
    now = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(settings.collection_partner_secret).sign(message_id, now, body),
    }
    try:
        response = requests.post(settings.collection_partner_url, data=body.encode(), headers=headers, timeout=10)
    except requests.RequestException as error:
        return f"{type(error).__name__}: {error}"
    return None if response.ok else f"HTTP {response.status_code}: {response.text[:200]}"
