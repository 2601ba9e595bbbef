"""The customer's language (R13): Babel catalogs per domain, read from translations/<lang>/LC_MESSAGES/<domain>.po.

Catalogs are compiled in memory when first used, so a fresh clone needs no build step and a .po edit is
never shadowed by a stale .mo file.
"""

from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

TRANSLATIONS = Path(__file__).parent / "translations"
LANGUAGES = ("fr", "de", "en")
DEFAULT_LANGUAGE = "en"
# Babel locales for amounts and dates: "30,00 €" in French and German, "€30.00" in English.
LOCALES = {"fr": "fr_FR", "de": "de_DE", "en": "en_IE"}


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
