"""Each Babel domain's catalogs hold every message its code shows, translated, with the same placeholders."""

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from i18n import TRANSLATIONS

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"%\(\w+\)s")
# Domain → the folder whose babel.cfg extracts its messages (pybabel extract -F <folder>/babel.cfg).
DOMAINS = {"pages": ROOT / "pages", "emails": ROOT / "emails"}


def messages_in_the_code(domain: str) -> set[str]:
    folder = DOMAINS[domain]
    with (folder / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {message for _file, _line, message, *_ in extract_from_dir(folder, method_map, options_map)}


def catalog(domain: str, language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as po:
        return read_po(po, locale=language, domain=domain)


CATALOGS = sorted(
    (domain, po.parent.parent.name) for domain in DOMAINS for po in TRANSLATIONS.glob(f"*/LC_MESSAGES/{domain}.po")
)


@pytest.mark.parametrize(("domain", "language"), CATALOGS)
def test_every_message_is_in_the_catalog_translated_with_the_same_placeholders_and_nothing_stale(domain, language):
    """Extraction and the catalog agree; no entry is empty or fuzzy; each %(name)s survives the translation."""
    messages = [message for message in catalog(domain, language) if message.id]
    assert {message.id for message in messages} == messages_in_the_code(domain)
    if language == "en":  # the source language: its catalog may leave a message as written
        return
    for message in messages:
        assert message.string and not message.fuzzy, message.id
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(message.id)), message.id
