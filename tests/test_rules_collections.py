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


def failed_sepa_order(seller, failure="insufficient_funds", sepa_retry=False):
    """A monthly SEPA order (3 × 30.00) whose first debit failed at T."""
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T, sepa_retry=sepa_retry)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, failure)
    return Order.get_by_id(order.id)


def sent():
    return [(m.template, m.recipient) for m in Outbox.select().order_by(Outbox.id)]


# --- R16: a product's opt-in SEPA retry


def test_a_product_that_opted_in_debits_once_more_7_days_after_a_lack_of_funds_then_lists_the_order():
    """R16: failed at T for insufficient funds, debited again at T+7 d; that one fails too: collections, the seller
    told with both failures, and no third debit."""
    seller = factories.seller()
    order = failed_sepa_order(seller, sepa_retry=True)

    assert order.status == Order.ACTIVE
    assert [(a.number, a.status, a.due_at) for a in ChargeAttempt.select().order_by(ChargeAttempt.number)] == [
        (1, ChargeAttempt.FAILED, T),
        (2, ChargeAttempt.SCHEDULED, T + 7 * DAY),
    ]
    assert sent() == [("sepa_debit_retried", "claire@example.com")]
    assert factories.charge_due(T + 7 * DAY - dt.timedelta(seconds=1)) == []

    [retry] = factories.charge_due(T + 7 * DAY)
    factories.gateway_reports(retry, T + 7 * DAY, "insufficient_funds")

    assert Order.get_by_id(order.id).status == Order.COLLECTIONS
    assert CollectionCase.get().reason == "SEPA debit failed, and its one retry too"
    assert sent()[1:] == [("seller_sepa_failed", f"notify+{seller.id}@example.com")]
    assert [f["code"] for f in Outbox.select().order_by(Outbox.id)[1].context["failures"]] == ["insufficient_funds"] * 2
    assert factories.charge_due(T + 400 * DAY) == []


def test_a_retried_sepa_debit_that_goes_through_pays_the_installment_and_the_plan_goes_on():
    """R16: the funds were there at T+7 d: installment 1 paid, the order active, the next due on its day."""
    order = failed_sepa_order(factories.seller(), sepa_retry=True)

    [retry] = factories.charge_due(T + 7 * DAY)
    factories.gateway_reports(retry, T + 7 * DAY)

    assert Order.get_by_id(order.id).status == Order.ACTIVE
    installments = [i.status for i in Installment.select().order_by(Installment.number)]
    assert installments[:2] == [Installment.PAID, Installment.SCHEDULED]
    assert CollectionCase.select().count() == 0


@pytest.mark.parametrize(
    ("sepa_retry", "failure"),
    [(False, "insufficient_funds"), (True, "account_closed"), (True, "debit_not_authorized")],
    ids=["not opted in", "an account closed", "a mandate refused"],
)
def test_any_other_sepa_failure_goes_to_collections_at_once(sepa_retry, failure):
    """R16 only retries a lack of funds, and only where the product opted in; R8 stands for everything else."""
    order = failed_sepa_order(factories.seller(), failure, sepa_retry=sepa_retry)

    assert order.status == Order.COLLECTIONS
    assert [(a.number, a.status) for a in ChargeAttempt.select()] == [(1, ChargeAttempt.FAILED)]
    assert [template for template, _ in sent()] == ["seller_sepa_failed"]


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
