"""Sellers and their API keys: made by `flask sellers create` and the demo, checked by the API on every request."""

import datetime as dt
import hashlib
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing.digest import digest_due_at
from billing.errors import InvalidInput
from i18n import DEFAULT_LANGUAGE, LANGUAGES
from models import Seller

# R13: times are shown in the seller's time zone, Berlin unless the seller says otherwise.
DEFAULT_TIMEZONE = "Europe/Berlin"


def hash_api_key(key: str) -> str:
    """What is stored of a key: keys are 32 random bytes, so a fast hash is enough and the key is never kept."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_seller(
    name: str, email: str, now: dt.datetime, language: str = DEFAULT_LANGUAGE, timezone: str = DEFAULT_TIMEZONE
) -> tuple[Seller, str]:
    """A seller and its API key, shown once: only its hash is stored."""
    key = f"tr_{secrets.token_urlsafe(32)}"
    seller = Seller.create(
        name=name,
        email=email,
        language=language,
        timezone=timezone,
        api_key_hash=hash_api_key(key),
        created_at=now,
    )
    return seller, key


def change_settings(
    seller: Seller,
    now: dt.datetime,
    language: str | None = None,
    timezone: str | None = None,
    digest: bool | None = None,
) -> Seller:
    """The seller's own settings (R13, R17); what is not given stays. The next digest moves with the time zone."""
    if language is not None:
        if language not in LANGUAGES:
            raise InvalidInput("language", f"language must be one of {', '.join(LANGUAGES)}")
        seller.language = language
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("timezone", f"{timezone!r} is not an IANA time zone such as Europe/Berlin") from None
        seller.timezone = timezone
    if digest is not None:
        seller.digest = digest
    seller.digest_due_at = digest_due_at(seller, now)
    seller.save()
    return seller


def seller_by_api_key(key: str) -> Seller | None:
    """The seller whose API key this is, if any."""
    return Seller.get_or_none(Seller.api_key_hash == hash_api_key(key))
