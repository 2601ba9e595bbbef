"""R8 SEPA failures and R9 collections, at the level of the rules."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.collections import collections_list, hand_to_collections
from billing.dunning import renew_plan
from billing.errors import Refused
from models import ChargeAttempt, CollectionCase, Installment, Order, Outbox
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def failed_sepa_order(seller):
    """A monthly SEPA order (3 × 30.00) whose first debit failed at T."""
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, "insufficient_funds")
    return Order.get_by_id(order.id)


def test_a_failed_sepa_debit_goes_straight_to_collections_without_a_retry():
    """R8: listed in collections at once, the plan charges nothing more, and the seller is notified once."""
    seller = factories.seller()
    order = failed_sepa_order(seller)

    assert order.status == Order.COLLECTIONS
    assert [(case.order_id, case.opened_at) for case in collections_list(seller)] == [(order.id, T)]
    assert [(a.number, a.status) for a in ChargeAttempt.select()] == [(1, ChargeAttempt.FAILED)]
    assert factories.charge_due(T + 400 * DAY) == []
    [message] = Outbox.select()
    assert (message.template, message.recipient) == ("seller_sepa_failed", f"notify+{seller.id}@example.com")
    assert message.context["failures"][0]["code"] == "insufficient_funds"


def test_a_hand_off_records_when_which_installments_and_how_much():
    """Handed off on T+10 d: installment 1 (the one due), 30.00, at that time; the seller hears of it."""
    seller = factories.seller()
    order = failed_sepa_order(seller)

    case = hand_to_collections(order, T + 10 * DAY)

    assert (case.handed_off_at, case.handed_off_installments, case.handed_off_amount) == (
        T + 10 * DAY,
        [1],
        Decimal("30.00"),
    )
    assert Order.get_by_id(order.id).status == Order.HANDED_OFF
    assert case.next_delivery_at == T + 10 * DAY
    assert Outbox.get(Outbox.template == "seller_handed_off").context["amount"] == "30.00"


def test_an_interrupted_card_order_the_seller_chose_not_to_renew_can_be_handed_off():
    """After the third failure the seller may hand off instead of renewing: a case is opened and recorded."""
    seller = factories.seller()
    order = factories.order(seller, anchor=T)
    factories.decline_the_ladder(T)

    case = hand_to_collections(order, T + 20 * DAY)

    assert case.reason == "the seller chose not to renew"
    assert (case.handed_off_installments, case.handed_off_amount) == ([1], Decimal("30.00"))
    assert [c.id for c in collections_list(seller)] == [case.id]


def test_a_hand_off_is_final():
    """Afterwards renewing and a second hand-off are refused, and nothing is ever charged again."""
    seller = factories.seller()
    order = factories.order(seller, anchor=T)
    factories.decline_the_ladder(T)
    case = hand_to_collections(order, T + 20 * DAY)

    with pytest.raises(Refused) as renew:
        renew_plan(order, T + 21 * DAY)
    with pytest.raises(Refused) as again:
        hand_to_collections(order, T + 22 * DAY)

    assert (renew.value.code, again.value.code) == ("in_collections", "already_handed_off")
    assert CollectionCase.get_by_id(case.id).handed_off_at == T + 20 * DAY
    assert Outbox.select().where(Outbox.template == "seller_handed_off").count() == 1
    assert factories.charge_due(T + 400 * DAY) == []
    assert Installment.select().where(Installment.status == Installment.OPEN).count() == 0


@pytest.mark.parametrize("state", ["active", "in dunning", "completed"])
def test_only_orders_in_collections_or_interrupted_can_be_handed_off(state):
    """An active order, one still in its retries, or a completed one: refused, and no case is opened."""
    seller = factories.seller()
    order = factories.order(seller, count=2, anchor=T)
    if state == "in dunning":
        factories.decline_the_ladder(T, attempts=1)
    if state == "completed":
        factories.answer_due_charges(T)
        factories.answer_due_charges(T + 31 * DAY)

    with pytest.raises(Refused) as refused:
        hand_to_collections(order, T + 40 * DAY)

    assert refused.value.code == "not_in_collections"
    assert CollectionCase.select().count() == 0


def test_an_order_with_no_open_debt_on_the_clock_cannot_be_handed_off():
    """R9: no debt, no hand-off: a hand-off of 0.00 is refused, and nothing is recorded or final."""
    seller = factories.seller()
    order = failed_sepa_order(seller)

    with pytest.raises(Refused) as refused:
        hand_to_collections(order, T - DAY)  # a clock before the failed installment fell due

    assert refused.value.code == "no_open_debt"
    assert Order.get_by_id(order.id).status == Order.COLLECTIONS
    assert CollectionCase.get(CollectionCase.order == order).handed_off_at is None
    assert not Outbox.select().where(Outbox.template == "seller_handed_off").exists()


def test_an_order_cannot_be_handed_off_while_its_renewal_is_being_charged():
    """The fourth attempt is in flight: its outcome comes first, so the debt handed off is the real one."""
    seller = factories.seller()
    order = factories.order(seller, anchor=T)
    factories.decline_the_ladder(T)
    renew_plan(order, T + 20 * DAY)
    factories.charge_due(T + 20 * DAY)

    with pytest.raises(Refused) as refused:
        hand_to_collections(order, T + 20 * DAY)

    assert refused.value.code == "charge_in_flight"
    assert Order.get_by_id(order.id).status == Order.INTERRUPTED
