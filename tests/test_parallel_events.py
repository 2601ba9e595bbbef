"""Events are applied by any number of workers side by side: each claims a batch no other holds, and a claim a
killed worker left behind lapses, so every event is applied once."""

import json
import signal
import subprocess
from itertools import islice

import requests
from rq import Worker

from billing.followups import APPLY_EVENTS, FollowUp, follow_up
from gateways import get_gateway
from jobs.work import EVENT_LEASE, EVENTS_PER_CLAIM, charge, claim_received_events, process_received_events
from models import ChargeAttempt, GatewayEvent, Installment, SandboxCharge
from runtime import queue, redis_connection, set_clock, settings, utcnow, waiting_key
from tests import factories
from tests.conftest import at_once, start_worker
from tests.test_tick import T, wait_until

WORKERS = 4
ORDERS = WORKERS * EVENTS_PER_CLAIM
CONNECTIONS, EVENTS_PER_CONNECTION = 8, 25


def events_received_for(count: int) -> None:
    """`count` orders whose first charge the sandbox declined: their events stored, none applied yet."""
    seller = factories.seller()
    for _ in range(count):
        factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS))
    for attempt in factories.open_due(T):
        charge(attempt.id, T.isoformat())
    queue().empty()  # what the stored events queued: the test starts the work itself
    redis_connection().delete(waiting_key(APPLY_EVENTS))


def worker_keeping_its_lines() -> subprocess.Popen:
    """An RQ worker as the Procfile starts it, its JSON lines kept for the test."""
    return start_worker(stderr=subprocess.PIPE, text=True)


def events_each_applied(worker: subprocess.Popen) -> list[int]:
    """Stop the worker (a warm shutdown) and read, from its job lines, the events its event jobs applied."""
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [
        event for line in lines if line.get("job") == f"jobs.work.{APPLY_EVENTS}" for event in line.get("event_ids", [])
    ]


def attempts_by_number() -> dict[int, int]:
    return {number: ChargeAttempt.select().where(ChargeAttempt.number == number).count() for number in (1, 2, 3)}


def test_four_workers_apply_four_batches_of_events_side_by_side_each_event_once_and_none_left_behind():
    events_received_for(ORDERS)
    workers = [worker_keeping_its_lines() for _ in range(WORKERS)]
    try:
        wait_until(lambda: len(Worker.all(queue=queue())) == WORKERS)

        follow_up(FollowUp(APPLY_EVENTS))
        wait_until(lambda: not GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.RECEIVED).exists())
        wait_until(lambda: queue().count == 0 and queue().started_job_registry.count == 0)
    finally:
        applied = [events_each_applied(worker) for worker in workers]

    every_event = sorted(event.id for event in GatewayEvent.select())
    assert sorted(event for by_one in applied for event in by_one) == every_event  # each once, by one worker
    assert sum(1 for by_one in applied if by_one) >= 2, f"one worker did it all: {[len(a) for a in applied]}"
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.PROCESSED}
    # Applied once each: every order's first charge failed once, and its second waits for day 7.
    assert ChargeAttempt.select().where(ChargeAttempt.status == ChargeAttempt.FAILED).count() == ORDERS
    assert attempts_by_number() == {1: ORDERS, 2: ORDERS, 3: 0}
    assert Installment.select().where(Installment.status == Installment.OPEN).count() == ORDERS


def test_webhooks_posted_on_many_connections_while_two_workers_apply_them_are_all_accepted_and_applied_once():
    """The embedded SQLite default too: writers wait their turn, and no "database is locked" reaches a gateway, a
    job or an event."""
    seller = factories.seller()
    for _ in range(CONNECTIONS * EVENTS_PER_CONNECTION):
        factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS))
    gateway = get_gateway(settings())
    bodies = [
        gateway.event_body(
            SandboxCharge(
                order_id=request.order_id,
                installment=request.installment,
                amount=request.amount,
                currency=request.currency,
                method=request.method,
                reference=f"ch_{request.attempt_id}",
                failure_code="insufficient_funds",
                occurred_at=T,
            )
        )
        for request in factories.charge_due(T)
    ]
    answers, pending = [], iter(bodies)
    workers = [worker_keeping_its_lines() for _ in range(2)]
    try:
        wait_until(lambda: len(Worker.all(queue=queue())) == 2)

        def gateway_posting():
            with requests.Session() as session:
                for body in islice(pending, EVENTS_PER_CONNECTION):
                    webhook_id = f"evt_{json.loads(body)['data']['reference']}"
                    headers = gateway.signed_headers(webhook_id, body)
                    answers.append(
                        session.post(gateway.webhook_url, data=body, headers=headers, timeout=30).status_code
                    )

        at_once(CONNECTIONS, gateway_posting)
        wait_until(lambda: not GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.RECEIVED).exists())
        wait_until(lambda: queue().count == 0 and queue().started_job_registry.count == 0)
    finally:
        applied = [events_each_applied(worker) for worker in workers]

    assert answers == [200] * len(bodies)
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.PROCESSED}
    assert sorted(event for by_one in applied for event in by_one) == sorted(e.id for e in GatewayEvent.select())
    assert queue().failed_job_registry.count == 0
    assert attempts_by_number() == {1: len(bodies), 2: len(bodies), 3: 0}


def test_events_a_killed_worker_claimed_wait_for_its_claim_to_lapse_then_any_worker_applies_them():
    events_received_for(3)
    assert len(claim_received_events(utcnow())) == 3  # …and the worker that claimed them is killed here

    process_received_events()
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.RECEIVED}

    set_clock(utcnow() + EVENT_LEASE)
    process_received_events()
    assert {event.status for event in GatewayEvent.select()} == {GatewayEvent.PROCESSED}
    assert attempts_by_number() == {1: 3, 2: 3, 3: 0}


def test_a_worker_claims_at_most_one_batch_and_leaves_the_rest_to_the_others():
    events_received_for(EVENTS_PER_CLAIM + 1)

    first, second = claim_received_events(utcnow()), claim_received_events(utcnow())

    assert (len(first), len(second)) == (EVENTS_PER_CLAIM, 1)
    assert not set(first) & set(second)
    assert claim_received_events(utcnow()) == []


def test_a_job_applies_one_claimed_batch_and_queues_the_next_so_that_no_other_work_waits_behind_a_backlog():
    """A backlog is worked a claim a job: the emails its events wrote, queued meanwhile, go out between its batches
    rather than after the last of them."""
    events_received_for(EVENTS_PER_CLAIM + 1)

    process_received_events()

    statuses = [event.status for event in GatewayEvent.select()]
    assert (statuses.count(GatewayEvent.PROCESSED), statuses.count(GatewayEvent.RECEIVED)) == (EVENTS_PER_CLAIM, 1)
    assert [job.func_name for job in queue().jobs if job.func_name.endswith(APPLY_EVENTS)] == [
        f"jobs.work.{APPLY_EVENTS}"
    ]
