"""R12: a seller finds their own orders by order id, customer name (partial, any case) or invoice number."""

import pytest

from billing.search import find_orders
from tests import factories


@pytest.fixture
def alice():
    return factories.seller("Alice Courses")


@pytest.fixture
def bob():
    return factories.seller("Bob Lessons")


def found(seller, query):
    return [order.id for order in find_orders(seller, query)]


def test_an_order_is_found_by_its_id(alice):
    """The id alone or written as #id."""
    order = factories.order(alice)
    factories.order(alice, customer_name="Jonas Weber")

    assert found(alice, str(order.id)) == [order.id]
    assert found(alice, f"#{order.id}") == [order.id]


def test_an_order_is_found_by_part_of_the_customer_name_in_any_case(alice):
    """'dubo', 'DUBOIS' and 'claire d' all find Claire Dubois, and nobody else."""
    claire = factories.order(alice, customer_name="Claire Dubois")
    factories.order(alice, customer_name="Jonas Weber")

    for query in ("dubo", "DUBOIS", "claire d", "  Claire  "):
        assert found(alice, query) == [claire.id], query


def test_the_customer_name_matches_in_any_case_beyond_ascii(alice):
    """Sellers' customers are French and German: 'émilie' finds Émilie, 'MÜLLER' finds Müller."""
    emilie = factories.order(alice, customer_name="Émilie Rousseau")
    jurgen = factories.order(alice, customer_name="Jürgen Müller")

    assert found(alice, "émilie") == [emilie.id]
    assert found(alice, "MÜLLER") == [jurgen.id]


def test_an_order_is_found_by_its_invoice_number(alice):
    """The whole invoice number, as the seller has it on the invoice."""
    order = factories.order(alice, invoice="2026-0042")
    factories.order(alice, invoice="2026-0043")

    assert found(alice, "2026-0042") == [order.id]


def test_a_seller_never_finds_another_sellers_order(alice, bob):
    """Bob searching Alice's order id, her customer's name or her invoice number finds nothing of hers."""
    order = factories.order(alice, customer_name="Claire Dubois", invoice="2026-0042")
    bobs = factories.order(bob, customer_name="Claire Martin", invoice="B-7")

    assert found(bob, str(order.id)) == []
    assert found(bob, "2026-0042") == []
    assert found(bob, "claire") == [bobs.id]
    assert found(alice, "claire") == [order.id]


def test_wildcard_characters_in_the_query_match_themselves(alice):
    """'%' and '_' are not LIKE wildcards: 'a_e' does not find Jane, '%' finds only a name with a '%'."""
    factories.order(alice, customer_name="Jane Doe")
    percent = factories.order(alice, customer_name="Anne 100% Sure")
    underscore = factories.order(alice, customer_name="Lee a_e Park")

    assert found(alice, "a_e") == [underscore.id]
    assert found(alice, "%") == [percent.id]
    assert found(alice, "\\") == []


def test_an_empty_query_finds_nothing(alice):
    """A blank search is not a list of every order."""
    factories.order(alice)

    assert found(alice, "") == []
    assert found(alice, "   ") == []
    assert found(alice, None) == []


def test_several_matches_come_newest_first(alice):
    """Two orders of customers named Dubois: the latest order first."""
    older = factories.order(alice, customer_name="Claire Dubois")
    newer = factories.order(alice, customer_name="Marc Dubois")

    assert found(alice, "dubois") == [newer.id, older.id]
