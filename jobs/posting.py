"""Signed POSTs, Standard Webhooks style, as their receivers verify them: the collection partner's hand-offs
(R9) and the events of the sellers' own endpoints."""

import datetime as dt
import json
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks import Webhook

from billing.endpoints import NotPublic, endpoint_address, record_delivery
from models import Outbox, WebhookEndpoint


class PinnedAddress(HTTPAdapter):
    """Connects to `address` whatever the URL's name resolves to by now, and checks the TLS certificate against the
    name (requests' documented way: build_connection_pool_key_attributes)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = pool_kwargs["assert_hostname"] = host_params["host"]
        host_params["host"] = self.address
        return host_params, pool_kwargs

    def send(self, request, *args, **kwargs):
        # The connection is to the address, the request to the name (without any user:password of the URL).
        url = urlsplit(request.url)
        request.headers["Host"] = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
        return super().send(request, *args, **kwargs)


def signed_post(url: str, secret: str, message_id: str, payload: dict, address: str | None = None) -> str | None:
    """POST `payload` signed with `secret`, to `address` when given (else wherever the name resolves); None once
    the receiver accepted it (2xx), else the reason it did not. The same `message_id` goes with every try, so that
    the receiver can drop a repeat."""
    body = json.dumps(payload, sort_keys=True)
    now = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }
    try:
        with requests.Session() as session:
            if address is not None:
                session.mount(url, PinnedAddress(address))
            # No redirect followed: a receiver's 307 would send the signed body wherever it pointed, inside
            # Tranche's own network too (billing.endpoints.endpoint_address), and a 3xx is no 2xx.
            response = session.post(url, data=body.encode(), headers=headers, timeout=10, allow_redirects=False)
    except requests.RequestException as error:
        return f"{type(error).__name__}: {error}"
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:200]}"


def post_to_partner(settings, message_id: str, payload: dict) -> str | None:
    if not settings.collection_partner_url:
        return "COLLECTION_PARTNER_URL is not set"
    return signed_post(settings.collection_partner_url, settings.collection_partner_secret, message_id, payload)


def deliver_to_endpoint(message: Outbox, now: dt.datetime, *, public_only: bool) -> bool:
    """Send one event its caller claimed (Outbox.claim_due) to the seller's endpoint; True once accepted. Its
    webhook-id is the outbox row's, the same on every try. It goes to the address the name resolves to now, checked
    to be public with `public_only` (production): an endpoint inside a private network gets nothing, a failed try."""
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == int(message.recipient))
    if endpoint is None or endpoint.disabled_at is not None:
        gone = "removed" if endpoint is None else "disabled"
        Outbox.record_sent(message.id, now, f"not sent: the endpoint was {gone}")
        return False
    try:
        address = endpoint_address(endpoint.url, public_only=public_only)
    except NotPublic as refusal:
        error: str | None = f"not sent: {refusal}"
    else:
        error = signed_post(endpoint.url, endpoint.secret, f"msg_{message.id}", message.context, address)
    record_delivery(message, endpoint, error, now)
    return error is None
