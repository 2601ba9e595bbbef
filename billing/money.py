"""Amounts: Decimal with two places, parsed strictly, never through a float; and the currencies they are in."""

import re
from decimal import Decimal

from babel.core import get_global

from billing.errors import InvalidInput

CENT = Decimal("0.01")
MINIMUM_INSTALLMENT = Decimal("2.00")
# Amounts are stored as cents in 32-bit integer columns (at most 21,474,836.47): the largest installment,
# times the longest plan (120), still fits, so a hand-off's sum of the whole debt never overflows its column.
MAXIMUM_AMOUNT = Decimal("100000.00")
# fullmatch with ASCII digits: `\d` alone takes "٣٠" and "３０", and `$` takes a final newline.
_PLAIN = re.compile(r"[0-9]{1,6}(\.[0-9]{1,2})?", re.ASCII)
# CLDR's territory data: every ISO 4217 code that is legal tender somewhere with no end date. Codes that are
# only shaped like one (XYZ), withdrawn ones (DEM) and the non-currencies (XXX, XAU) are not among them.
CURRENCIES = frozenset(
    code
    for currencies in get_global("territory_currencies").values()
    for code, _start, end, tender in currencies
    if end is None and tender
)


def parse_amount(value: object, field: str = "amount") -> Decimal:
    """A positive amount like `40`, `40.5` or `40.00` (a JSON number parsed as Decimal, or a string)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InvalidInput(field, f"{field} must be a decimal like 40.00")
    text = str(value)
    if not _PLAIN.fullmatch(text):
        raise InvalidInput(field, f"{field} must be a decimal with at most two places, like 40.00 (got {text!r})")
    amount = Decimal(text).quantize(CENT)
    if amount <= 0:
        raise InvalidInput(field, f"{field} must be more than 0")
    if amount > MAXIMUM_AMOUNT:
        raise InvalidInput(field, f"{field} must be at most {MAXIMUM_AMOUNT}")
    return amount


def currency_code(value: object, field: str = "currency") -> str:
    """An ISO 4217 code in use today, like EUR."""
    if not isinstance(value, str) or value not in CURRENCIES:
        raise InvalidInput(field, f"{field} must be the ISO 4217 code of a currency in use, like EUR")
    return value
