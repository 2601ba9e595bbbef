"""R5 smooth retries, R6 the interruption after the third failure, R7 the seller's renewal, at the level of
the rules: the gateway's reports are applied as billing.charging.Outcome, the time is passed in."""

import datetime as dt

import pytest

from billing.collections import collections_list, hand_to_collections
from billing.dunning import renew_plan
from billing.errors import Refused
from billing.plans import add_attempt, open_installment
from jobs.work import run_due_work
from models import ChargeAttempt, Installment, Order, Outbox
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def attempts(order):
    return [
        (a.kind, a.number, a.status, a.due_at)
        for a in ChargeAttempt.select()
        .join(Installment)
        .where(Installment.order == order)
        .order_by(ChargeAttempt.kind, ChargeAttempt.number)
    ]


def outbox_templates():
    return [m.template for m in Outbox.select().order_by(Outbox.id)]


def interrupted_order(seller=None):
    """A monthly card order whose first installment failed at T, T+7 d and T+14 d."""
    order = factories.order(seller or factories.seller(), anchor=T)
    factories.decline_the_ladder(T)
    return Order.get_by_id(order.id)


def test_a_failed_card_debit_is_retried_at_t_plus_7_days_and_not_before():
    """Attempt 2 is due exactly seven days after attempt 1 failed; a day earlier nothing is charged."""
    order = factories.order(factories.seller(), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")

    assert factories.charge_due(T + 7 * DAY - dt.timedelta(seconds=1)) == []
    [second] = factories.charge_due(T + 7 * DAY)
    assert second.idempotency_key == f"tranche-{order.id}-1-automatic-2"
    assert second.amount == first.amount


def test_the_third_attempt_is_due_at_t_plus_14_days_even_when_the_second_ran_late():
    """Attempt 2 ran two days late (T+9 d): attempt 3 is still due at T+14 d, counted from the first failure."""
    order = factories.order(factories.seller(), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    [second] = factories.charge_due(T + 9 * DAY)
    factories.gateway_reports(second, T + 9 * DAY, "card_declined")

    assert attempts(order) == [
        ("automatic", 1, "failed", T),
        ("automatic", 2, "failed", T + 7 * DAY),
        ("automatic", 3, "scheduled", T + 14 * DAY),
    ]


def test_the_ladder_counts_from_when_the_first_attempt_failed():
    """Attempt 1 was due at T but failed at T+3 h: the retries fall at T+3 h+7 d and T+3 h+14 d."""
    order = factories.order(factories.seller(), anchor=T)
    failed_at = T + dt.timedelta(hours=3)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, failed_at, "insufficient_funds")
    [second] = factories.charge_due(failed_at + 7 * DAY)
    factories.gateway_reports(second, failed_at + 7 * DAY, "insufficient_funds")

    assert attempts(order)[1:] == [
        ("automatic", 2, "failed", failed_at + 7 * DAY),
        ("automatic", 3, "scheduled", failed_at + 14 * DAY),
    ]


def test_each_card_failure_tells_the_customer_which_attempt_failed_and_when_the_next_one_is():
    """R5: attempt 1 of 3, the reason, the amount and the date of attempt 2 are in the customer's message."""
    factories.order(factories.seller(), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")

    message = Outbox.get(Outbox.template == "payment_failed")
    assert message.recipient == "claire@example.com"
    assert message.context["attempt"] == 1
    assert message.context["attempts_total"] == 3
    assert message.context["amount"] == "30.00"
    assert message.context["code"] == "insufficient_funds"
    assert message.context["next_attempt_at"] == (T + 7 * DAY).isoformat()


def test_the_third_failure_interrupts_the_plan_and_no_later_installment_is_charged():
    """After T+14 d nothing is charged again, not even installments due months later."""
    seller = factories.seller()
    order = interrupted_order(seller)

    assert order.status == Order.INTERRUPTED
    assert [a[:3] for a in attempts(order)] == [("automatic", n, "failed") for n in (1, 2, 3)]
    assert factories.charge_due(T + 400 * DAY) == []
    assert [i.status for i in order.installments.order_by(Installment.number)] == ["open", "scheduled", "scheduled"]
    assert outbox_templates() == [
        *["payment_failed", "seller_payment_failed"] * 2,
        "payment_failed",
        "seller_third_failure",
    ]
    seller_message = Outbox.get(Outbox.template == "seller_third_failure")
    assert seller_message.recipient == f"notify+{seller.id}@example.com"
    assert [f["code"] for f in seller_message.context["failures"]] == ["insufficient_funds"] * 3


def test_renew_is_refused_for_a_sepa_order():
    """A SEPA debit is never retried, not even by the seller: code sepa."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, "insufficient_funds")

    with pytest.raises(Refused) as refused:
        renew_plan(order, T + DAY)

    assert refused.value.code == "sepa"
    assert "SEPA" in refused.value.message


@pytest.mark.parametrize("failures", [0, 1, 2])
def test_renew_is_refused_before_the_third_automatic_attempt_failed(failures):
    """With fewer than three failed automatic attempts, renewing is too early, and nothing is scheduled."""
    seller = factories.seller()
    order = factories.order(seller, anchor=T)
    factories.decline_the_ladder(T, attempts=failures)
    before = attempts(order)

    with pytest.raises(Refused) as refused:
        renew_plan(order, T + 20 * DAY)

    assert refused.value.code == "too_early"
    assert f"{failures} of 3" in refused.value.message
    assert attempts(order) == before


def test_renew_is_refused_a_second_time_for_the_same_installment():
    """The fourth attempt is the last: renewing again is refused, while it runs and after it failed."""
    seller = factories.seller()
    order = interrupted_order(seller)
    renew_plan(order, T + 20 * DAY)

    with pytest.raises(Refused) as while_pending:
        renew_plan(order, T + 20 * DAY)
    [renewal] = factories.charge_due(T + 20 * DAY)
    factories.gateway_reports(renewal, T + 20 * DAY, "card_declined")
    with pytest.raises(Refused) as after_failure:
        renew_plan(order, T + 21 * DAY)

    assert (while_pending.value.code, after_failure.value.code) == ("already_renewed", "already_renewed")
    assert [a[:2] for a in attempts(order)].count(("renewal", 4)) == 1


def test_renew_is_refused_once_the_order_is_handed_to_collections():
    """The seller chose the collection partner instead: code in_collections."""
    seller = factories.seller()
    order = interrupted_order(seller)
    hand_to_collections(order, T + 20 * DAY)

    with pytest.raises(Refused) as refused:
        renew_plan(order, T + 21 * DAY)

    assert refused.value.code == "in_collections"
    assert ChargeAttempt.select().where(ChargeAttempt.kind == ChargeAttempt.RENEWAL).count() == 0


def test_a_successful_renewal_pays_the_installment_and_resumes_at_the_next_regular_date():
    """Renewed on T+20 d: installment 1 paid, plan active, installment 2 charged on 1 June and not before."""
    seller = factories.seller()
    order = interrupted_order(seller)

    renewal = renew_plan(order, T + 20 * DAY)
    assert (renewal.kind, renewal.number, renewal.due_at) == ("renewal", 4, T + 20 * DAY)
    [request] = factories.charge_due(T + 20 * DAY)
    assert request.idempotency_key == f"tranche-{order.id}-1-renewal-4"
    factories.gateway_reports(request, T + 20 * DAY)

    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert Installment.get(order=order, number=1).status == Installment.PAID
    june_1 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
    assert factories.charge_due(june_1 - dt.timedelta(seconds=1)) == []
    [next_charge] = factories.charge_due(june_1)
    assert (next_charge.installment, next_charge.at) == (2, june_1)
    assert open_installment(order).due_at == june_1


def test_a_failed_renewal_lists_the_order_in_collections():
    """The fourth attempt failed: final, the order is in the collections list, the seller hears of it."""
    seller = factories.seller()
    order = interrupted_order(seller)
    renew_plan(order, T + 20 * DAY)
    [request] = factories.charge_due(T + 20 * DAY)

    factories.gateway_reports(request, T + 20 * DAY, "card_declined")

    assert Order.get_by_id(order.id).status == Order.COLLECTIONS
    assert [case.order_id for case in collections_list(seller)] == [order.id]
    assert outbox_templates()[-1] == "seller_renewal_failed"
    assert factories.charge_due(T + 400 * DAY) == []


def test_a_failed_customer_initiated_charge_leaves_the_automatic_schedule_as_it_was():
    """R10: the customer's own charge on day 2 fails; attempt 2 is still due at T+7 d, only the seller hears."""
    order = factories.order(factories.seller(), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    schedule = attempts(order)
    messages = outbox_templates()

    add_attempt(open_installment(order), ChargeAttempt.CUSTOMER, 1, T + 2 * DAY)
    [customer_charge] = factories.charge_due(T + 2 * DAY)
    factories.gateway_reports(customer_charge, T + 2 * DAY, "card_declined")

    assert attempts(order) == [*schedule, ("customer", 1, "failed", T + 2 * DAY)]
    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert outbox_templates() == [*messages, "seller_payment_failed"]
    [second] = factories.charge_due(T + 7 * DAY)
    assert second.idempotency_key == f"tranche-{order.id}-1-automatic-2"


def test_a_failed_customer_initiated_charge_leaves_an_interrupted_plan_renewable():
    """After the third failure the customer's own charge fails: the plan stays interrupted, renew still works."""
    seller = factories.seller()
    order = interrupted_order(seller)
    add_attempt(open_installment(order), ChargeAttempt.CUSTOMER, 1, T + 16 * DAY)
    [customer_charge] = factories.charge_due(T + 16 * DAY)
    factories.gateway_reports(customer_charge, T + 16 * DAY, "card_declined")

    assert Order.get_by_id(order.id).status == Order.INTERRUPTED
    assert renew_plan(order, T + 17 * DAY).kind == ChargeAttempt.RENEWAL


def test_a_retry_charges_the_card_on_file_at_that_moment():
    """R5: the customer replaced the card after attempt 1 failed; attempt 2 charges the new card's token."""
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    new_card = factories.card()
    Order.update(card_token=new_card.token, card_last4=new_card.last4).where(Order.id == order.id).execute()

    [second] = factories.charge_due(T + 7 * DAY)

    assert (second.token, first.token) == (new_card.token, order.card_token)


def test_a_renewal_through_the_sandbox_pays_the_installment_with_the_card_on_file():
    """The real path: three declines through the sandbox, a new card, the seller renews, the tick charges it."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    for step in range(3):
        run_due_work(T + 7 * step * DAY)
    Order.update(card_token=factories.card().token).where(Order.id == order.id).execute()

    renew_plan(order, T + 20 * DAY)
    run_due_work(T + 20 * DAY)

    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert attempts(order)[-1] == ("renewal", 4, "succeeded", T + 20 * DAY)
    assert Installment.get(order=order, number=1).status == Installment.PAID
