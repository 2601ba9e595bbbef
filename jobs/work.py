"""The jobs. Each opens its own connection, takes ids and the time, and calls one rule."""

import datetime as dt
import time

from rq import SimpleWorker

from billing import charging, collections, plan_changes, plans
from bot.delivery import deliver_slack_message
from bot.once import forget_old_requests
from emails import deliver_message
from gateways import get_gateway
from jobs import database, enqueue_after_commit, queue, redis_connection, settings, utcnow
from jobs.partner import post_to_partner
from models import CollectionCase, GatewayEvent, Outbox, transaction
from webhooks.events import InvalidEvent, parse_outcome

CLAIM = dt.timedelta(minutes=5)
# Set while a send_due_messages job waits to start: it will see every message committed before then, so
# messages written meanwhile need no job of their own (a job costs RQ more than sending an email; bench/).
SENDER_WAITING = "tranche:sender-waiting"
EVENTS_WAITING = "tranche:events-waiting"
BATCH = 500


def tick(at: str | None = None) -> None:
    """Turn everything the database says is due by `at` (ISO; default now) into jobs.

    Safe to run from two schedulers at once: every job it queues claims its row before acting.
    """
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        plans.start_due_installments(now)
        plan_changes.expire_plan_changes(now)
        forget_old_requests(now)
        for attempt in charging.due_attempts(now):
            enqueue_after_commit(charge, attempt.id, now.isoformat(), job_id=f"charge-{attempt.id}")
        if GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.RECEIVED).exists():
            wake_event_processor()
        for case in collections.handoffs_to_deliver(now):
            enqueue_after_commit(deliver_handoff, case.id, now.isoformat(), job_id=f"handoff-{case.id}")
        if Outbox.select().where(Outbox.sent_at.is_null(), Outbox.next_try_at <= now).exists():
            enqueue_after_commit(send_due_messages, now.isoformat())


def charge(attempt_id: int, at: str | None = None) -> None:
    """R2: send one due attempt to the gateway; its outcome comes back as an event."""
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        request = charging.claim_attempt(attempt_id, now)
        if request is None:
            return
        reference = get_gateway(settings()).charge(request)
        charging.record_reference(attempt_id, reference)


def process_event(event_id: int, now: dt.datetime) -> bool:
    """Apply one stored gateway event, once: the claim and the effects commit together or not at all."""
    with transaction():
        claimed = (
            GatewayEvent.update(status=GatewayEvent.PROCESSED, processed_at=now)
            .where(GatewayEvent.id == event_id, GatewayEvent.status == GatewayEvent.RECEIVED)
            .execute()
        )
        if not claimed:
            return False
        try:
            note = charging.apply_outcome(parse_outcome(GatewayEvent.get_by_id(event_id).body), now)
            status = GatewayEvent.IGNORED if note.startswith("ignored") else GatewayEvent.PROCESSED
        except (charging.Unmatched, InvalidEvent) as error:
            note, status = str(error), GatewayEvent.UNMATCHED
        GatewayEvent.update(status=status, note=note).where(GatewayEvent.id == event_id).execute()
    return True


def process_received_events() -> None:
    """Apply every stored event not yet applied, oldest first; then have the messages they wrote sent."""
    redis_connection().delete(EVENTS_WAITING)  # before reading: an event stored from now on wakes another job
    with database().connection_context():
        while True:
            batch = list(
                GatewayEvent.select(GatewayEvent.id)
                .where(GatewayEvent.status == GatewayEvent.RECEIVED)
                .order_by(GatewayEvent.id)
                .limit(BATCH)
            )
            applied = [process_event(event.id, utcnow()) for event in batch]
            if any(applied):
                wake_sender()
            if len(batch) < BATCH:
                return


def _wake(key: str, job) -> None:
    # One job waiting to start stands for everything stored before it starts: a job costs RQ more than the
    # work of one event or email (bench/). The key expires, so a waiting job lost in a crash holds the next
    # ones back a minute at most; the tick wakes them too.
    if redis_connection().set(key, 1, nx=True, ex=60):
        queue().enqueue(job, result_ttl=0, failure_ttl=86400)


def wake_event_processor() -> None:
    """Have process_received_events start after this moment, unless one is already waiting to."""
    _wake(EVENTS_WAITING, process_received_events)


def wake_sender() -> None:
    """Have a send_due_messages job start after this moment, unless one is already waiting to."""
    _wake(SENDER_WAITING, send_due_messages)


def send_due_messages(at: str | None = None) -> None:
    """Send every message of the outbox due by `at`; each is claimed first, so two workers never send one twice."""
    redis_connection().delete(SENDER_WAITING)  # before reading: a message committed from now on wakes another job
    now = dt.datetime.fromisoformat(at) if at else utcnow()
    with database().connection_context():
        while True:
            due = Outbox.select(Outbox.id, Outbox.channel).where(
                Outbox.sent_at.is_null(),
                Outbox.next_try_at <= now,
                Outbox.claimed_until.is_null() | (Outbox.claimed_until < utcnow()),
            )
            # Read the ids first: on SQLite, writing while a read is still open fails at once with "database
            # is locked" when another process wrote in between (the read's snapshot cannot become a write).
            batch = list(due.order_by(Outbox.id).limit(BATCH))
            for message in batch:
                deliver = deliver_slack_message if message.channel == Outbox.SLACK else deliver_message
                deliver(message.id, settings(), utcnow())
            # One job may stand for many events now: it sends until nothing due is left unclaimed.
            if len(batch) < BATCH:
                return


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
        error = post_to_partner(settings(), f"handoff_{case.id}", collections.handoff_payload(case))
        collections.record_handoff_delivery(case, error, now)


def run_due_work(at: dt.datetime, timeout: float = 300) -> int:
    """Tick at `at` and work the queue until it and every running job are done; returns the jobs run here.

    How `flask tick --at` and the tests travel in time: every job a job queues runs too. Workers already
    running (under `make run`) may take some of the jobs: this waits for theirs as well.
    """
    tick(at.isoformat())
    work_queue = queue()
    worker = SimpleWorker([work_queue], connection=redis_connection())
    deadline = time.monotonic() + timeout
    while True:
        worker.work(burst=True, logging_level="WARNING")
        if not work_queue.count and not work_queue.started_job_registry.count:
            return worker.successful_job_count + worker.failed_job_count
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still running after {timeout} s")
        time.sleep(0.05)
