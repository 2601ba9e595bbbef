"""R12: a seller finds their own orders by order id, customer name (partial, any case and accents) or invoice
number (whole or its start), and lists them a page at a time."""

import pytest

from billing.errors import InvalidInput
from billing.search import find_orders, list_orders
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


def test_the_customer_name_matches_without_its_accents(alice):
    """'jurgen' and 'JURGEN' find Jürgen, 'zoe' finds Zoë, 'strasse' finds Straße, 'muller' finds Müller."""
    jurgen = factories.order(alice, customer_name="Jürgen Müller")
    zoe = factories.order(alice, customer_name="Zoë Straße")
    factories.order(alice, customer_name="Jonas Weber")

    for query, order in (("jurgen", jurgen), ("JURGEN", jurgen), ("muller", jurgen), ("zoe", zoe), ("strasse", zoe)):
        assert found(alice, query) == [order.id], query


def test_an_order_is_found_by_its_invoice_number(alice):
    """The whole invoice number, as the seller has it on the invoice."""
    order = factories.order(alice, invoice="2026-0042")
    factories.order(alice, invoice="2026-0043")

    assert found(alice, "2026-0042") == [order.id]


def test_an_order_is_found_by_the_start_of_its_invoice_number(alice):
    """'INV-2026-00' finds both invoices of 2026, 'inv-2026-001' one of them; the middle of a number finds none."""
    first = factories.order(alice, invoice="INV-2026-001")
    second = factories.order(alice, invoice="INV-2026-002")
    factories.order(alice, invoice="INV-2025-001")

    assert found(alice, "INV-2026-00") == [second.id, first.id]
    assert found(alice, "inv-2026-001") == [first.id]
    assert found(alice, "2026-001") == []


def test_an_id_in_other_digits_finds_no_order(alice):
    """'٣' is not the order 3, whatever Python's int() says; '²' finds nothing either."""
    order = factories.order(alice)

    assert found(alice, str(order.id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))) == []
    assert found(alice, "²") == []


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


def test_orders_are_listed_newest_first_one_page_after_another(alice, bob):
    """Pages of `limit` orders, each starting after the last of the one before; has_more until the end."""
    orders = [factories.order(alice, customer_name=f"Customer {n}") for n in range(5)]
    factories.order(bob)
    newest = [o.id for o in reversed(orders)]

    first = list_orders(alice, limit=2)
    second = list_orders(alice, limit=2, starting_after=first.orders[-1].id)
    last = list_orders(alice, limit=2, starting_after=second.orders[-1].id)

    assert [[o.id for o in p.orders] for p in (first, second, last)] == [newest[:2], newest[2:4], newest[4:]]
    assert [p.has_more for p in (first, second, last)] == [True, True, False]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"status": "paid"}, "status"), ({"query": " "}, "q")],
)
def test_a_page_outside_the_rules_is_refused_naming_the_parameter(alice, arguments, field):
    """At most 100 a page, a known status, a query that says something."""
    with pytest.raises(InvalidInput) as refused:
        list_orders(alice, **arguments)
    assert refused.value.field == field


def test_a_page_cannot_start_after_another_sellers_order(alice, bob):
    """Bob's order id is no place in Alice's list: refused, as an unknown one is."""
    bobs = factories.order(bob)

    with pytest.raises(InvalidInput) as refused:
        list_orders(alice, starting_after=bobs.id)
    assert refused.value.field == "starting_after"
