"""One clock (SPEC "CLI"): outside production, `flask clock` moves the time the API, the jobs, the emails, the pages
and every other process read, together; in production the wall clock stands and time travel is refused."""

import datetime as dt
import os
import subprocess
import sys
from email.utils import parsedate_to_datetime

import pytest

import runtime
from billing.links import card_update_link
from i18n import Formats
from models import ChargeAttempt, Clock
from runtime import settings, utcnow
from tests import factories
from tests.conftest import ROOT
from tests.test_api import Api
from tests.test_pages_links import path_of

TRAVELLED = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
# The time it takes this test's own steps to run: what "now" may drift by between two readings.
DRIFT = dt.timedelta(minutes=2)


def near(seen: dt.datetime, expected: dt.datetime) -> bool:
    return expected <= seen < expected + DRIFT


def api_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def invoke(runner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_story_on_the_travelled_clock_has_its_api_email_page_and_renewal_times_agree(client, runner, inbox):
    """Ordered, declined three times a week apart, renewed: each time shown is the clock's, none the wall's."""
    assert invoke(runner, "clock", "set", "2027-03-01T09:00:00Z") == "clock: 2027-03-01T09:00:00+00:00\n"
    api = Api(client, factories.seller().api_key)
    body = api.order_body()
    del body["first_due_at"]
    body["payment_method"]["number"] = factories.INSUFFICIENT_FUNDS

    created = api.post("/orders", body).get_json()
    assert near(api_time(created["installments"][0]["due_at"]), TRAVELLED)
    invoke(runner, "tick")
    for _ in range(2):
        invoke(runner, "clock", "advance", "7d")
        invoke(runner, "tick")
    renewed = api.post(f"/orders/{created['id']}/renew")
    assert renewed.status_code == 202, renewed.get_json()
    invoke(runner, "tick")

    attempts = [(a.kind, a.number, a.requested_at) for a in ChargeAttempt.select().order_by(ChargeAttempt.id)]
    assert [(kind, number) for kind, number, _ in attempts] == [
        ("automatic", 1),
        ("automatic", 2),
        ("automatic", 3),
        ("renewal", 4),
    ]
    for (_, _, requested_at), day in zip(attempts, (0, 7, 14, 14), strict=True):
        assert near(requested_at, TRAVELLED + day * DAY)
    shown = api.get(f"/orders/{created['id']}").get_json()
    assert near(api_time(shown["installments"][0]["attempts"][-1]["settled_at"]), TRAVELLED + 14 * DAY)
    dates = [parsedate_to_datetime(m["Date"]) for m in inbox.to("claire@example.com")]
    assert len(dates) == 3
    for date, day in zip(dates, (0, 7, 14), strict=True):
        assert near(date, TRAVELLED + day * DAY)


def test_a_card_link_signed_on_the_travelled_clock_expires_on_it(client, runner):
    """Links are signed and checked on the one clock: 31 travelled days make a card link too old."""
    invoke(runner, "clock", "set", TRAVELLED.isoformat())
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=TRAVELLED)
    invoke(runner, "tick")
    link = path_of(card_update_link(settings(), order.id, 1, now=utcnow()))
    page = client.get(link)
    assert page.status_code == 200
    # The page dates the failed attempt and the next one on the travelled clock.
    dates = Formats("fr", order.seller.timezone)
    assert dates.date(TRAVELLED) in page.get_data(as_text=True)
    assert dates.date(TRAVELLED + 7 * DAY) in page.get_data(as_text=True)

    invoke(runner, "clock", "advance", "31d")

    assert client.get(link).status_code == 410


def test_another_process_reads_the_time_the_clock_was_set_to(runner):
    """The web app, the workers and the CLI are separate processes: the clock is a row they all read."""
    invoke(runner, "clock", "set", TRAVELLED.isoformat())

    seen = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", "from runtime import utcnow; print(utcnow().isoformat())"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert near(dt.datetime.fromisoformat(seen.strip()), TRAVELLED)


def test_flask_tick_at_moves_the_clock_there(runner):
    invoke(runner, "tick", "--at", TRAVELLED.isoformat())

    assert near(utcnow(), TRAVELLED)


def test_flask_clock_reset_puts_every_process_back_on_the_wall_clock(runner):
    invoke(runner, "clock", "set", TRAVELLED.isoformat())

    assert invoke(runner, "clock", "reset").endswith(" (the wall clock)\n")
    assert near(utcnow(), dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert Clock.select().count() == 0


@pytest.mark.parametrize(
    "args",
    [
        ("clock", "set", "2027-03-01T09:00:00Z"),
        ("clock", "advance", "7d"),
        ("clock", "reset"),
        ("tick", "--at", "2027-03-01"),
    ],
)
def test_in_production_time_travel_is_refused_and_changes_nothing(runner, monkeypatch, args):
    monkeypatch.setenv("TRANCHE_ENV", "production")

    result = runner.invoke(args=list(args))

    assert result.exit_code == 1
    assert "TRANCHE_ENV=production runs on the wall clock: time travel is refused" in result.output
    assert Clock.select().count() == 0


def test_in_production_every_process_keeps_the_wall_clock_whatever_the_database_says(runner, monkeypatch):
    invoke(runner, "clock", "set", TRAVELLED.isoformat())
    monkeypatch.setenv("TRANCHE_ENV", "production")

    assert near(utcnow(), dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


@pytest.mark.parametrize("duration", ["7", "soon", "", "7x", "7d 2h", "1.5d"])
def test_a_duration_flask_clock_advance_cannot_read_is_refused_with_an_example(runner, duration):
    before = utcnow()

    result = runner.invoke(args=["clock", "advance", duration])

    assert result.exit_code == 2
    assert "is not a duration like 7d, 36h, 1w2d or 90m" in result.output
    assert near(utcnow(), before)
    assert Clock.select().count() == 0


def test_flask_clock_advance_reads_weeks_days_hours_and_minutes_together(runner):
    invoke(runner, "clock", "set", TRAVELLED.isoformat())

    invoke(runner, "clock", "advance", "1w2d3h30m")

    assert near(utcnow(), TRAVELLED + dt.timedelta(days=9, hours=3, minutes=30))


@pytest.mark.parametrize(
    ("duration", "code", "says"),
    [("99999999999w", 2, "is longer than any calendar"), ("9000w", 1, "lies outside 2000-01-01 to 2100-01-01")],
)
def test_a_journey_past_what_the_rules_can_date_is_refused_and_moves_nothing(runner, duration, code, says):
    result = runner.invoke(args=["clock", "advance", duration])

    assert result.exit_code == code
    assert says in result.output
    assert Clock.select().count() == 0


def test_code_deployed_before_its_migration_keeps_the_wall_clock_and_answers(client, monkeypatch):
    """The clock's table missing (flask db upgrade not run yet) must not fail every request that reads the time."""
    monkeypatch.setattr(runtime, "_clock_table_exists", False)
    monkeypatch.setattr(runtime, "_offset_read", None)
    seller = factories.seller()
    Clock.drop_table()
    try:
        answer = Api(client, seller.api_key).get("/orders")
        now = utcnow()
    finally:
        Clock.create_table()

    assert answer.status_code == 200, answer.get_json()
    assert near(now, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
