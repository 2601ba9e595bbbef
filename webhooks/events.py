"""The gateway event format of SPEC.md, read strictly into a charge outcome by a model (EventBody).

Whatever passes here can be stored and applied: every text fits its column, every id its integer, every
time the range the rules add days to. An event refused later, by the job, would wait there for an operator.
Fields SPEC does not name are the gateway's own business and are ignored: gateways add fields as they please.
"""

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from billing.charging import Outcome
from billing.errors import InvalidInput
from billing.money import currency_code, parse_amount
from billing.values import EARLIEST, LATEST, control_character, identifier, time_in_range

EventType = Literal["payment.failed", "payment.succeeded"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# The columns these texts end in: CharField's varchar(255) (PostgreSQL refuses longer), and a text column
# for the message, bounded so that one event cannot fill the database.
SHORT_TEXT = 255
LONG_TEXT = 500


class InvalidEvent(ValueError):
    """The body is not a gateway event Tranche understands; the message names the field."""

    code = "malformed_event"


class UnsupportedEventType(InvalidEvent):
    code = "unsupported_event_type"


def checked_text(value: object, name: str, longest: int = SHORT_TEXT) -> str:
    """`value` if it is a non-empty string of at most `longest` characters and no control character."""
    if not isinstance(value, str) or not value or len(value) > longest:
        raise InvalidEvent(f"{name} must be a non-empty string of at most {longest} characters")
    char = control_character(value)
    if char is not None:
        raise InvalidEvent(f"{name} must not contain the control character {char!r}")
    return value


def _refused(message: str) -> PydanticCustomError:
    # The message goes in the context: a template would read braces in it (a text the gateway sent) as fields.
    return PydanticCustomError("invalid", "{message}", {"message": message})


def _name(info: ValidationInfo) -> str:
    return f"data.{info.field_name}"


def _identifier(value: object, info: ValidationInfo) -> int:
    number = identifier(value)
    if number is None:
        raise _refused(f"{_name(info)} must be a positive whole number of ASCII digits")
    return number


def _amount(value: object, info: ValidationInfo) -> Decimal:
    # The readers of the API: a gateway reports only amounts and currencies Tranche can have charged.
    try:
        return parse_amount(value, _name(info))
    except InvalidInput as error:
        raise _refused(error.message) from None


def _currency(value: object, info: ValidationInfo) -> str:
    try:
        return currency_code(value, _name(info))
    except InvalidInput as error:
        raise _refused(error.message) from None


def _text(longest: int) -> Any:
    def read(value: object, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return checked_text(value, _name(info), longest)
        except InvalidEvent as error:
            raise _refused(str(error)) from None

    return PlainValidator(read)


def _occurred_at(value: object, info: ValidationInfo) -> dt.datetime:
    try:
        occurred_at = dt.datetime.fromisoformat(checked_text(value, _name(info)))
    except InvalidEvent as error:
        raise _refused(str(error)) from None
    except ValueError:
        raise _refused(f"{_name(info)} must be an ISO 8601 time") from None
    if occurred_at.tzinfo is None:
        raise _refused(f"{_name(info)} must carry its UTC offset")
    # Checked before astimezone(), which overflows at the ends of datetime's range.
    if not time_in_range(occurred_at):
        raise _refused(f"{_name(info)} must lie from {EARLIEST.isoformat()} to before {LATEST.isoformat()}")
    return occurred_at.astimezone(dt.UTC)


class EventData(BaseModel):
    """What the event says of one charge."""

    model_config = ConfigDict(extra="ignore", strict=True)

    order_id: Annotated[int, PlainValidator(_identifier)]
    installment: Annotated[int, PlainValidator(_identifier)]
    amount: Annotated[Decimal, PlainValidator(_amount)]
    currency: Annotated[str, PlainValidator(_currency)]
    method: Literal["card", "sepa"]
    occurred_at: Annotated[dt.datetime, PlainValidator(_occurred_at)]
    reference: Annotated[str | None, _text(SHORT_TEXT)] = None
    failure_code: Annotated[str | None, _text(SHORT_TEXT)] = None
    failure_message: Annotated[str | None, _text(LONG_TEXT)] = None


class EventBody(BaseModel):
    """A gateway event: its type and its data."""

    model_config = ConfigDict(extra="ignore", strict=True)

    type: EventType
    data: EventData


def event_text(body: bytes) -> str:
    """The body as the text we store: UTF-8 without NUL (json.loads would also take UTF-16 and UTF-32)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent("the body must be JSON encoded as UTF-8") from None
    if "\x00" in text:
        raise InvalidEvent("the body must not contain NUL characters")
    return text


def _refusal(event: object, error: ValidationError) -> InvalidEvent:
    """The one refusal a gateway hears, in the order it can act on: the shape, the type, then the first field."""
    errors: list[ErrorDetails] = error.errors(include_url=False)
    if any(e["loc"] in ((), ("data",)) for e in errors):
        return InvalidEvent("the body must be an object with 'type' and 'data'")
    if any(e["loc"] == ("type",) for e in errors):
        kind = event.get("type") if isinstance(event, dict) else None
        return UnsupportedEventType(f"unsupported event type {kind!r}: expected one of {EVENT_TYPES}")
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return InvalidEvent(f"{field} is required")
    if first["type"] == "invalid":
        return InvalidEvent(first["msg"])
    return InvalidEvent(f"{field}: {first['msg']}")


def parse_outcome(text: str) -> Outcome:
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be an event
        raise InvalidEvent("the body is not JSON") from None
    try:
        body = EventBody.model_validate(event)
    except ValidationError as error:
        raise _refusal(event, error) from None
    data = body.data
    succeeded = body.type == "payment.succeeded"
    return Outcome(
        succeeded=succeeded,
        order_id=data.order_id,
        installment=data.installment,
        occurred_at=data.occurred_at,
        reference=data.reference,
        failure_code=None if succeeded else (data.failure_code or "unknown"),
        failure_message=None if succeeded else data.failure_message,
        amount=data.amount,
        currency=data.currency,
    )
