"""Reading request bodies strictly: each reader returns a clean value or raises InvalidInput naming its field.

Nested fields are named by their path (`customer.email`); the reader takes the key from its last part.
"""

import datetime as dt
import json
import re
from decimal import Decimal

from flask import request

from api.openapi import SCHEMAS
from billing import values
from billing.errors import InvalidInput
from billing.money import currency_code, parse_amount

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MISSING = object()


class MalformedBody(Exception):
    """The body is not a JSON object (answered 400)."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def json_object(schema: str) -> dict:
    """The request body as a dict, holding only fields the document's `schema` describes. Numbers with a
    fraction become Decimal, so money never passes through float."""
    try:
        body = json.loads(request.get_data(), parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:  # ValueError covers bad UTF-8 and ints past Python's digit limit
        raise MalformedBody(f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise MalformedBody("the body must be a JSON object")
    return described(body, "", schema)


def described(data: dict, path: str, schema: str) -> dict:
    """`data`, once every field of it is one the OpenAPI document's `schema` names: a misspelt or unsupported
    field is refused rather than silently ignored (`{"amount": "35.00", "count": 3}` changes no count)."""
    known = SCHEMAS[schema]["properties"]
    for key in data:
        if key not in known:
            field = f"{path}.{key}" if path else key
            raise InvalidInput(field, f"{field} is not a field of this request: {', '.join(known)}")
    return data


def _value(data: dict, field: str, default=_MISSING):
    value = data.get(field.rpartition(".")[2])
    if value is None:
        if default is _MISSING:
            raise InvalidInput(field, f"{field} is required")
        return default
    return value


def text(data: dict, field: str, max_length: int = 200, default=_MISSING):
    """A non-empty string, stripped of spaces, without control characters (NUL, line breaks, …) anywhere."""
    value = _value(data, field, default)
    if value is default:
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"{field} must be a non-empty string")
    # Before stripping: a line break around a name is no more a typing slip than one inside it.
    if (char := values.control_character(value)) is not None:
        raise InvalidInput(field, f"{field} must not contain control characters (found U+{ord(char):04X})")
    value = value.strip()
    if len(value) > max_length:
        raise InvalidInput(field, f"{field} must be at most {max_length} characters")
    return value


def email(data: dict, field: str) -> str:
    value = text(data, field, max_length=254)
    if not _EMAIL.match(value):
        raise InvalidInput(field, f"{field} must be an email address like name@example.com")
    return value


def choice(data: dict, field: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = _value(data, field, _MISSING if default is None else default)
    if value not in choices:
        raise InvalidInput(field, f"{field} must be one of {', '.join(choices)}")
    return value


def whole(data: dict, field: str, low: int, high: int) -> int:
    """A JSON integer from `low` to `high` (not a string, a fraction or a boolean)."""
    value = _value(data, field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(field, f"{field} must be a whole number from {low} to {high}")
    return value


def identifier(data: dict, field: str) -> int:
    return whole(data, field, 1, values.MAX_ID)


def number_in_text(data: dict, field: str, default: int) -> int:
    """A whole number written in ASCII digits, as query parameters carry them."""
    value = values.whole_number(_value(data, field, str(default)))
    if value is None:
        raise InvalidInput(field, f"{field} must be a whole number written in digits 0-9, like {default}")
    return value


def identifier_in_text(data: dict, field: str) -> int | None:
    """An id written in ASCII digits, as query parameters carry it; None when absent."""
    value = _value(data, field, None)
    if value is None:
        return None
    number = values.identifier(value)
    if number is None:
        raise InvalidInput(field, f"{field} must be an id like 12")
    return number


def amount(data: dict, field: str) -> Decimal:
    """A positive decimal with at most two places, as a string or a JSON number (read as Decimal)."""
    return parse_amount(_value(data, field), field)


def currency(data: dict, field: str) -> str:
    return currency_code(_value(data, field, "EUR"), field)


def time(data: dict, field: str, default: dt.datetime) -> dt.datetime:
    """An ISO 8601 time with its UTC offset, returned in UTC, within the range the rules work in."""
    value = _value(data, field, None)
    if value is None:
        return default
    try:
        at = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise InvalidInput(field, f"{field} must be an ISO 8601 time with its offset, like 2027-01-31T09:00:00+01:00")
    if not values.time_in_range(at):
        raise InvalidInput(
            field, f"{field} must lie from {values.EARLIEST:%Y-%m-%d} to before {values.LATEST:%Y-%m-%d} (UTC)"
        )
    return at.astimezone(dt.UTC)


def section(data: dict, field: str, schema: str | None = None) -> dict:
    """A nested object such as `customer`, holding only the fields of `schema` when given."""
    value = _value(data, field)
    if not isinstance(value, dict):
        raise InvalidInput(field, f"{field} must be an object")
    return value if schema is None else described(value, field, schema)
