"""The gateway event format of SPEC.md, read strictly into a charge outcome."""

import datetime as dt
import json
import re
from decimal import Decimal

from billing.charging import Outcome
from billing.money import CENT

EVENT_TYPES = ("payment.failed", "payment.succeeded")
_AMOUNT = re.compile(r"^\d{1,9}(\.\d{1,2})?$")


class InvalidEvent(ValueError):
    """The body is not a gateway event Tranche understands; the message names the field."""


class UnsupportedEventType(InvalidEvent):
    pass


def _positive_int(data: dict, name: str) -> int:
    value = data.get(name)
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidEvent(f"data.{name} must be a positive whole number")
    return value


def _text(data: dict, name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    # NUL: PostgreSQL cannot store it, so the event's job would fail on every try.
    if not isinstance(value, str) or not value or len(value) > 500 or "\x00" in value:
        raise InvalidEvent(f"data.{name} must be a non-empty string of at most 500 characters, without NUL")
    return value


def parse_outcome(body: str | bytes) -> Outcome:
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep to be an event
        raise InvalidEvent("the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise InvalidEvent("the body must be an object with 'type' and 'data'")
    if event.get("type") not in EVENT_TYPES:
        raise UnsupportedEventType(f"unsupported event type {event.get('type')!r}: expected one of {EVENT_TYPES}")
    data = event["data"]
    amount = data.get("amount")
    if not isinstance(amount, (str, int)) or isinstance(amount, bool) or not _AMOUNT.match(str(amount)):
        raise InvalidEvent('data.amount must be a decimal like "30.00"')
    currency = _text(data, "currency", required=True)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidEvent("data.currency must be a three-letter ISO code like EUR")
    if data.get("method") not in ("card", "sepa"):
        raise InvalidEvent("data.method must be 'card' or 'sepa'")
    try:
        occurred_at = dt.datetime.fromisoformat(_text(data, "occurred_at", required=True))
    except ValueError:
        raise InvalidEvent("data.occurred_at must be an ISO 8601 time") from None
    if occurred_at.tzinfo is None:
        raise InvalidEvent("data.occurred_at must carry its UTC offset")
    succeeded = event["type"] == "payment.succeeded"
    return Outcome(
        succeeded=succeeded,
        order_id=_positive_int(data, "order_id"),
        installment=_positive_int(data, "installment"),
        occurred_at=occurred_at.astimezone(dt.UTC),
        reference=_text(data, "reference"),
        failure_code=None if succeeded else (_text(data, "failure_code") or "unknown"),
        failure_message=None if succeeded else _text(data, "failure_message"),
        amount=Decimal(str(amount)).quantize(CENT),
        currency=currency,
    )
