"""Reading what sellers type in Slack: order references, amounts written the way people write them, and the
words of /update-plan. Each reader returns clean values or raises Malformed saying what was wrong."""

import re
from dataclasses import dataclass
from decimal import Decimal

from billing.errors import InvalidInput
from billing.money import parse_amount

_AMOUNT = re.compile(r"(?:(?P<before>[€$£]|[A-Za-z]{3})\s*)?(?P<number>[0-9][0-9.,]*)\s*(?P<after>[€$£]|[A-Za-z]{3})?")
_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
# "6 installments", "6x", "count=6": a seller asking for another number of installments (R3 refuses it).
_COUNT = re.compile(r"\b(?:count\s*=?\s*(\d{1,4})|(\d{1,4})\s*(?:x|×|installments?)(?=\s|$))", re.IGNORECASE | re.ASCII)
_INTERVAL = re.compile(r"\b(?:interval\s*=?\s*)?(weekly|monthly)\b", re.IGNORECASE)


class Malformed(ValueError):
    """What the seller typed cannot be read; the message says how to write it (None: the usage says it all)."""

    def __init__(self, message: str | None):
        super().__init__(message)
        self.message = message


def order_ref(text: str) -> str:
    """One word naming an order: its number (`12`, `#12`) or its invoice number."""
    words = text.split()
    if len(words) != 1:
        raise Malformed("Name one order: its number, like `12`, or its invoice number.")
    return words[0]


def amount(text: str) -> tuple[Decimal, str | None]:
    """`40`, `40.00`, `40,00`, `40,00 €`, `€40`, `40 EUR`: the amount, and the currency if one was written."""
    match = _AMOUNT.fullmatch(text.replace("\xa0", " ").strip())
    if match is None or (match["before"] and match["after"]):
        raise Malformed(f"“{text.strip()}” is not an amount: write it like `40`, `40.00` or `40,00 €`.")
    number = match["number"]
    if "," in number and "." in number:
        raise Malformed(f"“{number}”: write the amount without thousands separators, like `1234.50` or `1234,50`.")
    try:
        value = parse_amount(number.replace(",", "."))
    except InvalidInput as error:
        raise Malformed(f"“{text.strip()}”: {error.message.replace('amount must', 'the amount must')}.") from None
    symbol = match["before"] or match["after"]
    return value, (_SYMBOLS.get(symbol) or symbol.upper()) if symbol else None


@dataclass(frozen=True)
class PlanChangeRequest:
    """What `/update-plan` asked for; an empty request opens the form."""

    order: str | None = None
    amount: str | None = None
    installment_count: int | None = None
    interval: str | None = None


def plan_change(text: str) -> PlanChangeRequest:
    """`<order> <amount>`, maybe with a number of installments or an interval, which the rules then refuse."""
    words = text.split(maxsplit=1)
    if not words:
        return PlanChangeRequest()
    rest = words[1] if len(words) > 1 else ""
    count = _COUNT.search(rest)
    rest = _COUNT.sub(" ", rest)
    interval = _INTERVAL.search(rest)
    rest = _INTERVAL.sub(" ", rest).strip()
    return PlanChangeRequest(
        order=order_ref(words[0]),
        amount=rest or None,
        installment_count=int(count[1] or count[2]) if count else None,
        interval=interval[1].lower() if interval else None,
    )
