"""The one backoff every retried delivery and event uses."""

import datetime as dt

from billing.retries import DELIVERY_RETRIES, Backoff

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def test_deliveries_wait_1_2_4_minutes_then_at_most_an_hour_and_never_give_up():
    """Emails, Slack messages and hand-offs: doubling waits, capped at an hour, however many failures."""
    waits = [DELIVERY_RETRIES.next_try(failures, T) - T for failures in (1, 2, 3, 7, 1000)]

    assert waits == [MINUTE, 2 * MINUTE, 4 * MINUTE, 60 * MINUTE, 60 * MINUTE]


def test_a_bounded_backoff_gives_up_after_its_tries():
    """Five tries in all: four waits, then None, for an operator to decide."""
    events = Backoff(first=MINUTE, tries=5)

    assert [events.next_try(failures, T) for failures in range(1, 6)] == [
        T + MINUTE,
        T + 2 * MINUTE,
        T + 4 * MINUTE,
        T + 8 * MINUTE,
        None,
    ]
