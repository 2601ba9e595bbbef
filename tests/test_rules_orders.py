"""How a seller names an order (billing.orders.find_order): by number, or in Slack by invoice number too."""

import pytest

from billing.errors import OrderNotFound
from billing.orders import find_order
from tests import factories


def test_an_order_is_found_by_its_number_with_or_without_a_hash():
    seller = factories.seller()
    order = factories.order(seller)

    assert find_order(seller, order.id) == order
    assert find_order(seller, f"#{order.id}") == order
    assert find_order(seller, f" {order.id} ") == order


def test_an_invoice_number_names_an_order_only_where_invoice_numbers_are_asked_for():
    seller = factories.seller()
    order = factories.order(seller, invoice="INV-2026-001")

    assert find_order(seller, "INV-2026-001", by_invoice_number=True) == order
    with pytest.raises(OrderNotFound):
        find_order(seller, "INV-2026-001")


def test_another_sellers_order_is_as_unknown_as_a_missing_one():
    order = factories.order(factories.seller("Alice Courses"), invoice="INV-A")
    bob = factories.seller("Bob Lessons")

    for ref in (order.id, str(order.id), "INV-A"):
        with pytest.raises(OrderNotFound) as refused:
            find_order(bob, ref, by_invoice_number=True)
        assert str(refused.value) == f"There is no order {ref}."


@pytest.mark.parametrize("ref", [987654, "abc", "", "#-1", "٣", "99999999999999999999"])
def test_an_unknown_or_malformed_reference_names_no_order(ref):
    seller = factories.seller()
    factories.order(seller)

    with pytest.raises(OrderNotFound) as refused:
        find_order(seller, ref)

    assert refused.value.code == "unknown_order"
