"""The pages' Jinja environment: templates under pages/templates, the "pages" catalogs, Babel formats.

One environment serves every request, so the language is a context variable set for the length of one
render rather than translations installed on the shared environment.
"""

from contextvars import ContextVar
from pathlib import Path

from flask import url_for
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from i18n import translations

DOMAIN = "pages"
_language: ContextVar[str] = ContextVar("language", default="en")


def gettext(message: str) -> str:
    return translate(_language.get(), message)


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


def render(template: str, language: str, **context) -> str:
    """`template` rendered in `language` (fr, de or en)."""
    token = _language.set(language)
    try:
        return _env.get_template(template).render(language=language, **context)
    finally:
        _language.reset(token)


def translate(language: str, message: str) -> str:
    """`message` of the "pages" catalog in `language`, outside a template (the card page's JSON answers)."""
    return translations(language, DOMAIN).gettext(message)
