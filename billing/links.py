"""Signed links: one itsdangerous salt per purpose, an action field the page checks, key rotation.

The payload is readable by anyone holding the link, so it carries ids only, never personal data.
A link expires with what it acts on; whether it was already used is the database's to say (the change's
status, the installment's), so the page checks that after `verify`.
"""

import datetime as dt
import hashlib
import re
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from billing.plan_changes import CONFIRMATION_WINDOW
from config import Settings

CARD_UPDATE = "card-update"
PLAN_CHANGE = "plan-change"
FORM = "form"

# What each link acts on bounds its life: a plan change is open for its confirmation window (R4); a card link serves
# the whole dunning ladder (14 days) and the seller's renewal after it.
MAX_AGE = {
    PLAN_CHANGE: CONFIRMATION_WINDOW,
    CARD_UPDATE: dt.timedelta(days=30),
    # A page's form may sit open a while, but not be replayed days later.
    FORM: dt.timedelta(hours=12),
}
# The customer pages' paths whose last part is a link token: whoever reads it may act as the customer.
LINKED_PATH = re.compile(r"(/(?:card|confirm)/)[^/?#\s\"']+")
# The ids each purpose's payload must carry, as integers.
_IDS = {PLAN_CHANGE: ("order", "change"), CARD_UPDATE: ("order", "installment"), FORM: ()}


class LinkInvalid(Exception):
    """Not a link we signed: forged, tampered with, truncated, or made for another purpose."""


class LinkExpired(Exception):
    """A genuine link, older than what it acts on allows; `payload` says what it was for."""

    def __init__(self, payload: dict[str, Any]):
        super().__init__("link expired")
        self.payload = payload


class _ClockSigner(TimestampSigner):
    """A timestamp signer that reads the time it is given, so links are signed and checked at `now`."""

    def __init__(self, *args: Any, now: dt.datetime | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.now = now

    def get_timestamp(self) -> int:
        return int(self.now.timestamp()) if self.now else super().get_timestamp()


def _serializer(secret_keys: tuple[str, ...], purpose: str, now: dt.datetime | None = None) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts all: rotation appends the new key.
    return URLSafeTimedSerializer(
        list(secret_keys), salt=f"tranche.{purpose}", signer=_ClockSigner, signer_kwargs={"now": now}
    )


def sign(settings: Settings, purpose: str, now: dt.datetime | None = None, **ids: object) -> str:
    return _serializer(settings.secret_keys, purpose, now).dumps({"action": purpose, **ids})


def verify(settings: Settings, token: str, purpose: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The payload of a link signed for `purpose`; LinkExpired past its age, LinkInvalid for anything else."""
    serializer = _serializer(settings.secret_keys, purpose, now)
    try:
        payload = serializer.loads(token, max_age=int(MAX_AGE[purpose].total_seconds()))
    except SignatureExpired as expired:
        # The signature is ours, only old: its payload is trustworthy enough to pick the page's language.
        try:
            payload = serializer.load_payload(expired.payload or b"")
        except BadData:
            raise LinkInvalid() from None
        raise LinkExpired(_checked(payload, purpose)) from None
    except BadData:
        raise LinkInvalid() from None
    return _checked(payload, purpose)


def _checked(payload: object, purpose: str) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("action") != purpose:
        raise LinkInvalid()
    for key in _IDS[purpose]:
        if type(payload.get(key)) is not int:
            raise LinkInvalid()
    return payload


def card_update_link(settings: Settings, order_id: int, installment: int, now: dt.datetime | None = None) -> str:
    token = sign(settings, CARD_UPDATE, now, order=order_id, installment=installment)
    return f"{settings.public_url}/card/{token}"


def plan_change_link(
    settings: Settings, change_id: int, order_id: int, new_amount: str, now: dt.datetime | None = None
) -> str:
    token = sign(settings, PLAN_CHANGE, now, order=order_id, change=change_id, amount=new_amount)
    return f"{settings.public_url}/confirm/{token}"


def _fingerprint(link_token: str) -> str:
    return hashlib.sha256(link_token.encode()).hexdigest()[:32]


def form_token(settings: Settings, link_token: str, now: dt.datetime | None = None) -> str:
    """The hidden field of a page's form: proves a POST comes from a page we served for this very link."""
    return sign(settings, FORM, now, link=_fingerprint(link_token))


def form_token_valid(settings: Settings, link_token: str, value: str, now: dt.datetime | None = None) -> bool:
    try:
        payload = verify(settings, value or "", FORM, now)
    except (LinkInvalid, LinkExpired):
        return False
    return payload.get("link") == _fingerprint(link_token)


def mask_link_tokens(text: str) -> str:
    """`text` with every link token in a page's path replaced by an ellipsis: `/card/…`."""
    return LINKED_PATH.sub(r"\1…", text)
