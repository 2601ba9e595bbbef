"""The jobs. Each opens its own connection, takes ids and the time, and calls one rule."""

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable

from peewee import Case
from rq import Worker
from rq.executions import Execution

from billing import charging, collections, digest, notifications, plan_changes, plans, reminders
from billing.followups import APPLY_EVENTS, DELIVER_HANDOFF, SEND_CHARGES, SEND_MESSAGES, FollowUp, follow_up
from billing.retries import EVENT_RETRIES
from bot.delivery import deliver_slack_message
from bot.once import forget_old_requests
from emails import Mailer, deliver_message
from gateways import get_gateway
from gateways.stripe import EVENT_TYPES as STRIPE_EVENT_TYPES
from jobs.posting import deliver_to_endpoint, post_to_partner
from metrics import CHARGES
from models import (
    ChargeAttempt,
    CollectionCase,
    GatewayEvent,
    Outbox,
    claimed,
    lock,
    skipping_locked,
    transaction,
    whole_transaction,
)
from runtime import (
    TICK,
    JobWorker,
    beat,
    database,
    redis_connection,
    settings,
    touched,
    utcnow,
    waiting_key,
    work_queues,
)
from webhooks.events import parse_outcome
from webhooks.stripe_events import stripe_outcome

log = logging.getLogger(__name__)

CLAIM = dt.timedelta(minutes=5)
# Events a worker takes at a time, and for how long: a batch applies in a fraction of a second, and a claim that
# lapses early only lets a second worker find its events applied (process_event claims each one again).
EVENTS_PER_CLAIM = 100
# On PostgreSQL a claim is applied in one transaction; on SQLite in transactions of ten events, since one holds the
# write lock every webhook waits for: a hundred hold it a third of a second (webhooks' p99 at half load 0.9 s against
# 0.6 s, bench/RESULTS-sqlite.md), while one a transaction accepts a third fewer webhooks (253/s against 362/s).
SQLITE_EVENTS_PER_TRANSACTION = 10
EVENT_LEASE = dt.timedelta(minutes=1)
MESSAGES_PER_CLAIM = 100  # held for Outbox.HOLD


def tick(at: str | None = None) -> None:
    """Start everything the database says is due by `at` (ISO; default now): what follow-ups lost, and what
    only time made due (a retry's day, a plan change's expiry).

    Safe to run from two schedulers at once: every job it starts claims its row before acting.
    """
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        beat(TICK)
        plans.start_due_installments(now)
        plan_changes.expire_plan_changes(now)
        plan_changes.remind_unanswered_changes(now)
        reminders.warn_expiring_cards(now)
        reminders.remind_due_installments(now)
        digest.send_due_digests(now)
        forget_old_requests(now)
        if charging.due_attempts(now).exists():
            # Without a time of its own, the job claims on the clock when it runs: one queued late behind a backlog
            # must not date its charges back to this tick, which would have the next tick resend them at once.
            follow_up(FollowUp(SEND_CHARGES, at=now if at else None))
        retry_due_events(now)
        if GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.RECEIVED).exists():
            # Even if a job is said to be waiting: it may have died before its first line (a killed worker).
            redis_connection().delete(waiting_key(APPLY_EVENTS))
            follow_up(FollowUp(APPLY_EVENTS))
        for case in collections.handoffs_to_deliver(now):
            follow_up(FollowUp(DELIVER_HANDOFF, case.id, now))
        if Outbox.select().where(Outbox.sent_at.is_null(), Outbox.next_try_at <= now).exists():
            follow_up(FollowUp(SEND_MESSAGES, at=now))


def charge(attempt_id: int, at: str | None = None) -> None:
    """R2: send one due attempt to the gateway at once (a renewal, a customer's charge); its outcome comes back as an
    event."""
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        request = charging.claim_attempt(attempt_id, now)
        touched(attempt=attempt_id, order=request.order_id if request else None)
        if request is None:
            return
        reference = get_gateway(settings()).charge(request)
        charging.record_answers({attempt_id: reference})


def send_due_charges(at: str | None = None) -> None:
    """R2: send a batch of the attempts due by `at` (default: now, read when the job runs) to the gateway, claimed
    beside any number of workers, gateways.CHARGES_AT_ONCE at a time. A full batch first starts the next job, queued
    behind the work waiting already (the events that answer these charges), so that a backlog of charges never holds
    their outcomes back.

    A charge that fails (the gateway unreachable) leaves its attempt in flight, resent after RESEND_AFTER with the
    same key; the batch's other charges still go, and then the job fails, for an operator to see."""
    if at is None:
        redis_connection().delete(waiting_key(SEND_CHARGES))  # before reading: an attempt due from now on starts one
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        batch = charging.claim_due_attempts(now)
        if batch.full:
            follow_up(FollowUp(SEND_CHARGES, at=now if at else None))
        answers = {}
        failures = []
        for request, answer in zip(batch.requests, get_gateway(settings()).charge_all(batch.requests), strict=True):
            touched(attempt=request.attempt_id, order=request.order_id)
            try:
                answers[request.attempt_id] = answer.result()
            except Exception as error:  # any error of one charge: the others of the batch are still sent
                failures.append(error)
        # Once for the batch: a crash before it only has the charges resent with their keys after RESEND_AFTER, which
        # charge nothing new and find the references again.
        charging.record_answers(answers)
        if failures:
            raise ExceptionGroup(f"{len(failures)} of {len(batch.requests)} charges failed", failures)


def process_event(event_id: int, now: dt.datetime) -> None:
    """Apply one stored gateway event, once: the claim and the effects commit together or not at all.

    An event whose application raises (a bug, a database error) is rolled back alone and recorded as
    failed, so that it never holds back the events behind it. A charge outcome is counted once committed."""
    try:
        with transaction():
            claimed = (
                GatewayEvent.update(status=GatewayEvent.PROCESSED, processed_at=now)
                .where(GatewayEvent.id == event_id, GatewayEvent.status == GatewayEvent.RECEIVED)
                .execute()
            )
            if not claimed:
                return
            applied, status = _apply(_outcome(GatewayEvent.get_by_id(event_id)), now)
            GatewayEvent.update(status=status, note=applied.note).where(GatewayEvent.id == event_id).execute()
    except Exception as error:  # whatever it is, it must not stop the events behind this one
        record_event_failure(event_id, error, now)
        return
    _count(applied)


def process_events(event_ids: list[int], now: dt.datetime) -> None:
    """Apply a claimed batch of stored events, each once, in one transaction: one commit, no savepoint, and one
    statement for their statuses, instead of six statements an event.

    Should anything in it fail (an event that cannot be applied, the commit, the connection), the batch is rolled
    back whole and its events applied again one at a time (process_event), where the one that fails fails alone."""
    try:
        with whole_transaction(), notifications.batch():
            # Held till the commit; one another worker holds (its claim lapsed meanwhile) is that worker's to apply.
            # Read whole before any is applied: a cursor left open by an event that raises would keep SQLite locked
            # for as long as the traceback, kept by a log handler, keeps it.
            received = list(
                skipping_locked(
                    GatewayEvent.select()
                    .where(GatewayEvent.id.in_(event_ids), GatewayEvent.status == GatewayEvent.RECEIVED)
                    .order_by(GatewayEvent.id)
                )
            )
            outcomes = {event.id: _outcome(event) for event in received}
            matched = [each for each in outcomes.values() if isinstance(each, charging.Outcome)]
            # In one order for every batch, before any is applied: two batches never hold each other's next one.
            charging.hold_installments(matched)
            loaded = charging.read_attempts(matched)
            applied, touched_orders = {}, set()
            for id, outcome in outcomes.items():
                attempts = None
                if isinstance(outcome, charging.Outcome):
                    # What an earlier outcome of the batch applied to the same order, read rows no longer show.
                    if outcome.order_id not in touched_orders:
                        attempts = loaded[outcome.order_id, outcome.installment]
                    touched_orders.add(outcome.order_id)
                try:
                    applied[id] = _apply(outcome, now, held=True, attempts=attempts)
                except charging.NotNotedYet as error:  # raised before it wrote anything: the batch goes on
                    record_event_failure(id, error, now)
            if applied:
                GatewayEvent.update(
                    status=Case(GatewayEvent.id, [(id, status) for id, (_, status) in applied.items()]),
                    note=Case(GatewayEvent.id, [(id, done.note) for id, (done, _) in applied.items()]),
                    processed_at=now,
                ).where(GatewayEvent.id.in_(list(applied))).execute()
    except Exception:  # whatever it is, it must not stop the events of the batch that can be applied
        # For an operator: a batch failing again and again (a deadlock, a bug) has all its work done twice.
        log.warning("a batch of %d events was rolled back; applying them one at a time", len(event_ids), exc_info=True)
        for event_id in event_ids:
            process_event(event_id, now)
        return
    for done, _status in applied.values():
        _count(done)


def _outcome(event: GatewayEvent) -> charging.Outcome | charging.Unmatched:
    """The outcome the event reports, or why it names none of Tranche's charges (a Stripe event of another app's)."""
    touched(event=event.id)
    try:
        outcome = read_outcome(event)
    except charging.Unmatched as error:
        return error
    touched(order=outcome.order_id)
    return outcome


def _apply(
    outcome: charging.Outcome | charging.Unmatched,
    now: dt.datetime,
    held: bool = False,
    attempts: list[ChargeAttempt] | None = None,
) -> tuple[charging.Applied, str]:
    """What applying an event's outcome did, and the status that says so."""
    try:
        if isinstance(outcome, charging.Unmatched):
            raise outcome
        applied = charging.apply_outcome(outcome, now, held, attempts)
    except charging.Unmatched as error:
        return charging.Applied(str(error)), GatewayEvent.UNMATCHED
    return applied, GatewayEvent.PROCESSED if applied.settled else GatewayEvent.IGNORED


def _count(applied: charging.Applied) -> None:
    if applied.settled:
        CHARGES.labels(applied.settled.kind, applied.settled.status).inc()


def read_outcome(event: GatewayEvent) -> charging.Outcome:
    """The outcome a stored event reports, read as its sender wrote it: Stripe's events, or the gateway format."""
    return stripe_outcome(event.body) if event.type in STRIPE_EVENT_TYPES else parse_outcome(event.body)


def record_event_failure(event_id: int, error: Exception, now: dt.datetime) -> None:
    """Mark the event failed with the error, and when it is tried again (EVENT_RETRIES)."""
    with transaction():
        lock(GatewayEvent, event_id)
        failures = GatewayEvent.get_by_id(event_id).tries + 1
        (
            GatewayEvent.update(
                status=GatewayEvent.FAILED,
                tries=failures,
                note=f"{type(error).__name__}: {error}"[:2000],
                next_try_at=EVENT_RETRIES.next_try(failures, now),
                claimed_until=None,
            )
            # Another worker may have applied it meanwhile: its outcome stands.
            .where(GatewayEvent.id == event_id, GatewayEvent.status == GatewayEvent.RECEIVED)
            .execute()
        )


def retry_due_events(now: dt.datetime) -> int:
    """Hand failed events whose next try is due by `now` back to the processor; returns how many."""
    return (
        GatewayEvent.update(status=GatewayEvent.RECEIVED, next_try_at=None, claimed_until=None)
        .where(GatewayEvent.status == GatewayEvent.FAILED, GatewayEvent.next_try_at <= now)
        .execute()
    )


class NotReplayable(LookupError):
    """The event to replay is unknown, or not failed; the message says which."""


def replay_event(event_id: int, now: dt.datetime) -> GatewayEvent:
    """An operator's replay: apply a failed event now, once (its bound of tries does not apply)."""
    handed_back = (
        GatewayEvent.update(status=GatewayEvent.RECEIVED, next_try_at=None)
        .where(GatewayEvent.id == event_id, GatewayEvent.status == GatewayEvent.FAILED)
        .execute()
    )
    if not handed_back:
        event = GatewayEvent.get_or_none(GatewayEvent.id == event_id)
        raise NotReplayable(
            f"no gateway event {event_id}" if event is None else f"event {event_id} is {event.status}, not failed"
        )
    process_event(event_id, now)
    return GatewayEvent.get_by_id(event_id)


def process_received_events() -> None:
    """Apply a claimed batch of the stored events not yet applied, oldest first, beside any number of workers. A full
    claim first starts the next job, queued behind the work waiting already (the messages these events write), so
    that a backlog of events never holds other work back, nor theirs a backlog of events."""
    redis_connection().delete(
        waiting_key(APPLY_EVENTS)
    )  # before reading: an event stored from now on wakes another job
    with database().connection_context():
        batch = claim_received_events(utcnow())
        if len(batch) == EVENTS_PER_CLAIM:
            follow_up(FollowUp(APPLY_EVENTS))
        together = EVENTS_PER_CLAIM if database().for_update else SQLITE_EVENTS_PER_TRANSACTION
        for start in range(0, len(batch), together):
            process_events(batch[start : start + together], utcnow())


def claim_received_events(now: dt.datetime) -> list[int]:
    """The ids of the oldest received events no other worker holds, held for EVENT_LEASE."""
    unclaimed = GatewayEvent.select(GatewayEvent.id).where(
        GatewayEvent.status == GatewayEvent.RECEIVED,
        GatewayEvent.claimed_until.is_null() | (GatewayEvent.claimed_until < now),
    )
    return claimed(
        unclaimed.order_by(GatewayEvent.id).limit(EVENTS_PER_CLAIM), {GatewayEvent.claimed_until: now + EVENT_LEASE}
    )


def send_due_messages(at: str | None = None) -> None:
    """Send a claimed batch of the messages of the outbox due by `at`, emails over one SMTP connection, beside any
    number of workers. A full claim first starts the next job, queued behind the work waiting already (the events
    behind these messages), so that a backlog of messages never holds events back."""
    redis_connection().delete(
        waiting_key(SEND_MESSAGES)
    )  # before reading: a message committed from now on wakes another job
    due_by = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context(), Mailer(settings()) as mailer:
        batch = Outbox.claim_due(due_by, utcnow(), MESSAGES_PER_CLAIM)
        if len(batch) == MESSAGES_PER_CLAIM:
            follow_up(FollowUp(SEND_MESSAGES, at=due_by if at else None))
        for message in batch:
            if message.channel == Outbox.SLACK:
                deliver_slack_message(message, mailer.settings, utcnow())
            elif message.channel == Outbox.WEBHOOK:
                deliver_to_endpoint(message, utcnow(), public_only=mailer.settings.production)
            else:
                deliver_message(message, mailer, utcnow())


def deliver_handoff(case_id: int, at: str | None = None) -> None:
    """R9: POST the hand-off, signed, to the collection partner until it accepts."""
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        # Claim the delivery for a while, so two workers do not post the same hand-off at once.
        claimed = (
            CollectionCase.update(next_delivery_at=now + CLAIM)
            .where(
                CollectionCase.id == case_id,
                CollectionCase.delivered_at.is_null(),
                CollectionCase.next_delivery_at <= now,
            )
            .execute()
        )
        if not claimed:
            return
        case = CollectionCase.get_by_id(case_id)
        touched(order=case.order_id)
        error = post_to_partner(settings(), f"handoff_{case.id}", collections.handoff_payload(case))
        collections.record_handoff_delivery(case, error, now)


def _alive(worker_name: str) -> bool:
    """Whether the worker of that name still runs. A worker killed outright leaves its registration behind until
    its heartbeat lapses (a minute and more); on this machine its process tells at once."""
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=redis_connection())
    if worker is None:
        return False
    if worker.hostname != socket.gethostname() or worker.pid is None:
        return True  # another machine's: its registration, kept by its heartbeats, is all we can see
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def jobs_running_elsewhere(work_queue) -> int:
    """The started jobs whose worker is still alive. A dead worker's jobs are not waited for: they stay in RQ's
    started registry until its cleanup takes them, and the tick redoes their work from the database."""
    running = 0
    for job_id, execution_id in work_queue.started_job_registry.get_job_and_execution_ids():
        try:
            worker_name = Execution.fetch(execution_id, job_id, connection=redis_connection()).worker_name
        except ValueError:  # finished meanwhile
            continue
        running += _alive(worker_name)
    return running


def run_due_work(at: dt.datetime, timeout: float = 300, on_job: Callable[[str, bool], None] | None = None) -> int:
    """Tick at `at` and work the queue until it and every running job are done; returns the jobs run here.

    How `flask tick --at` and the tests travel in time: every job a job queues runs too. Workers already
    running (under `make run`) may take some of the jobs: this waits for theirs as well, unless they died.
    """
    tick(at.isoformat())
    queues = work_queues()
    worker = JobWorker(queues, connection=redis_connection())
    worker.on_job = on_job
    deadline = time.monotonic() + timeout
    while True:
        worker.work(burst=True, logging_level="WARNING")
        if not any(each.count or jobs_running_elsewhere(each) for each in queues):
            return worker.successful_job_count + worker.failed_job_count
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still running after {timeout} s")
        time.sleep(0.05)
