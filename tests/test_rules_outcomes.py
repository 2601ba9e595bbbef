"""R2 and "nothing happens twice": gateway reports that come twice, late or out of order, applied by the rules."""

import datetime as dt
import threading
import time

from billing.charging import Outcome, apply_outcome
from billing.collections import collections_list
from billing.dunning import renew_plan
from models import ChargeAttempt, Installment, Order, Outbox, whole_transaction
from runtime import database
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def statuses():
    return [(a.number, a.status) for a in ChargeAttempt.select().order_by(ChargeAttempt.number)]


def outbox_facts():
    return sorted(m.dedupe_key for m in Outbox.select())


def test_a_success_after_a_failure_of_the_same_charge_settles_the_installment_and_cancels_the_retry():
    """The gateway first said declined, then succeeded (same reference): paid, attempt 2 never runs."""
    order = factories.order(factories.seller(), anchor=T)
    [charge] = factories.charge_due(T)
    factories.gateway_reports(charge, T, "insufficient_funds")

    note = factories.gateway_reports(charge, T + HOUR)

    assert note == "installment 1 paid, recovered"
    assert statuses() == [(1, ChargeAttempt.SUCCEEDED), (2, ChargeAttempt.CANCELLED)]
    assert Installment.get(order=order, number=1).status == Installment.PAID
    assert factories.charge_due(T + 7 * DAY) == []
    assert Order.get_by_id(order.id).status == Order.ACTIVE


def test_a_failure_after_a_success_of_the_same_charge_changes_nothing():
    """A success is final: the late failure schedules no retry and tells nobody."""
    order = factories.order(factories.seller(), anchor=T)
    [charge] = factories.charge_due(T)
    factories.gateway_reports(charge, T)

    note = factories.gateway_reports(charge, T + HOUR, "insufficient_funds")

    assert note.startswith("ignored")
    assert statuses() == [(1, ChargeAttempt.SUCCEEDED)]
    assert Installment.get(order=order, number=1).status == Installment.PAID
    assert Outbox.select().count() == 0


def test_a_failure_for_an_installment_already_paid_is_ignored():
    """A failure naming a charge Tranche never sent, for a paid installment: ignored, not an error."""
    order = factories.order(factories.seller(), anchor=T)
    [charge] = factories.charge_due(T)
    factories.gateway_reports(charge, T)

    note = apply_outcome(
        Outcome(
            succeeded=False,
            order_id=order.id,
            installment=1,
            occurred_at=T + HOUR,
            reference="ch_from_somewhere_else",
            failure_code="card_declined",
        ),
        T + HOUR,
    ).note

    assert note == "ignored: installment already paid"
    assert statuses() == [(1, ChargeAttempt.SUCCEEDED)]
    assert Outbox.select().count() == 0


def test_a_duplicate_failure_is_ignored_and_schedules_one_retry():
    """The same failure reported twice: one attempt 2, one email to the customer."""
    factories.order(factories.seller(), anchor=T)
    [charge] = factories.charge_due(T)
    factories.gateway_reports(charge, T, "insufficient_funds")

    note = factories.gateway_reports(charge, T, "insufficient_funds")

    assert note == "ignored: failure already recorded"
    assert statuses() == [(1, ChargeAttempt.FAILED), (2, ChargeAttempt.SCHEDULED)]
    assert [m.template for m in Outbox.select()] == ["payment_failed", "seller_payment_failed"]


def test_a_duplicate_success_is_ignored():
    """The same success reported twice pays the installment once and moves the plan on once."""
    order = factories.order(factories.seller(), plan="subscription", anchor=T)
    [charge] = factories.charge_due(T)
    factories.gateway_reports(charge, T)

    note = factories.gateway_reports(charge, T + HOUR)

    assert note == "ignored: charge already succeeded"
    assert Installment.get(order=order, number=1).paid_at == T
    assert order.installments.count() == 2


def test_one_notification_per_fact_even_when_every_report_comes_twice():
    """Three card failures and the interruption, each reported twice: four outbox rows, one per fact."""
    factories.order(factories.seller(), anchor=T)
    for step in range(3):
        at = T + 7 * step * DAY
        [charge] = factories.charge_due(at)
        factories.gateway_reports(charge, at, "insufficient_funds")
        factories.gateway_reports(charge, at + HOUR, "insufficient_funds")

    attempts = [a.id for a in ChargeAttempt.select().order_by(ChargeAttempt.number)]
    installment = Installment.get(number=1)
    assert outbox_facts() == sorted(
        [f"payment_failed:attempt-{a}" for a in attempts]
        + [f"seller_payment_failed:attempt-{a}" for a in attempts[:2]]
        + [f"seller_third_failure:installment-{installment.id}"]
    )


def test_one_notification_for_a_sepa_failure_reported_twice():
    """A SEPA failure and its duplicate: one message to the seller, none to the customer."""
    factories.order(factories.seller(), payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, "insufficient_funds")
    factories.gateway_reports(debit, T + HOUR, "insufficient_funds")

    assert [m.template for m in Outbox.select()] == ["seller_sepa_failed"]


def test_a_sepa_debit_reported_failed_then_succeeded_takes_the_order_out_of_collections():
    """The debt is paid after all: the order is active again, off the collections list, and June is debited."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.sepa(), anchor=T)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, "insufficient_funds")

    factories.gateway_reports(debit, T + HOUR)

    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert list(collections_list(seller)) == []
    assert [r.installment for r in factories.charge_due(dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC))] == [2]


def test_a_renewal_reported_failed_then_succeeded_takes_the_order_out_of_collections():
    """The fourth attempt's failure is corrected by its success (same reference): paid, active, not in collections."""
    seller = factories.seller()
    order = factories.order(seller, anchor=T)
    factories.decline_the_ladder(T)
    renew_plan(order, T + 20 * DAY)
    [renewal] = factories.charge_due(T + 20 * DAY)
    factories.gateway_reports(renewal, T + 20 * DAY, "card_declined")

    factories.gateway_reports(renewal, T + 20 * DAY + HOUR)

    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert Installment.get(order=order, number=1).status == Installment.PAID
    assert list(collections_list(seller)) == []


def test_a_failure_applied_while_another_transaction_applies_the_same_charges_success_waits_and_changes_nothing():
    """Two workers' batches side by side, one holding the success of a charge uncommitted while the other reaches
    its failure: the failure waits for the success to commit, then reads it and is ignored. No attempt 2 is
    scheduled on a paid installment (which would charge the customer twice) and the customer is not told of it."""
    order = factories.order(factories.seller(), anchor=T)
    [charge] = factories.charge_due(T)
    success_applied, failure_started = threading.Event(), threading.Event()

    def batch_with_the_success():
        with database().connection_context(), whole_transaction():
            factories.gateway_reports(charge, T)
            success_applied.set()
            failure_started.wait(5)
            time.sleep(0.3)  # while the failure, begun, reads and writes what it can

    other = threading.Thread(target=batch_with_the_success)
    other.start()
    assert success_applied.wait(5)
    failure_started.set()
    note = factories.gateway_reports(charge, T + HOUR, "insufficient_funds")
    other.join()

    assert note.startswith("ignored")
    assert statuses() == [(1, ChargeAttempt.SUCCEEDED)]
    assert Installment.get(order=order, number=1).status == Installment.PAID
    assert Outbox.select().where(Outbox.template == "payment_failed").count() == 0
