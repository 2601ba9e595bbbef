"""The tick at scale: installments opened a batch at a time, charges claimed and sent many to a job."""

import dataclasses
import datetime as dt
import signal
import threading
from collections import Counter
from decimal import InvalidOperation

import pytest
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from billing import charging, plans
from gateways import CHARGES_AT_ONCE
from gateways.sandbox import SandboxGateway
from jobs.work import run_due_work, send_due_charges, tick
from models import ChargeAttempt, Installment, Order, SandboxCharge, db, lock, transaction
from runtime import database, queue, set_clock, settings, utcnow
from tests import factories
from tests.conftest import at_once
from tests.receivers import Receiver
from tests.test_tick import T, work_the_queue

DAY = dt.timedelta(days=1)


def orders(count: int, **options) -> list[Order]:
    seller = factories.seller()
    return [factories.order(seller, invoice=f"INV-{n}", **options) for n in range(count)]


def first_attempts() -> Counter:
    """Per installment, how many first automatic attempts it has."""
    return Counter(
        a.installment_id
        for a in ChargeAttempt.select().where(ChargeAttempt.kind == ChargeAttempt.AUTOMATIC, ChargeAttempt.number == 1)
    )


def test_a_tick_opens_every_due_installment_of_many_orders_and_writes_one_first_attempt_each(monkeypatch):
    """300 orders due, opened 64 at a time: each first installment is open with its one attempt, keyed as always."""
    monkeypatch.setattr(plans, "OPEN_PER_BATCH", 64)
    made = orders(300)

    assert plans.start_due_installments(T) == 300

    opened = Installment.select().where(Installment.status == Installment.OPEN)
    assert sorted((i.order_id, i.number) for i in opened) == [(o.id, 1) for o in made]
    assert set(first_attempts().values()) == {1} and len(first_attempts()) == 300
    keys = {a.idempotency_key for a in ChargeAttempt.select()}
    assert keys == {f"tranche-{o.id}-1-automatic-1" for o in made}
    assert {(a.status, a.due_at, a.amount) for a in ChargeAttempt.select()} == {("scheduled", T, made[0].amount)}
    assert plans.start_due_installments(T) == 0


def test_two_ticks_at_once_open_each_installment_once(monkeypatch):
    """Two schedulers opening the same 200 due installments side by side: one first attempt each, none left."""
    monkeypatch.setattr(plans, "OPEN_PER_BATCH", 16)
    orders(200)
    opened = []

    def opening():
        with database().connection_context():
            opened.append(plans.start_due_installments(T))

    at_once(2, opening)

    assert sum(opened) == 200
    assert len(first_attempts()) == 200 and set(first_attempts().values()) == {1}
    assert not Installment.select().where(Installment.number == 1, Installment.status == "scheduled").exists()


def test_an_installment_whose_earlier_one_is_unpaid_is_not_opened_while_batches_read_past_it(monkeypatch):
    """Weekly orders on day 7: those whose week 1 is in dunning keep week 2 scheduled, every other week 2 opens,
    however the batches fall."""
    monkeypatch.setattr(plans, "OPEN_PER_BATCH", 3)
    made = orders(10, interval="weekly")
    for request in factories.charge_due(T):
        failed = request.order_id in {o.id for o in made[::2]}
        factories.gateway_reports(request, T, "insufficient_funds" if failed else None)

    week_2 = T + 7 * DAY
    assert plans.start_due_installments(week_2) == 5

    second = {i.order_id: i.status for i in Installment.select().where(Installment.number == 2)}
    assert second == {o.id: "scheduled" if i % 2 == 0 else "open" for i, o in enumerate(made)}


def test_a_batch_of_charges_sends_each_due_attempt_once_and_one_job_stands_for_many(monkeypatch):
    """250 due charges, 100 to a claim: three charge jobs send them all, one charge per attempt, all applied."""
    orders(250)
    jobs = Counter()

    run_due_work(T, on_job=lambda name, ok: jobs.update([(name, ok)]))

    assert jobs[("jobs.work.send_due_charges", True)] == 3
    assert not [job for job in jobs if job[0] == "jobs.work.charge"]
    keys = [c.idempotency_key for c in SandboxCharge.select()]
    assert len(keys) == len(set(keys)) == 250
    assert set(Installment.select(Installment.status).where(Installment.number == 1).tuples()) == {("paid",)}


def test_charges_of_one_backlog_sent_by_two_workers_at_once_are_each_sent_once(monkeypatch):
    """Two workers running charge jobs side by side over 120 due attempts, 10 to a claim: every attempt charged once,
    none left."""
    monkeypatch.setattr(charging, "CHARGES_PER_CLAIM", 10)
    orders(120)
    plans.start_due_installments(T)

    def worker():
        with database().connection_context():
            while charging.due_attempts(T).exists():
                send_due_charges(T.isoformat())

    at_once(2, worker)

    keys = [c.idempotency_key for c in SandboxCharge.select()]
    assert len(keys) == len(set(keys)) == 120
    assert not charging.due_attempts(T).exists()


class Together(Receiver):
    """A webhook endpoint that answers only once CHARGES_AT_ONCE of the gateway's events are in flight together."""

    def __init__(self, secret):
        super().__init__(secret)
        self.together = threading.Barrier(CHARGES_AT_ONCE, timeout=2)

    def handle(self, headers: dict, body: bytes) -> int:
        self.together.wait()
        return super().handle(headers, body)


def test_a_job_has_its_batchs_charges_at_the_gateway_four_at_a_time(monkeypatch):
    """A gateway takes a while to answer each charge: a job sends its batch side by side, and notes every answer."""
    receiver = Together(lambda: settings().gateway_webhook_secret)
    monkeypatch.setenv("PUBLIC_URL", receiver.url)
    orders(2 * CHARGES_AT_ONCE)
    plans.start_due_installments(T)
    try:
        send_due_charges(T.isoformat())
    finally:
        receiver.stop()

    assert len(receiver.received) == 2 * CHARGES_AT_ONCE
    noted = {(a.idempotency_key, a.status, a.reference) for a in ChargeAttempt.select()}
    assert noted == {(c.idempotency_key, "in_flight", c.reference) for c in SandboxCharge.select()}
    assert len(noted) == 2 * CHARGES_AT_ONCE


class Held(Receiver):
    """A webhook endpoint that holds every answer until `released` (or two seconds have passed). Once it holds
    CHARGES_AT_ONCE, it ends the job that sent them as RQ ends one past its timeout: SIGALRM to the main thread."""

    def __init__(self, secret):
        super().__init__(secret)
        self.released = threading.Event()
        self.held = 0
        self.counting = threading.Lock()

    def handle(self, headers: dict, body: bytes) -> int:
        with self.counting:
            self.held += 1
            all_held = self.held == CHARGES_AT_ONCE
        if all_held:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
        self.released.wait(timeout=2)
        return super().handle(headers, body)


def test_a_charge_job_past_its_timeout_starts_none_of_its_batchs_charges_left_and_a_later_job_sends_them(monkeypatch):
    """RQ ends a job past its timeout by raising in its main thread (SIGALRM): what its threads have under way then
    ends, what they had not started is never sent by that job (with the sandbox, which records a batch's charges in
    one statement, the charges' answers; with Stripe, the charges). Ten minutes later the next job sends each again,
    charged once."""
    receiver = Held(lambda: settings().gateway_webhook_secret)
    monkeypatch.setenv("PUBLIC_URL", receiver.url)
    orders(2 * CHARGES_AT_ONCE)
    plans.start_due_installments(T)
    try:
        # The timeout is the receiver's signal, sent once four charges are in flight; the alarm only bounds the test.
        with pytest.raises(JobTimeoutException), UnixSignalDeathPenalty(60, JobTimeoutException):
            send_due_charges(T.isoformat())
        assert len(receiver.received) == CHARGES_AT_ONCE

        receiver.released.set()
        send_due_charges((T + charging.RESEND_AFTER).isoformat())
    finally:
        receiver.stop()

    charged = {c.idempotency_key: c.reference for c in SandboxCharge.select()}
    assert len(charged) == 2 * CHARGES_AT_ONCE
    assert {a.idempotency_key: a.reference for a in ChargeAttempt.select()} == charged
    assert {e["payload"]["data"]["reference"] for e in receiver.received} == set(charged.values())


def test_a_batch_resending_a_charge_the_gateway_made_charges_only_the_new_ones_and_tells_that_one_again(monkeypatch):
    """A worker died once the sandbox had charged an attempt, before noting its answer. The batch that resends it
    beside two new attempts charges those two, not that one again, and delivers its event again under its first id."""
    first, again = (
        Receiver(lambda: settings().gateway_webhook_secret),
        Receiver(lambda: settings().gateway_webhook_secret),
    )
    orders(3)
    plans.start_due_installments(T)
    died, *new = ChargeAttempt.select().order_by(ChargeAttempt.id)
    monkeypatch.setenv("PUBLIC_URL", first.url)
    try:
        SandboxGateway(f"{first.url}/webhooks/gateway", settings().gateway_webhook_secret).charge(
            charging.claim_attempt(died.id, T)
        )
        monkeypatch.setenv("PUBLIC_URL", again.url)
        send_due_charges((T + charging.RESEND_AFTER).isoformat())
    finally:
        first.stop()
        again.stop()

    charged = {c.idempotency_key: c.reference for c in SandboxCharge.select()}
    assert set(charged) == {a.idempotency_key for a in [died, *new]}
    assert sorted(r["webhook-id"] for r in again.received) == sorted(f"evt_{ref}" for ref in charged.values())
    assert [r["webhook-id"] for r in first.received] == [f"evt_{charged[died.idempotency_key]}"]
    assert {a.reference for a in ChargeAttempt.select()} == set(charged.values())


def test_a_batch_the_sandbox_cannot_record_sends_none_of_its_charges_and_each_says_why():
    """Should the sandbox fail to record a batch (here an amount it cannot store), none of it is sent, and every charge
    of it fails with the error, for the job to report: their attempts wait in flight for their resend."""
    receiver = Receiver(lambda: settings().gateway_webhook_secret)
    orders(2)
    plans.start_due_installments(T)
    broken, whole = charging.claim_due_attempts(T).requests
    try:
        answers = SandboxGateway(receiver.url, settings().gateway_webhook_secret).charge_all(
            [dataclasses.replace(broken, amount="an amount"), whole]
        )
    finally:
        receiver.stop()

    assert [type(answer.exception()) for answer in answers] == [InvalidOperation, InvalidOperation]
    assert receiver.received == []
    assert SandboxCharge.select().count() == 0


def test_a_claim_skips_the_attempts_another_claim_holds_and_takes_the_next_ones():
    """While one worker's claim holds an attempt, another's takes the other due attempts instead of waiting."""
    if not db.for_update:
        pytest.skip("SQLite's claims take turns: there is no row to skip")
    orders(3)
    plans.start_due_installments(T)
    held, *others = ChargeAttempt.select().order_by(ChargeAttempt.id)
    claimed = []

    def other_worker():
        with database().connection_context():
            claimed.extend(charging.claim_due_attempts(T).requests)

    with transaction():
        lock(ChargeAttempt, held.id)
        at_once(1, other_worker)

    assert sorted(r.attempt_id for r in claimed) == [a.id for a in others]
    assert [r.attempt_id for r in charging.claim_due_attempts(T).requests] == [held.id]


def test_a_batch_claims_one_charge_per_installment_and_cancels_those_of_orders_no_longer_charged():
    """Two customer charges of one installment due together, and an attempt of an interrupted order: the batch sends
    one charge for the installment and cancels the other order's attempt."""
    paying, stopped = orders(2)
    for request in factories.charge_due(T):
        factories.gateway_reports(request, T, "insufficient_funds")
    later = T + DAY
    for number in (1, 2):
        plans.add_attempt(plans.open_installment(paying), ChargeAttempt.CUSTOMER, number, later)
    plans.add_attempt(plans.open_installment(stopped), ChargeAttempt.CUSTOMER, 1, later)
    Order.update(status=Order.HANDED_OFF).where(Order.id == stopped.id).execute()

    (request,) = factories.charge_due(later)

    assert (request.order_id, request.idempotency_key) == (paying.id, f"tranche-{paying.id}-1-customer-1")
    statuses = Counter(
        (a.installment.order_id, a.status) for a in ChargeAttempt.select().where(ChargeAttempt.kind == "customer")
    )
    assert statuses == {(paying.id, "in_flight"): 1, (paying.id, "scheduled"): 1, (stopped.id, "cancelled"): 1}


def test_the_scheduled_tick_queues_one_charge_job_that_reads_the_clock_when_it_runs():
    """Ticks on the clock (the Procfile's) queue one waiting charge job between them, with no time of its own: run late
    behind a backlog, it dates its charges when it sends them, not back to the tick."""
    orders(2)
    tick()
    tick()

    (job,) = [job for job in queue().get_jobs() if job.func_name == "jobs.work.send_due_charges"]
    assert job.args == ()
    set_clock(utcnow() + DAY)
    work_the_queue()
    sent = {a.requested_at for a in ChargeAttempt.select()}
    assert len(sent) == 1 and sent.pop() > utcnow() - dt.timedelta(minutes=1)


def test_attempts_waiting_for_another_charge_of_their_installment_are_not_due_so_they_never_fill_a_claim(monkeypatch):
    """Two installments with a customer's charge in flight and their retry due, one new order due: the retries wait
    (R2) and are left out of what is due, so a claim of two takes the new order's charge instead of filling up."""
    monkeypatch.setattr(charging, "CHARGES_PER_CLAIM", 2)
    waiting = orders(2)
    for request in factories.charge_due(T):
        factories.gateway_reports(request, T, "insufficient_funds")
    day_7, just_before = T + 7 * DAY, T + 7 * DAY - dt.timedelta(minutes=1)
    for order in waiting:
        plans.add_attempt(plans.open_installment(order), ChargeAttempt.CUSTOMER, 1, just_before)
    assert len(factories.charge_due(just_before)) == 2  # the customers' charges, unanswered
    new = factories.order(factories.seller("Bob Courses"), anchor=day_7)
    plans.start_due_installments(day_7)

    batch = charging.claim_due_attempts(day_7)

    assert [r.order_id for r in batch.requests] == [new.id] and not batch.full
