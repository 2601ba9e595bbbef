"""`flask status` (SPEC "CLI"): one screen of what waits, fails or is stuck; exit 0 when all is well, 1 when
something needs an operator, so that cron or a monitoring system can run it."""

import pytest

from jobs.work import run_due_work, tick
from models import GatewayEvent
from runtime import utcnow
from tests import factories
from tests.test_collection_partner import HANDED_OFF, handed_off_sepa_order
from tests.test_progress import MALFORMED
from tests.test_readiness import worker  # noqa: F401 (the fixture)


@pytest.fixture
def healthy(worker):  # noqa: F811 (the fixture above)
    """A worker registered and the tick just run: what a running Tranche has."""
    tick()
    return worker


def test_a_healthy_tranche_says_all_is_well_and_exits_0(runner, healthy):
    factories.order(factories.seller(), anchor=utcnow())
    run_due_work(utcnow())

    result = runner.invoke(args=["status"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ready:     database ok, schema ok, tick ok, redis ok, worker ok"
    assert "queue:     tranche: 0 queued, 0 running, 0 failed" in lines
    assert any(line.startswith("events:    0 waiting, 0 failed") for line in lines)
    assert lines[-1] == "all well"


def test_no_worker_and_no_tick_needs_an_operator_and_exits_1(runner):
    result = runner.invoke(args=["status"])

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "needs an operator: tick never seen; worker never seen"


def test_a_partner_that_is_down_needs_an_operator_with_its_last_error(runner, healthy, monkeypatch):
    monkeypatch.setenv("COLLECTION_PARTNER_URL", "http://127.0.0.1:9/handoffs")
    handed_off_sepa_order()
    run_due_work(HANDED_OFF)

    result = runner.invoke(args=["status"])

    assert result.exit_code == 1
    hand_offs = next(line for line in result.output.splitlines() if line.startswith("hand-offs:"))
    assert "1 waiting, 1 refused or unreachable so far (last error: ConnectionError" in hand_offs
    assert result.output.splitlines()[-1] == ("needs an operator: 1 hand-off the collection partner has not accepted")


def test_an_event_failing_needs_an_operator_and_says_how_to_replay_it(runner, healthy):
    GatewayEvent.create(
        webhook_id="msg_poison",
        type="payment.failed",
        body=(MALFORMED / "occurred_at_year_9999.json").read_text(),
        received_at=utcnow(),
    )
    run_due_work(utcnow())

    result = runner.invoke(args=["status"])

    assert result.exit_code == 1
    assert "events:    0 waiting, 1 failed (flask events failed)" in result.output
    assert result.output.splitlines()[-1] == (
        "needs an operator: 1 failed event (flask events failed, then flask events replay <id>)"
    )
