"""The sellers' webhook endpoints (SPEC): registered by the seller, told of each event in the transaction of its
fact (billing.notifications writes one outbox row per endpoint), retried with exponential backoff for 3 days,
then disabled, and the seller told."""

import base64
import datetime as dt
import ipaddress
import secrets
import socket
from urllib.parse import urlsplit

from billing import notifications
from billing.errors import InvalidInput, NotFound
from billing.retries import Backoff
from billing.values import identifier
from models import Outbox, Seller, WebhookEndpoint, transaction

# 1, 2, 4 … minutes apart, at most 12 hours: 12 tries over the 3 days an endpoint may fail before it is disabled.
ENDPOINT_RETRIES = Backoff(first=dt.timedelta(minutes=1), longest=dt.timedelta(hours=12))
DISABLED_AFTER = dt.timedelta(days=3)


class NotPublic(Exception):
    """An endpoint's host is not on the internet; the message says so without naming what it resolved to."""


def register_endpoint(seller: Seller, url: str, now: dt.datetime, *, public_only: bool) -> WebhookEndpoint:
    """A new endpoint of `seller`'s, with the whsec_ secret its deliveries are signed with (Standard Webhooks);
    `public_only` (production) refuses one that is not on the internet (InvalidInput naming url)."""
    if public_only:
        try:
            endpoint_address(url, public_only=True)
        except NotPublic as refusal:
            raise InvalidInput("url", f"{refusal}: an endpoint must be reachable on the internet.") from None
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return WebhookEndpoint.create(seller=seller, url=url, secret=secret, created_at=now)


def endpoint_address(url: str, *, public_only: bool) -> str:
    """The address to POST to `url` at, resolved once: the caller connects to it, not to the name again, so that
    a name answering a public address here and an inside one a moment later (DNS rebinding) gains nothing.
    `public_only` (production): NotPublic unless every address of the host is on the internet, since a loopback,
    private or link-local one (the cloud's metadata service) would let a seller make Tranche POST inside its own
    network; asked before each delivery too, since a name may point elsewhere later."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):  # socket.gaierror, and EAI_SYSTEM's plain OSError; a name IDNA refuses
        raise NotPublic(f"{host} resolves to no address") from None
    # An IPv6 address may carry its %interface.
    if public_only and not all(ipaddress.ip_address(address.split("%")[0]).is_global for address in addresses):
        # Not which address: the seller would learn what Tranche's network calls its own hosts.
        raise NotPublic(f"{host} is not a public address")
    return addresses[0]


def remove_endpoint(seller: Seller, ref: str) -> None:
    """The endpoint numbered `ref` hears of nothing more; what was written for it is dropped."""
    endpoint_id = identifier(ref.strip())
    with transaction():
        removed = endpoint_id is not None and (
            WebhookEndpoint.delete()  # type: ignore[misc, unused-ignore]  # as in billing.collections
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.seller == seller)
            .execute()
        )
        if not removed:
            raise NotFound(f"You have no webhook endpoint {ref.strip()}.")
        Outbox.update(sent_at=Outbox.created_at, last_error="not sent: the endpoint was removed").where(
            Outbox.channel == Outbox.WEBHOOK, Outbox.recipient == str(endpoint_id), Outbox.sent_at.is_null()
        ).execute()


def record_delivery(message: Outbox, endpoint: WebhookEndpoint, error: str | None, now: dt.datetime) -> None:
    """After one POST: delivered (a 2xx), or tried again later; an endpoint failing for DISABLED_AFTER is
    disabled, its waiting events dropped, and the seller told."""
    with transaction():
        if error is None:
            Outbox.record_sent(message.id, now)
            WebhookEndpoint.update(failing_since=None).where(WebhookEndpoint.id == endpoint.id).execute()
            return
        failing_since = endpoint.failing_since or now
        if now - failing_since >= DISABLED_AFTER:
            _disable(endpoint, error, now)
            return
        WebhookEndpoint.update(failing_since=failing_since).where(WebhookEndpoint.id == endpoint.id).execute()
        next_try_at = ENDPOINT_RETRIES.next_try(message.attempts, now)
        assert next_try_at is not None, "ENDPOINT_RETRIES has no bound: an endpoint failing too long is disabled"
        Outbox.record_failure(message.id, next_try_at, error)


def _disable(endpoint: WebhookEndpoint, error: str, now: dt.datetime) -> None:
    disabled = (
        WebhookEndpoint.update(disabled_at=now)
        .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.disabled_at.is_null())
        .execute()
    )
    dropped = f"not sent: the endpoint was disabled ({error})"[:2000]
    waiting = (Outbox.channel == Outbox.WEBHOOK) & (Outbox.recipient == str(endpoint.id)) & Outbox.sent_at.is_null()
    Outbox.update(sent_at=now, claimed_until=None, last_error=dropped).where(waiting).execute()
    if disabled:
        notifications.seller_endpoint_disabled(WebhookEndpoint.get_by_id(endpoint.id), error, now)
