"""The gateway event format of SPEC.md, read strictly into a charge outcome.

Whatever passes here can be stored and applied: every text fits its column, every id its integer, every
time the range the rules add days to. An event refused later, by the job, would wait there for an operator.
"""

import datetime as dt
import json

from billing.charging import Outcome
from billing.errors import InvalidInput
from billing.money import currency_code, parse_amount
from billing.values import EARLIEST, LATEST, control_character, identifier, time_in_range

EVENT_TYPES = ("payment.failed", "payment.succeeded")
# The columns these texts end in: CharField's varchar(255) (PostgreSQL refuses longer), and a text column
# for the message, bounded so that one event cannot fill the database.
SHORT_TEXT = 255
LONG_TEXT = 500


class InvalidEvent(ValueError):
    """The body is not a gateway event Tranche understands; the message names the field."""

    code = "malformed_event"


class UnsupportedEventType(InvalidEvent):
    code = "unsupported_event_type"


def _identifier(data: dict[str, object], name: str) -> int:
    value = identifier(data.get(name))
    if value is None:
        raise InvalidEvent(f"data.{name} must be a positive whole number of ASCII digits")
    return value


def checked_text(value: object, name: str, longest: int = SHORT_TEXT) -> str:
    """`value` if it is a non-empty string of at most `longest` characters and no control character."""
    if not isinstance(value, str) or not value or len(value) > longest:
        raise InvalidEvent(f"{name} must be a non-empty string of at most {longest} characters")
    char = control_character(value)
    if char is not None:
        raise InvalidEvent(f"{name} must not contain the control character {char!r}")
    return value


def _optional_text(data: dict[str, object], name: str, longest: int = SHORT_TEXT) -> str | None:
    value = data.get(name)
    return None if value is None else checked_text(value, f"data.{name}", longest)


def _occurred_at(data: dict[str, object]) -> dt.datetime:
    try:
        occurred_at = dt.datetime.fromisoformat(checked_text(data.get("occurred_at"), "data.occurred_at"))
    except ValueError:
        raise InvalidEvent("data.occurred_at must be an ISO 8601 time") from None
    if occurred_at.tzinfo is None:
        raise InvalidEvent("data.occurred_at must carry its UTC offset")
    # Checked before astimezone(), which overflows at the ends of datetime's range.
    if not time_in_range(occurred_at):
        raise InvalidEvent(f"data.occurred_at must lie from {EARLIEST.isoformat()} to before {LATEST.isoformat()}")
    return occurred_at.astimezone(dt.UTC)


def event_text(body: bytes) -> str:
    """The body as the text we store: UTF-8 without NUL (json.loads would also take UTF-16 and UTF-32)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent("the body must be JSON encoded as UTF-8") from None
    if "\x00" in text:
        raise InvalidEvent("the body must not contain NUL characters")
    return text


def parse_outcome(text: str) -> Outcome:
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be an event
        raise InvalidEvent("the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise InvalidEvent("the body must be an object with 'type' and 'data'")
    if event.get("type") not in EVENT_TYPES:
        raise UnsupportedEventType(f"unsupported event type {event.get('type')!r}: expected one of {EVENT_TYPES}")
    data = event["data"]
    try:
        # The readers of the API: a gateway reports only amounts and currencies Tranche can have charged.
        amount = parse_amount(data.get("amount"), "data.amount")
        currency = currency_code(data.get("currency"), "data.currency")
    except InvalidInput as error:
        raise InvalidEvent(error.message) from None
    if data.get("method") not in ("card", "sepa"):
        raise InvalidEvent("data.method must be 'card' or 'sepa'")
    succeeded = event["type"] == "payment.succeeded"
    return Outcome(
        succeeded=succeeded,
        order_id=_identifier(data, "order_id"),
        installment=_identifier(data, "installment"),
        occurred_at=_occurred_at(data),
        reference=_optional_text(data, "reference"),
        failure_code=None if succeeded else (_optional_text(data, "failure_code") or "unknown"),
        failure_message=None if succeeded else _optional_text(data, "failure_message", longest=LONG_TEXT),
        amount=amount,
        currency=currency,
    )
