"""Due work lives in the database: the tick rebuilds what Redis loses, and running it twice does nothing twice."""

import datetime as dt
import signal
import time

import pytest
from rq import SimpleWorker

from billing import charging
from billing.card_updates import update_card_and_charge
from billing.followups import APPLY_EVENTS
from gateways.sandbox import DELIVERY_TRIES, SandboxGateway
from jobs.work import EVENT_LEASE, charge, run_due_work, tick
from models import ChargeAttempt, GatewayEvent, Installment, SandboxCharge, lock, transaction
from runtime import queue, redis_connection, set_clock, settings, utcnow, waiting_key
from tests import factories
from tests.conftest import free_port, start_worker
from tests.receivers import Receiver

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
HOUR = dt.timedelta(hours=1)


def attempts():
    return [(a.number, a.status, a.due_at) for a in ChargeAttempt.select().order_by(ChargeAttempt.number)]


def charged_keys():
    """What the gateway charged: one row per idempotency key it accepted."""
    return [c.idempotency_key for c in SandboxCharge.select().order_by(SandboxCharge.id)]


def work_the_queue():
    SimpleWorker([queue()], connection=redis_connection()).work(burst=True, logging_level="WARNING")


def test_flushing_redis_after_the_first_failure_still_charges_attempt_2_on_day_7():
    """Retries are rows with a due time: an emptied Redis loses nothing, and attempt 2 runs on day 7, not before."""
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    run_due_work(T)
    assert attempts() == [(1, "failed", T), (2, "scheduled", T + 7 * DAY)]

    redis_connection().flushdb()
    run_due_work(T + 7 * DAY - SECOND)
    assert attempts()[1] == (2, "scheduled", T + 7 * DAY)

    run_due_work(T + 7 * DAY)
    assert attempts() == [(1, "failed", T), (2, "failed", T + 7 * DAY), (3, "scheduled", T + 14 * DAY)]
    assert charged_keys() == [f"tranche-{order.id}-1-automatic-1", f"tranche-{order.id}-1-automatic-2"]


def test_an_accepted_webhook_survives_a_redis_flush_before_its_job_runs():
    """The event row is stored before the 2xx: the tick re-queues a received event whose job Redis lost."""
    factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    (attempt,) = factories.open_due(T)
    charge(attempt.id, T.isoformat())  # the sandbox posts its event: stored, and its job queued in Redis
    assert GatewayEvent.get().status == "received"

    redis_connection().flushdb()
    run_due_work(T)

    assert GatewayEvent.get().status == "processed"
    assert attempts() == [(1, "failed", T), (2, "scheduled", T + 7 * DAY)]


@pytest.mark.parametrize("at", [T, T + 7 * DAY], ids=["first attempt", "day-7 retry"])
def test_a_tick_run_twice_for_the_same_time_charges_once(inbox, at):
    """Two schedulers ticking at once queue the charge twice; the claim lets one through: one charge, one email."""
    factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    if at > T:
        run_due_work(T)
    charged_before, mails_before = len(charged_keys()), len(inbox.to("claire@example.com"))

    tick(at.isoformat())
    tick(at.isoformat())
    work_the_queue()

    assert len(charged_keys()) == charged_before + 1
    assert len(set(charged_keys())) == len(charged_keys())
    assert len(inbox.to("claire@example.com")) == mails_before + 1


def test_an_attempt_claimed_by_a_killed_worker_is_resent_after_resend_after_with_the_same_key(inbox):
    """A worker dying between the claim and the gateway leaves the attempt in flight; a later tick sends it once."""
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    (attempt,) = factories.open_due(T)
    assert charging.claim_attempt(attempt.id, T) is not None  # …and the worker is killed here

    run_due_work(T + charging.RESEND_AFTER - SECOND)
    assert (charged_keys(), attempts()) == ([], [(1, "in_flight", T)])

    run_due_work(T + charging.RESEND_AFTER)
    run_due_work(T + 2 * charging.RESEND_AFTER)

    assert charged_keys() == [attempt.idempotency_key] == [f"tranche-{order.id}-1-automatic-1"]
    # The charge really happened, and failed, at the resend: the ladder counts from there.
    resent = T + charging.RESEND_AFTER
    assert attempts() == [(1, "failed", T), (2, "scheduled", resent + 7 * DAY)]
    assert len(inbox.to("claire@example.com")) == 1


def test_a_resent_attempt_the_gateway_already_charged_is_not_charged_again(inbox):
    """The gateway charged but its event was lost: the resend (same key) re-delivers the event and charges nothing."""
    factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    (attempt,) = factories.open_due(T)
    request = charging.claim_attempt(attempt.id, T)
    unreachable = SandboxGateway(f"http://127.0.0.1:{free_port()}/webhooks/gateway", settings().gateway_webhook_secret)
    with pytest.raises(ConnectionError):
        unreachable.charge(request)
    assert GatewayEvent.select().count() == 0

    run_due_work(T + charging.RESEND_AFTER)

    assert charged_keys() == [attempt.idempotency_key]
    assert attempts() == [(1, "failed", T), (2, "scheduled", T + 7 * DAY)]
    assert len(inbox.to("claire@example.com")) == 1


def test_a_charge_whose_event_the_webhook_url_answers_with_a_redirect_is_not_taken_as_delivered():
    """As a gateway does, the sandbox counts only a 2xx as its event delivered: a webhook URL that redirects (to https,
    to a moved host) fails the charge loudly, after its tries, instead of losing the event; the resend delivers it."""
    factories.order(factories.seller(), payment=factories.card())
    (attempt,) = factories.open_due(T)
    request = charging.claim_attempt(attempt.id, T)
    receiver = Receiver(lambda: settings().gateway_webhook_secret)
    receiver.answers, receiver.redirect_to = [307] * DELIVERY_TRIES, "https://tranche.example/webhooks/gateway"
    try:
        with pytest.raises(ConnectionError):
            SandboxGateway(f"{receiver.url}/webhooks/gateway", settings().gateway_webhook_secret).charge(request)
    finally:
        receiver.stop()
    assert len(receiver.received) == DELIVERY_TRIES
    assert GatewayEvent.select().count() == 0

    run_due_work(T + charging.RESEND_AFTER)

    assert charged_keys() == [attempt.idempotency_key]
    assert attempts() == [(1, "succeeded", T)]


def test_a_new_cards_charge_a_killed_worker_never_sent_is_not_sent_once_the_declined_charge_turns_out_paid(inbox):
    """The customer gives a new card; its charge is claimed and the worker dies before the gateway hears of it. The
    declined charge then turns out paid after all. The resend only looks for what the first send made: it finds
    nothing, so it sends nothing (the customer would pay the installment twice) and the charge is cancelled."""
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    [declined] = factories.charge_due(T)
    factories.gateway_reports(declined, T, "insufficient_funds")
    new_card = update_card_and_charge(order, 1, factories.card(), T + HOUR)
    assert charging.claim_attempt(new_card.id, T + HOUR) is not None  # …and the worker is killed here
    factories.gateway_reports(declined, T + 2 * HOUR)
    charged = charged_keys()

    run_due_work(T + HOUR + charging.RESEND_AFTER)

    assert charged_keys() == charged
    assert ChargeAttempt.get_by_id(new_card.id).status == ChargeAttempt.CANCELLED
    assert Installment.get(order=order, number=1).status == Installment.PAID


def test_flask_tick_at_runs_the_work_due_by_that_time(runner):
    """`flask tick --at ISO` charges what is due then and waits for it; a time without offset is UTC."""
    factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))

    first = runner.invoke(args=["tick", "--at", "2026-05-01T10:00:00+02:00"])
    early = runner.invoke(args=["tick", "--at", "2026-05-08T07:59:59"])
    retry = runner.invoke(args=["tick", "--at", "2026-05-08T08:00:00"])

    assert [r.exit_code for r in (first, early, retry)] == [0, 0, 0], first.output + early.output + retry.output
    assert first.output.startswith("tick at 2026-05-01T10:00:00+02:00:") and "jobs run" in first.output
    assert attempts() == [(1, "failed", T), (2, "failed", T + 7 * DAY), (3, "scheduled", T + 14 * DAY)]


def test_flask_tick_without_at_runs_the_work_due_now(runner):
    """Without --at the tick uses the clock: an installment due in the past is charged."""
    factories.order(factories.seller())
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    assert attempts() == [(1, "succeeded", T)]


@pytest.mark.parametrize("at", ["next tuesday", "2026-13-01", "", "1714550400"])
def test_flask_tick_with_a_bad_at_is_a_clear_error_and_runs_nothing(runner, at):
    """A time that is not ISO 8601 is refused with an example of one, before any work runs."""
    factories.order(factories.seller())
    result = runner.invoke(args=["tick", "--at", at])
    assert result.exit_code == 2
    assert f"{at!r} is not an ISO 8601 time, e.g. 2026-12-01T09:00:00+01:00" in result.output
    assert (charged_keys(), attempts()) == ([], [])


def test_a_received_event_whose_wake_up_job_was_lost_is_applied_by_the_next_tick():
    """A worker dequeued the processor's job and died before it started: the job is said to wait, the tick
    still wakes another one."""
    factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    (attempt,) = factories.open_due(T)
    charge(attempt.id, T.isoformat())  # the event is stored and its job queued…
    queue().empty()  # …then lost with the worker that took it
    assert redis_connection().exists(waiting_key(APPLY_EVENTS))

    run_due_work(T)

    assert GatewayEvent.get().status == "processed"
    assert attempts() == [(1, "failed", T), (2, "scheduled", T + 7 * DAY)]


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_while_applying_its_claimed_events_leaves_them_to_the_first_tick_after_its_claim_lapses():
    """SIGKILL of a worker while it applies an event it claimed: run_due_work sees it dead and goes on, and once
    the claim lapses (EVENT_LEASE) the next tick applies the event, once."""
    factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS))
    (attempt,) = factories.open_due(T)
    charge(attempt.id, T.isoformat())  # the sandbox posts its event: stored, and the processor's job queued
    with transaction():
        lock(ChargeAttempt, attempt.id)  # the worker's job blocks on the attempt until its process is killed
        worker = start_worker("--logging_level", "WARNING")
        # Started, and past its first line (which forgets the wake-up): it is waiting on the lock.
        wait_until(
            lambda: queue().started_job_registry.count == 1 and not redis_connection().exists(waiting_key(APPLY_EVENTS))
        )
        time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert GatewayEvent.get().status == "received"

    started = time.monotonic()
    run_due_work(T, timeout=20)
    assert time.monotonic() - started < 10
    set_clock(utcnow() + EVENT_LEASE)
    run_due_work(T, timeout=20)

    assert GatewayEvent.get().status == "processed"
    assert attempts() == [(1, "failed", T), (2, "scheduled", T + 7 * DAY)]


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2200-01-01T00:00:00"])
def test_flask_tick_refuses_a_time_the_rules_cannot_add_days_to(runner, at):
    """A usage error naming the range, instead of an overflow halfway through the tick."""
    result = runner.invoke(args=["tick", "--at", at])
    assert result.exit_code == 2 and "the rules' range" in result.output
