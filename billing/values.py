"""The shapes every surface reads values in, so that no input reaches a rule or the database half-checked.

Python's own tests are wider than what people type and databases store: `"²".isdigit()` is true and
`int("²")` raises; `"٣".isdecimal()` is true and `int("٣")` is 3; `\\d` matches any script's digits and `$`
matches before a final newline; PostgreSQL cannot store NUL. Every number is read as ASCII digits, every
text refuses control characters, and every time lies where the rules can still add days and months to it.
"""

import datetime as dt
import re
import unicodedata

from email_validator import ValidatedEmail, validate_email

# The largest id a 64-bit column holds: a bigger number names nothing and must not reach the database.
MAX_ID = 2**63 - 1
# Times the rules accept: a plan of ten years with its retries and windows still ends before datetime's limit.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
# Line breaks and tabs belong in no name, email address, invoice number or code: every C* category but
# format characters (Cf: the joiners some scripts need), plus the line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}


def whole_number(value: object) -> int | None:
    """`value` as a whole number from ASCII digits (an int, or a string of 1 to 19 digits); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        return int(value)
    return None


def identifier(value: object) -> int | None:
    """An id as the database can hold it (1 to MAX_ID), from an int or ASCII digits; None otherwise."""
    number = whole_number(value)
    return number if number is not None and 0 < number <= MAX_ID else None


def control_character(text: str) -> str | None:
    """The first character of `text` that no text we store may hold (NUL, a line break, …), or None."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return char
    return None


def time_in_range(at: dt.datetime) -> bool:
    """Whether the rules can work with `at`: an aware time from EARLIEST to LATEST."""
    return at.tzinfo is not None and EARLIEST <= at < LATEST


def email_address(address: str) -> ValidatedEmail:
    """`address` as email-validator reads it: any address RFC 5321 allows (quoted, bracketed, dotless) but on the
    special-use domains, with no DNS look-up. Raises EmailNotValidError."""
    return validate_email(
        address,
        check_deliverability=False,
        globally_deliverable=False,
        allow_quoted_local=True,
        allow_domain_literal=True,
    )
