"""A stored event that cannot be applied is failed alone, retried with backoff, listed and replayed by operators."""

import datetime as dt

import pytest

from billing.retries import EVENT_RETRIES
from jobs.work import run_due_work
from models import GatewayEvent, Outbox
from runtime import utcnow
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
    return GatewayEvent.create(webhook_id=webhook_id, type="payment.failed", body=body, received_at=utcnow(), **fields)


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
