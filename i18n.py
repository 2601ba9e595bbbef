"""The customer's language (R13): Babel catalogs per domain, read from translations/<lang>/LC_MESSAGES/<domain>.po.

Catalogs are compiled in memory when first used, so a fresh clone needs no build step and a .po edit is
never shadowed by a stale .mo file.
"""

import datetime as dt
from decimal import Decimal
from functools import cache, lru_cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, format_timedelta, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations

TRANSLATIONS = Path(__file__).parent / "translations"
LANGUAGES = ("fr", "de", "en")
DEFAULT_LANGUAGE = "en"
# Babel locales for amounts and dates: "30,00 €" in French and German, "€30.00" in English. Parsed once: Babel
# parses a locale's name again on every call it is given as text.
LOCALES = {language: Locale.parse(name) for language, name in {"fr": "fr_FR", "de": "de_DE", "en": "en_IE"}.items()}


def language_of(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(language: str, domain: str) -> NullTranslations:
    """The gettext translations of `domain` in `language`; English is the source text."""
    path = TRANSLATIONS / language / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=domain)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=domain)


class Formats:
    """Amounts and times as the reader reads them: their language, the seller's time zone (R13).

    Times come as aware datetimes or ISO strings (as the outbox stores them); amounts as Decimal or string.
    """

    def __init__(self, language: str, timezone: str, currency: str | None = None):
        self.language = language_of(language)
        self.locale = LOCALES[self.language]
        self.zone = ZoneInfo(timezone)
        self.currency = currency

    def money(self, amount, currency: str | None = None) -> str:
        return _money(str(amount), currency or self.currency, self.language)

    def date(self, moment: dt.datetime | str) -> str:
        return _date(self._local(moment).date(), self.language)

    def time(self, moment: dt.datetime | str) -> str:
        return format_time(self._local(moment), format="short", locale=self.locale)

    def month(self, year_month: str) -> str:
        """A card's expiry month ("2026-05") as the reader names it: "May 2026", "mai 2026"."""
        year, month = map(int, year_month.split("-"))
        return format_date(dt.date(year, month, 1), format="MMMM y", locale=self.locale)

    def duration(self, length: dt.timedelta) -> str:
        """A length of time in the reader's words: "3 days", "3 jours"; "9 days", not babel's default "1 week"."""
        return format_timedelta(length, threshold=2, locale=self.locale)

    def zone_name(self, moment: dt.datetime | str) -> str:
        return get_timezone_name(self._local(moment), "long", locale=self.locale)

    def _local(self, moment: dt.datetime | str) -> dt.datetime:
        at = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        return at.astimezone(self.zone)


# Remembered: Babel applies its number and date patterns anew on every call, a sixth of an email's rendering, and a
# plan's emails name the same few amounts and dates over and over.
@lru_cache(maxsize=4096)
def _money(amount: str, currency: str | None, language: str) -> str:
    # By its text: Decimal("-0") equals Decimal("0"), which Babel writes without the sign.
    return format_currency(Decimal(amount), currency, locale=LOCALES[language])


@lru_cache(maxsize=4096)
def _date(day: dt.date, language: str) -> str:
    return format_date(day, format="long", locale=LOCALES[language])
