"""Amounts: Decimal with two places, parsed strictly, never through a float."""

import re
from decimal import Decimal

from billing.errors import InvalidInput

CENT = Decimal("0.01")
MINIMUM_INSTALLMENT = Decimal("2.00")
_PLAIN = re.compile(r"^\d{1,9}(\.\d{1,2})?$")


def parse_amount(value, field: str = "amount") -> Decimal:
    """A positive amount like `40`, `40.5` or `40.00` (a JSON number parsed as Decimal, or a string)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InvalidInput(field, f"{field} must be a decimal like 40.00")
    text = str(value).strip()
    if not _PLAIN.match(text):
        raise InvalidInput(field, f"{field} must be a decimal with at most two places, like 40.00 (got {text!r})")
    amount = Decimal(text).quantize(CENT)
    if amount <= 0:
        raise InvalidInput(field, f"{field} must be more than 0")
    return amount
