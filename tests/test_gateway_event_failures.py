"""A stored event that cannot be applied is failed alone, retried with backoff, listed and replayed by operators."""

import datetime as dt
import logging
import threading
import time
from decimal import Decimal

import pytest

import runtime
from api.schemas import EVENT_DATA
from billing import charging
from billing.collections import hand_to_collections
from billing.dunning import renew_plan
from billing.endpoints import register_endpoint
from billing.errors import Refused
from billing.plan_changes import confirm_plan_change, propose_plan_change
from billing.plans import attempt_key
from billing.retries import EVENT_RETRIES
from jobs.work import process_events, process_received_events, run_due_work
from models import (
    ChargeAttempt,
    CollectionCase,
    GatewayEvent,
    Installment,
    Order,
    Outbox,
    WebhookEndpoint,
    whole_transaction,
)
from runtime import utcnow
from tests import factories
from tests.test_webhook_gateway import (
    EXPECTED_AFTER_FIXTURE,
    MALFORMED,
    T,
    charge_in_flight,
    event_body,
    installment_state,
    post,
    signed_headers,
)


def stored_event(webhook_id: str, body: str, **fields) -> GatewayEvent:
    """A row as an earlier version of the webhook stored it, checked less strictly than today."""
    fields = {"type": "payment.failed", **fields}
    return GatewayEvent.create(webhook_id=webhook_id, body=body, received_at=utcnow(), **fields)


def run_and_time(at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Run the work due by `at`; returns the wall-clock bounds the events were tried within."""
    before = utcnow()
    run_due_work(at)
    return before, utcnow()


def test_a_poison_event_ahead_of_a_valid_one_fails_alone_and_is_retried_with_backoff_up_to_the_bound(client, runner):
    """The valid event behind it is applied; the poison is failed with its error, tried EVENT_RETRIES.tries times."""
    poison = stored_event("msg_poison", (MALFORMED / "occurred_at_year_9999.json").read_text())
    order = charge_in_flight()
    body = event_body("payment_failed__card", order_id=order.id)
    assert post(client, body, signed_headers(body)).status_code == 200

    before, after = run_and_time(T)

    assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
    poison = GatewayEvent.get_by_id(poison.id)
    assert (poison.status, poison.tries) == ("failed", 1)
    assert poison.note.startswith("InvalidEvent: data.occurred_at must lie from 2000")
    for failures in range(2, EVENT_RETRIES.tries + 1):
        delay = EVENT_RETRIES.first * 2 ** (failures - 2)
        assert before + delay <= poison.next_try_at <= after + delay
        run_due_work(poison.next_try_at - dt.timedelta(seconds=1))
        assert GatewayEvent.get_by_id(poison.id).tries == failures - 1  # not before its time

        before, after = run_and_time(poison.next_try_at)

        poison = GatewayEvent.get_by_id(poison.id)
        assert (poison.status, poison.tries) == ("failed", failures)
    assert poison.next_try_at is None
    run_due_work(utcnow() + dt.timedelta(days=30))
    assert GatewayEvent.get_by_id(poison.id).tries == EVENT_RETRIES.tries

    listed = runner.invoke(args=["events", "failed"])
    assert listed.exit_code == 0
    assert f"{poison.id} msg_poison payment.failed tries={EVENT_RETRIES.tries} next try: none" in listed.output
    assert "last error: InvalidEvent: data.occurred_at must lie from 2000" in listed.output
    replayed = runner.invoke(args=["events", "replay", str(poison.id)])
    assert replayed.exit_code == 1
    assert "replay failed again" in replayed.output and f"tries={EVENT_RETRIES.tries + 1}" in replayed.output


def test_replaying_a_failed_event_applies_it_now_and_only_once(runner):
    """An event that failed in an outage is applied by `flask events replay`; a second replay is refused."""
    order = charge_in_flight()
    event = stored_event(
        "msg_outage",
        event_body("payment_failed__card", order_id=order.id),
        status=GatewayEvent.FAILED,
        tries=1,
        note="OperationalError: the database system is shutting down",
        next_try_at=utcnow() + dt.timedelta(days=1),
    )

    first = runner.invoke(args=["events", "replay", str(event.id)])
    second = runner.invoke(args=["events", "replay", str(event.id)])

    assert (first.exit_code, first.output) == (
        0,
        f"event {event.id} msg_outage: processed (attempt 1 failed: attempt 2 due 2026-05-08T08:00:00+00:00)\n",
    )
    assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
    assert Outbox.select().where(Outbox.template == "payment_failed").count() == 1
    assert second.exit_code == 1 and f"event {event.id} is processed, not failed" in second.output
    assert GatewayEvent.get_by_id(event.id).status == "processed"


def test_replaying_an_unknown_event_says_so(runner):
    """An id no event has gets a clear message and changes nothing."""
    result = runner.invoke(args=["events", "replay", "987654"])
    assert result.exit_code == 1 and "no gateway event 987654" in result.output


@pytest.mark.parametrize("event_id", ["99999999999999999999", "٣", "²", "0"])
def test_replaying_an_id_no_event_could_have_is_a_usage_error(runner, event_id):
    """Past a 64-bit id (an overflow on SQLite before) or in other digits: click's usage error, nothing run."""
    result = runner.invoke(args=["events", "replay", event_id])
    assert result.exit_code == 2 and "is not an event id" in result.output


def orders_whose_failures_were_posted(client, count: int) -> list[Order]:
    """`count` orders whose first charge is in flight, the failure of each posted (stored, not yet applied)."""
    orders = [charge_in_flight() for _ in range(count)]
    for order in orders:
        body = event_body("payment_failed__card", order_id=order.id)
        assert post(client, body, signed_headers(body)).status_code == 200
    return orders


def emails_about(order: Order) -> int:
    """The customer's emails about the failure of the order's first charge."""
    first = ChargeAttempt.select().join(Installment).where(Installment.order == order, ChargeAttempt.number == 1).get()
    return Outbox.select().where(Outbox.dedupe_key == f"payment_failed:attempt-{first.id}").count()


def test_an_event_failing_after_its_first_writes_is_undone_alone_and_the_rest_of_its_batch_is_applied(client):
    """The events of a claimed batch commit together; one whose application fails halfway (its retry's key is
    taken) leaves no trace of its writes, is failed with the error, and the others of the batch are applied."""
    ahead, poisoned, behind = orders_whose_failures_were_posted(client, 3)
    retry_key = attempt_key(poisoned.installments.where(Installment.number == 1).get(), ChargeAttempt.AUTOMATIC, 2)
    ChargeAttempt.create(
        installment=poisoned.installments.where(Installment.number == 2).get(),
        kind=ChargeAttempt.AUTOMATIC,
        number=1,
        idempotency_key=retry_key,
        due_at=T + dt.timedelta(days=60),
        amount="30.00",
    )

    run_due_work(T)

    for applied in (ahead, behind):
        assert installment_state(applied) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
        assert emails_about(applied) == 1
    order, installment, attempts = installment_state(poisoned)
    assert (order, installment, attempts[0][:2]) == ("active", "open", (1, "in_flight"))  # its failure undone
    assert emails_about(poisoned) == 0
    event = GatewayEvent.get(GatewayEvent.body.contains(f'"order_id": {poisoned.id},'))
    assert (event.status, event.tries) == ("failed", 1)
    assert event.note.startswith("IntegrityError")


@pytest.fixture
def batch_commit_refused():
    """A fault on the statement that records a batch's outcomes (it alone sets a note and processed_at at once):
    the database refuses it, as an outage between the events and the commit would."""
    database = runtime.database()
    names = "refuse_batch", "refuse_batch_notes"
    if database.for_update:  # PostgreSQL
        database.execute_sql(
            f"CREATE FUNCTION {names[0]}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'batch refused'; END $$ "
            "LANGUAGE plpgsql"
        )
        condition = "OLD.note IS DISTINCT FROM NEW.note AND OLD.processed_at IS DISTINCT FROM NEW.processed_at"
        body = f"EXECUTE FUNCTION {names[0]}()"
    else:
        condition = "OLD.note IS NOT NEW.note AND OLD.processed_at IS NOT NEW.processed_at"
        body = "BEGIN SELECT RAISE(ABORT, 'batch refused'); END"
    on = "ON gateway_event" if database.for_update else ""
    database.execute_sql(
        f"CREATE TRIGGER {names[1]} BEFORE UPDATE ON gateway_event FOR EACH ROW WHEN ({condition}) {body}"
    )
    try:
        yield
    finally:
        database.execute_sql(f"DROP TRIGGER {names[1]} {on}")
        if database.for_update:
            database.execute_sql(f"DROP FUNCTION {names[0]}()")


def test_a_batch_that_cannot_commit_is_applied_again_one_event_at_a_time_each_once(
    client, batch_commit_refused, caplog
):
    """Nothing of the refused batch stays, and each of its events is then applied alone: one retry and one email
    each, never two, and no event left waiting; the operator reads why in the worker's log."""
    orders = orders_whose_failures_were_posted(client, 3)

    with caplog.at_level(logging.WARNING, logger="jobs.work"):
        run_due_work(T)

    (warning,) = [r for r in caplog.records if r.name == "jobs.work"]
    assert warning.getMessage() == "a batch of 3 events was rolled back; applying them one at a time"
    assert "batch refused" in str(warning.exc_info[1])

    for order in orders:
        assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
        assert emails_about(order) == 1
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.PROCESSED}


@pytest.fixture
def slow_settling_of(slow_updates):
    """Make the recording of one attempt's outcome (`status`: failed or succeeded) take half a second, so that a
    batch stops there while it holds that attempt's installment."""

    def slow(attempt_id: int, status: str = ChargeAttempt.FAILED) -> None:
        slow_updates("charge_attempt", f"OLD.id = {attempt_id} AND NEW.status = '{status}'")

    return slow


def test_two_batches_naming_the_same_installments_in_opposite_orders_take_turns_and_both_commit_whole(
    slow_settling_of, caplog
):
    """One worker's batch reports the failures of two charges, another's their successes in the other order. The
    second waits for the first instead of deadlocking with it: neither is rolled back to be applied one event at a
    time (work done twice, and a warning to the operator), and both plans end paid."""
    if not runtime.database().for_update:
        pytest.skip("SQLite's one writer makes two batches take turns: there is no lock order to get wrong")
    first, second = charge_in_flight(), charge_in_flight()
    events = {}
    for kind, order in (("failed", first), ("failed", second), ("succeeded", second), ("succeeded", first)):
        body = event_body(f"payment_{kind}__card", order_id=order.id)
        events[kind, order.id] = stored_event(f"msg_{kind}_{order.id}", body, type=f"payment.{kind}").id
    slow_settling_of(
        ChargeAttempt.select().join(Installment).where(Installment.order == first, ChargeAttempt.number == 1).get().id
    )
    failures = [events["failed", first.id], events["failed", second.id]]
    successes = [events["succeeded", second.id], events["succeeded", first.id]]

    def failures_batch():
        with runtime.database().connection_context():
            process_events(failures, T)

    with caplog.at_level(logging.WARNING, logger="jobs.work"):
        other = threading.Thread(target=failures_batch)
        other.start()
        time.sleep(0.2)  # the failures' batch holds the first installment, and waits in the trigger
        with runtime.database().connection_context():
            process_events(successes, T + dt.timedelta(hours=1))
        other.join()

    assert [r.getMessage() for r in caplog.records if r.name == "jobs.work"] == []
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.PROCESSED}
    for order in (first, second):
        assert Installment.get(order=order, number=1).status == Installment.PAID
        assert emails_about(order) == 1


def test_one_batch_carrying_a_charges_failure_then_its_success_leaves_what_applying_them_one_by_one_leaves():
    """A batch reads the attempts of all its installments at once; an outcome that follows another of its order in
    the same batch reads them again, as the first left them. A card charge reported failed then paid ends paid, its
    retry cancelled; a SEPA debit reported failed then paid leaves collections and the plan is active; an order
    with a single report in the batch is paid as well."""
    card, sepa, single = charge_in_flight(), charge_in_flight(factories.sepa()), charge_in_flight()
    reports = [
        ("payment_failed__card", card),
        ("payment_failed__sepa", sepa),
        ("payment_succeeded__card", single),
        ("payment_succeeded__card", card),
        ("payment_succeeded__sepa", sepa),
    ]
    events = [
        stored_event(f"msg_{n}", event_body(fixture, order_id=order.id), type=fixture.split("__")[0].replace("_", "."))
        for n, (fixture, order) in enumerate(reports)
    ]

    process_events([event.id for event in events], T + dt.timedelta(hours=1))

    assert [GatewayEvent.get_by_id(event.id).status for event in events] == [GatewayEvent.PROCESSED] * 5
    for order in (card, sepa, single):
        assert installment_state(order)[:2] == ("active", "paid")
    assert [attempt[:2] for attempt in installment_state(card)[2]] == [(1, "succeeded"), (2, "cancelled")]
    assert not CollectionCase.select().where(CollectionCase.order == sepa).exists()


def test_a_batch_whose_messages_outgrow_what_one_statement_carries_commits_whole_each_message_once(client, caplog):
    """A seller whose system listens at many endpoints: each failure of a batch writes a message for every one of
    them, more than one INSERT may carry (PostgreSQL binds at most 65,535 values in a statement, SQLite 32,766). The
    batch still commits whole, with every message once, instead of being rolled back and applied one at a time."""
    seller = factories.seller()
    endpoints = 740
    WebhookEndpoint.insert_many(
        [
            {"seller": seller, "url": f"https://erp.example/{n}", "secret": "whsec_x", "created_at": T}
            for n in range(endpoints)
        ]
    ).execute()
    orders = [factories.order(seller) for _ in range(10)]
    for attempt in factories.open_due(T):
        assert charging.claim_attempt(attempt.id, T) is not None
    for order in orders:
        body = event_body("payment_failed__card", order_id=order.id)
        assert post(client, body, signed_headers(body)).status_code == 200

    with caplog.at_level(logging.WARNING, logger="jobs.work"):
        process_received_events()  # the events' job alone: the deliveries would go nowhere

    assert [r.getMessage() for r in caplog.records if r.name == "jobs.work"] == []
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.PROCESSED}
    deliveries = Outbox.select().where(Outbox.channel == Outbox.WEBHOOK, Outbox.template == "payment.failed")
    assert deliveries.count() == len(orders) * endpoints
    for order in orders:
        assert emails_about(order) == 1


@pytest.mark.parametrize("seller_asks", [renew_plan, hand_to_collections], ids=["renewal", "hand-off"])
def test_a_sellers_renewal_or_hand_off_asked_while_the_third_charges_late_success_is_applied_waits_and_is_refused(
    slow_settling_of, seller_asks
):
    """The third failure interrupted the plan; the gateway then reports that charge paid after all, and while a
    worker's batch applies it the seller asks for the fourth attempt, or hands the debt off. Either waits for the
    batch, instead of deadlocking with it (the batch holds the installment and then resumes the order; these held the
    order and then reached the installment), and is refused: the plan is active again, nothing is charged twice and
    no paid debt goes to the partner."""
    if not runtime.database().for_update:
        pytest.skip("SQLite's one writer makes the two take turns: there is no lock order to get wrong")
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    for step in range(3):
        [third] = factories.charge_due(T + dt.timedelta(days=7 * step))
        factories.gateway_reports(third, T + dt.timedelta(days=7 * step), "insufficient_funds")
    assert Order.get_by_id(order.id).status == Order.INTERRUPTED
    slow_settling_of(third.attempt_id, ChargeAttempt.SUCCEEDED)
    late = T + dt.timedelta(days=15)

    def batch_with_the_late_success():
        with runtime.database().connection_context(), whole_transaction():
            factories.gateway_reports(third, late)

    other = threading.Thread(target=batch_with_the_late_success)
    other.start()
    time.sleep(0.2)  # the batch holds the installment, and waits in the trigger
    with pytest.raises(Refused):
        seller_asks(order, late)
    other.join()

    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert Installment.get(order=order, number=1).status == Installment.PAID
    renewals = ChargeAttempt.select().where(ChargeAttempt.kind == ChargeAttempt.RENEWAL)
    assert renewals.count() == 0
    assert not CollectionCase.select().where(CollectionCase.handed_off_at.is_null(False)).exists()


def test_a_plan_change_confirmed_while_a_batch_pays_a_subscription_applies_to_the_installment_that_success_adds(
    slow_settling_of,
):
    """A worker's batch applies another order's failure, then the success of a subscription's charge, which adds its
    next installment; the customer confirms the subscription's new amount meanwhile. The confirmation waits for the
    batch, which read the subscription's amount as it began: the next installment is at the new amount (R4), not the
    old one the batch read."""
    if not runtime.database().for_update:
        pytest.skip("SQLite's one writer makes the two take turns: the batch reads the amount after the confirmation")
    other = factories.order(factories.seller(), anchor=T)
    subscription = factories.order(factories.seller(), plan="subscription", anchor=T)
    requests = factories.charge_due(T)
    change = propose_plan_change(subscription, "40.00", T)
    events = [
        stored_event(f"msg_{kind}", event_body(f"payment_{kind}__card", order_id=order.id), type=f"payment.{kind}").id
        for kind, order in (("failed", other), ("succeeded", subscription))
    ]
    slow_settling_of(next(request.attempt_id for request in requests if request.order_id == other.id))

    def batch():
        with runtime.database().connection_context():
            process_events(events, T + dt.timedelta(hours=1))

    worker = threading.Thread(target=batch)
    worker.start()
    time.sleep(0.2)  # the batch holds both installments, read both orders, and waits in the trigger
    confirm_plan_change(change.id, T + dt.timedelta(hours=1))
    worker.join()

    assert Installment.get(order=subscription, number=1).status == Installment.PAID
    assert Installment.get(order=subscription, number=2).amount == Decimal("40.00")


def test_references_of_a_batch_of_charges_noted_while_a_batch_applies_their_outcomes_in_another_order_wait_on_nothing(
    slow_settling_of, caplog
):
    """A charge job notes the gateway's references of its charges in one statement as the batch ends, while a
    worker's batch applies their failures, the later charge's first. Neither waits for the other with rows held
    (that deadlocked: PostgreSQL ended one): the references are noted, and the batch commits whole."""
    if not runtime.database().for_update:
        pytest.skip("SQLite's one writer makes the two take turns: there is no lock order to get wrong")
    first, second = charge_in_flight(), charge_in_flight()
    attempts = [first_attempt(order).id for order in (first, second)]
    events = [
        stored_event(f"msg_{order.id}", event_body("payment_failed__card", order_id=order.id)).id
        for order in (second, first)
    ]
    slow_settling_of(attempts[1])

    def batch():
        with runtime.database().connection_context():
            process_events(events, T + dt.timedelta(hours=1))

    with caplog.at_level(logging.WARNING, logger="jobs.work"):
        worker = threading.Thread(target=batch)
        worker.start()
        time.sleep(0.2)  # the batch has settled the second charge, and waits in the trigger
        charging.record_answers({attempt_id: f"ch_noted_{attempt_id}" for attempt_id in attempts})
        worker.join()

    assert [r.getMessage() for r in caplog.records if r.name == "jobs.work"] == []
    assert {GatewayEvent.get_by_id(event).status for event in events} == {GatewayEvent.PROCESSED}
    assert [ChargeAttempt.get_by_id(attempt).status for attempt in attempts] == [ChargeAttempt.FAILED] * 2


@pytest.mark.parametrize("slowed", ["its own", "an earlier"])
def test_a_reference_noted_while_a_batch_applies_a_failure_reported_without_one_is_still_noted(
    slow_settling_of, slowed
):
    """A gateway may leave the charge's reference out of its report (SPEC). While a worker's batch applies such a
    failure (stopped at the charge's own, or at an earlier one of the batch, after it read both), the charge job
    notes the reference the gateway answered with. The reference stays noted, so the gateway's later report of the
    same charge paid, by that reference, pays the installment instead of being refused as a charge Tranche does
    not know (and the retry charging the customer again)."""
    if not runtime.database().for_update:
        pytest.skip("SQLite's one writer makes the two take turns: nothing is read before the note")
    earlier, order = charge_in_flight(), charge_in_flight()
    attempt, earlier_attempt = (first_attempt(each).id for each in (order, earlier))
    batch_events = [stored_event("msg_earlier", event_body("payment_failed__card", order_id=earlier.id)).id]
    batch_events.append(
        stored_event("msg_failed", event_body("payment_failed__card_without_reference", order_id=order.id)).id
    )
    slow_settling_of(attempt if slowed == "its own" else earlier_attempt)

    def batch():
        with runtime.database().connection_context():
            process_events(batch_events, T + dt.timedelta(hours=1))

    worker = threading.Thread(target=batch)
    worker.start()
    time.sleep(0.2)  # the batch has read both charges' attempts, settled one of them, and waits in the trigger
    charging.record_answers({attempt: "ch_answered"})
    worker.join()
    success = stored_success("msg_paid", order, "ch_answered")
    process_events([success], T + dt.timedelta(hours=2))

    assert ChargeAttempt.get_by_id(attempt).reference == "ch_answered"
    assert GatewayEvent.get_by_id(success).status == GatewayEvent.PROCESSED
    assert installment_state(order)[1] == Installment.PAID


def first_attempt(order: Order) -> ChargeAttempt:
    return ChargeAttempt.select().join(Installment).where(Installment.order == order).get()


def stored_success(webhook_id: str, order: Order, reference: str, **data) -> int:
    """A stored gateway event: `order`'s first installment paid by the charge `reference` (`data`: other fields)."""
    body = event_body("payment_succeeded__card", order_id=order.id, reference=reference, **data)
    return stored_event(webhook_id, body, type="payment.succeeded").id


def retry_sent(failed: ChargeAttempt) -> ChargeAttempt:
    """The retry of the failed attempt `failed`, claimed and sent on its due date."""
    retry = ChargeAttempt.get(
        ChargeAttempt.installment == failed.installment_id, ChargeAttempt.number == failed.number + 1
    )
    (sent,) = charging.claim_due_attempts(retry.due_at).requests
    assert sent.attempt_id == retry.id
    return retry


def failed_without_reference() -> tuple[Order, ChargeAttempt]:
    """An order whose first charge the gateway reported failed without its reference, which the charge job has not
    noted yet: the attempt is failed, its retry scheduled."""
    order = charge_in_flight()
    attempt = first_attempt(order)
    failed = stored_event("msg_failed", event_body("payment_failed__card_without_reference", order_id=order.id))
    process_events([failed.id], T)
    return order, attempt


def test_a_success_reported_by_a_reference_not_yet_noted_after_a_failure_without_one_is_tried_again_and_pays(caplog):
    """A gateway may leave the reference out of a failure (SPEC), then report the same charge paid by its reference
    before the charge job has noted the gateway's answer (it notes a batch's answers as the batch ends). The success
    is not refused as naming a charge Tranche does not know (unmatched, never tried again: the installment left
    unpaid, and its retry charging the customer twice). It is tried again, and pays the installment once noted; the
    other events of its batch are applied meanwhile."""
    order, attempt = failed_without_reference()
    other = charge_in_flight()
    success = stored_success("msg_paid", order, "ch_answered")
    beside = stored_event("msg_other", event_body("payment_failed__card", order_id=other.id)).id
    with caplog.at_level(logging.WARNING, logger="jobs.work"):
        process_events([success, beside], T + dt.timedelta(minutes=1))

    assert [r.getMessage() for r in caplog.records if r.name == "jobs.work"] == []  # the batch was not rolled back
    assert GatewayEvent.get_by_id(beside).status == GatewayEvent.PROCESSED
    event = GatewayEvent.get_by_id(success)
    assert (event.status, event.tries) == (GatewayEvent.FAILED, 1) and event.next_try_at is not None
    assert "ch_answered" in event.note
    charging.record_answers({attempt.id: "ch_answered"})
    run_due_work(event.next_try_at)

    assert GatewayEvent.get_by_id(success).status == GatewayEvent.PROCESSED
    _status, first_installment, attempts = installment_state(order)
    assert first_installment == Installment.PAID
    assert [status for _number, status, _due in attempts] == [ChargeAttempt.SUCCEEDED, ChargeAttempt.CANCELLED]


def test_a_success_that_may_be_the_failed_charges_is_not_taken_for_the_retry_in_flight():
    """The first charge failed without its reference, none noted since; its retry is in flight. A success by a
    reference Tranche does not know may be the first charge's: it waits to be tried again rather than settle the
    retry, whose own reference could then never be noted (and whose own outcome would be ignored)."""
    order, first = failed_without_reference()
    retry = retry_sent(first)
    success = stored_success("msg_paid", order, "ch_first")
    process_events([success], retry.due_at)

    assert GatewayEvent.get_by_id(success).status == GatewayEvent.FAILED
    statuses = [ChargeAttempt.get_by_id(attempt.id).status for attempt in (first, retry)]
    assert statuses == [ChargeAttempt.FAILED, ChargeAttempt.IN_FLIGHT]


def test_a_success_by_an_unknown_reference_after_a_charge_looked_up_and_found_never_sent_is_unmatched():
    """A resent charge whose look-up found nothing sent is cancelled without a reference: it is not a charge a later
    report can name, so a success by a reference Tranche does not know is kept as unmatched for an operator."""
    order = charge_in_flight()
    attempt = first_attempt(order)
    charging.record_answers({attempt.id: None})
    success = stored_success("msg_paid", order, "ch_unknown")
    process_events([success], T)

    assert GatewayEvent.get_by_id(success).status == GatewayEvent.UNMATCHED


def test_a_success_by_a_reference_other_than_the_one_noted_for_the_charge_in_flight_is_unmatched():
    """The charge in flight has its reference noted. A report of the same installment paid by another reference,
    a charge Tranche does not know, is not booked on it: its own outcome would then be ignored, and a second payment
    go unseen. It is kept as unmatched for an operator, and the charge in flight is settled by its own report."""
    order = charge_in_flight()
    attempt = first_attempt(order)
    charging.record_answers({attempt.id: "ch_ours"})
    unknown = stored_success("msg_other", order, "ch_other")
    process_events([unknown], T)

    assert GatewayEvent.get_by_id(unknown).status == GatewayEvent.UNMATCHED
    assert "ch_other" in GatewayEvent.get_by_id(unknown).note
    attempt = ChargeAttempt.get_by_id(attempt.id)
    assert (attempt.status, attempt.reference) == (ChargeAttempt.IN_FLIGHT, "ch_ours")
    process_events([stored_success("msg_ours", order, "ch_ours")], T)
    assert installment_state(order)[1] == Installment.PAID


def test_a_late_success_of_a_failed_charge_whose_retry_paid_the_installment_is_recorded_once_its_reference_is_noted():
    """The first charge failed without its reference and its retry paid the installment. The first charge's own success
    then arrives, by a reference not noted yet: a second payment of the installment. It is not ignored as one more
    report of a paid installment (never tried again, unseen) but tried again, and settles the first charge once noted,
    as it would have had the reference been noted first. The installment keeps the payment that paid it."""
    order, first = failed_without_reference()
    register_endpoint(order.seller, "https://books.example/tranche", T, public_only=False)
    retry = retry_sent(first)
    charging.record_answers({retry.id: "ch_retry"})
    process_events([stored_success("msg_retry", order, "ch_retry")], retry.due_at)
    assert installment_state(order)[1] == Installment.PAID
    paid_at = order.installments.where(Installment.number == 1).get().paid_at
    success = stored_success(
        "msg_first", order, "ch_first", occurred_at=(retry.due_at + dt.timedelta(hours=1)).isoformat()
    )
    process_events([success], retry.due_at)

    event = GatewayEvent.get_by_id(success)
    assert event.status == GatewayEvent.FAILED
    charging.record_answers({first.id: "ch_first"})
    run_due_work(event.next_try_at)

    event = GatewayEvent.get_by_id(success)
    assert (event.status, event.note) == (
        GatewayEvent.PROCESSED,
        "installment 1 paid twice: automatic charge 1 (ch_first) succeeded once automatic charge 2 (ch_retry) had "
        "paid it",
    )
    assert ChargeAttempt.get_by_id(first.id).status == ChargeAttempt.SUCCEEDED
    assert order.installments.where(Installment.number == 1).get().paid_at == paid_at
    # The seller's system hears of both payments, the second naming the one that paid: what a refund needs.
    recovered = [
        m.context["data"] for m in Outbox.select().where(Outbox.template == "payment.recovered").order_by(Outbox.id)
    ]
    assert [(d["attempt"], d["reference"], d.get("paid_by")) for d in recovered] == [
        (2, "ch_retry", None),
        (1, "ch_first", {"attempt": 2, "kind": "automatic", "reference": "ch_retry"}),
    ]
    EVENT_DATA["payment.recovered"].model_validate(recovered[1])  # as the API document describes the event


def test_a_third_payment_of_an_installment_names_the_charge_that_paid_it_not_the_second_payment():
    """Charges 1 and 2 failed without their references, charge 3 paid; both then turn out paid. Each late success
    names charge 3, whose payment the installment shows, as the one that paid: charge 1 was a second payment too."""
    order, first = failed_without_reference()
    second = retry_sent(first)
    failed = stored_event("msg_failed_2", event_body("payment_failed__card_without_reference", order_id=order.id))
    process_events([failed.id], second.due_at)
    third = retry_sent(second)
    charging.record_answers({third.id: "ch_third", first.id: "ch_first", second.id: "ch_second"})
    process_events([stored_success("msg_third", order, "ch_third", occurred_at=third.due_at.isoformat())], third.due_at)
    for hours, late in enumerate(("ch_first", "ch_second"), start=1):
        paid_at = (third.due_at + dt.timedelta(hours=hours)).isoformat()
        process_events([stored_success(f"msg_{late}", order, late, occurred_at=paid_at)], third.due_at)

    notes = [
        e.note for e in GatewayEvent.select().where(GatewayEvent.webhook_id.in_(["msg_ch_first", "msg_ch_second"]))
    ]
    assert sorted(notes) == [
        "installment 1 paid twice: automatic charge 1 (ch_first) succeeded once automatic charge 3 (ch_third) had "
        "paid it",
        "installment 1 paid twice: automatic charge 2 (ch_second) succeeded once automatic charge 3 (ch_third) had "
        "paid it",
    ]
