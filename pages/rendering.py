"""The pages' Jinja environment: templates under pages/templates, the "pages" catalogs, Babel formats.

One environment serves every request, so the language is a context variable set for the length of one
render rather than translations installed on the shared environment.
"""

import datetime as dt
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_timezone_name
from babel.numbers import format_currency
from flask import url_for
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from i18n import LOCALES, translations

DOMAIN = "pages"
_language: ContextVar[str] = ContextVar("language", default="en")


def gettext(message: str) -> str:
    return translations(_language.get(), DOMAIN).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_language.get(), DOMAIN).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalog where it is defined; it is translated where it is shown."""
    return message


_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.install_gettext_callables(gettext, ngettext, newstyle=True)
_env.globals["url_for"] = url_for


class Formats:
    """Amounts and times as the customer reads them: their language, the seller's time zone (R13)."""

    def __init__(self, language: str, timezone: str):
        self.locale = LOCALES[language]
        self.zone = ZoneInfo(timezone)

    def money(self, amount: Decimal, currency: str) -> str:
        return format_currency(amount, currency, locale=self.locale)

    def date(self, moment: dt.datetime) -> str:
        return format_date(moment.astimezone(self.zone).date(), format="long", locale=self.locale)

    def time(self, moment: dt.datetime) -> str:
        local = moment.astimezone(self.zone)
        zone = get_timezone_name(local, "long", locale=self.locale)
        return f"{format_time(local, format='short', locale=self.locale)} ({zone})"


def render(template: str, language: str, **context) -> str:
    """`template` rendered in `language` (fr, de or en)."""
    token = _language.set(language)
    try:
        return _env.get_template(template).render(language=language, **context)
    finally:
        _language.reset(token)
