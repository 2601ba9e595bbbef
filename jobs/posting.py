"""Signed POSTs, Standard Webhooks style, as their receivers verify them: the collection partner's hand-offs
(R9) and the events of the sellers' own endpoints."""

import datetime as dt
import json

import requests
from standardwebhooks import Webhook

from billing.endpoints import not_public, record_delivery
from models import Outbox, WebhookEndpoint


def signed_post(url: str, secret: str, message_id: str, payload: dict) -> str | None:
    """POST `payload` signed with `secret`; None once the receiver accepted it (2xx), else the reason it did not.
    The same `message_id` goes with every try, so that the receiver can drop a repeat."""
    body = json.dumps(payload, sort_keys=True)
    now = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }
    try:
        # No redirect followed: a receiver's 307 would send the signed body wherever it pointed, inside Tranche's
        # own network too (billing.endpoints.not_public), and a 3xx is no 2xx.
        response = requests.post(url, data=body.encode(), headers=headers, timeout=10, allow_redirects=False)
    except requests.RequestException as error:
        return f"{type(error).__name__}: {error}"
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:200]}"


def post_to_partner(settings, message_id: str, payload: dict) -> str | None:
    if not settings.collection_partner_url:
        return "COLLECTION_PARTNER_URL is not set"
    return signed_post(settings.collection_partner_url, settings.collection_partner_secret, message_id, payload)


def deliver_to_endpoint(message: Outbox, now: dt.datetime, *, public_only: bool) -> bool:
    """Send one event its caller claimed (Outbox.claim_due) to the seller's endpoint; True once accepted. Its
    webhook-id is the outbox row's, the same on every try; `public_only` (production) sends nothing to an endpoint
    whose name resolves inside a private network now, and counts that as a failed try."""
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == int(message.recipient))
    if endpoint is None or endpoint.disabled_at is not None:
        gone = "removed" if endpoint is None else "disabled"
        Outbox.update(sent_at=now, claimed_until=None, last_error=f"not sent: the endpoint was {gone}").where(
            Outbox.id == message.id
        ).execute()
        return False
    error = not_public(endpoint.url) if public_only else None
    if error is None:
        error = signed_post(endpoint.url, endpoint.secret, f"msg_{message.id}", message.context)
    else:
        error = f"not sent: {error}"
    record_delivery(message, endpoint, error, now)
    return error is None
