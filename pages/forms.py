"""The card page's two forms, read and checked before anything reaches the gateway.

Errors are English messages marked for the "pages" catalog, keyed by field; the template translates them.
The card number lives only in the request: it is never stored, logged or rendered back.
"""

import datetime as dt
import re
from dataclasses import dataclass

from schwifty import IBAN
from schwifty.exceptions import InvalidChecksumDigits, SchwiftyException

from billing.plans import card_expired
from billing.values import whole_number
from pages.rendering import N_

_EXPIRY = re.compile(r"([0-9]{1,2})\s*/\s*([0-9]{2}|[0-9]{4})", re.ASCII)
# Cards are issued for at most about twenty years ahead; a date beyond is a typo.
LONGEST_VALIDITY_YEARS = 20


@dataclass(frozen=True)
class CardInput:
    number: str
    exp_month: int
    exp_year: int


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every card number carries: doubling every second digit from the right."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _number_error(digits: str) -> str | None:
    if not digits:
        return N_("Enter your card number.")
    if whole_number(digits) is None or not 12 <= len(digits) <= 19:
        return N_("A card number has 12 to 19 digits.")
    if not luhn_valid(digits):
        return N_("This card number is not valid. Please check it for a typo.")
    return None


def _expiry(text: str, today: dt.date) -> tuple[int, int] | str:
    """(month, year), or the error message."""
    if not text:
        return N_("Enter the expiry date shown on your card.")
    match = _EXPIRY.fullmatch(text)
    if not match or not 1 <= int(match[1]) <= 12:
        return N_("Enter the expiry date as MM/YY, for example 08/29.")
    month, year = int(match[1]), int(match[2])
    year += 2000 if year < 100 else 0
    if card_expired(month, year, today):
        return N_("This card has expired. Please use a card that is still valid.")
    if year > today.year + LONGEST_VALIDITY_YEARS:
        return N_("Enter the expiry date as MM/YY, for example 08/29.")
    return month, year


def read_card(form, today: dt.date) -> tuple[CardInput | None, dict[str, str]]:
    """The card typed into `form` (fields number, expiry), or the errors to show beside its fields."""
    digits = re.sub(r"[\s-]", "", form.get("number", ""))
    errors = {}
    if error := _number_error(digits):
        errors["number"] = error
    expiry = _expiry(form.get("expiry", "").strip(), today)
    if isinstance(expiry, str):
        errors["expiry"] = expiry
    if errors:
        return None, errors
    return CardInput(number=digits, exp_month=expiry[0], exp_year=expiry[1]), {}


def read_iban(form) -> tuple[str | None, dict[str, str]]:
    """The IBAN typed into `form` in compact form, or the error to show beside it."""
    text = form.get("iban", "").strip()
    if not text:
        return None, {"iban": N_("Enter your IBAN.")}
    try:
        iban = IBAN(text)
    except InvalidChecksumDigits:
        return None, {"iban": N_("This IBAN is not valid. Please check it for a typo.")}
    except SchwiftyException:
        return None, {"iban": N_("This is not an IBAN. An IBAN starts with two letters, like DE89 3704 …")}
    if not iban.in_sepa_zone:
        return None, {"iban": N_("Direct debit needs an account in the SEPA area.")}
    return iban.compact, {}
