"""The "pages" catalogs hold every message the pages show, translated, with the same placeholders."""

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from i18n import TRANSLATIONS

PAGES = Path(__file__).resolve().parents[1] / "pages"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def messages_in_the_code() -> set[str]:
    with (PAGES / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {message for _file, _line, message, *_ in extract_from_dir(PAGES, method_map, options_map)}


def catalog(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "pages.po").open("rb") as po:
        return read_po(po, locale=language, domain="pages")


@pytest.mark.parametrize("language", ["fr", "de", "en"])
def test_every_message_of_the_pages_is_in_the_catalog_and_nothing_else(language):
    """Extraction (pybabel extract -F pages/babel.cfg) and the catalog agree: no missing, no stale message."""
    assert {m.id for m in catalog(language) if m.id} == messages_in_the_code()


@pytest.mark.parametrize("language", ["fr", "de"])
def test_every_message_is_translated_with_the_same_placeholders(language):
    """No empty or fuzzy entry, and each %(name)s of the English survives the translation."""
    for message in catalog(language):
        if not message.id:
            continue
        assert message.string and not message.fuzzy, message.id
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(message.id)), message.id
