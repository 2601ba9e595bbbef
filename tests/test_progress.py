"""`flask tick` and `flask demo` show their progress (a live line on a terminal, plain lines elsewhere) and end with
a summary of what was charged, sent, delivered and applied, and of what failed."""

import os
import pty
import subprocess
import sys

import progress
from models import GatewayEvent
from runtime import utcnow
from tests import factories
from tests.conftest import ROOT
from tests.test_collection_partner import handed_off_sepa_order

MALFORMED = ROOT / "tests" / "fixtures" / "gateway" / "malformed"


def test_flask_tick_ends_with_what_it_charged_sent_and_applied(runner, inbox):
    seller = factories.seller()
    factories.order(seller, anchor=utcnow())
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=utcnow())

    result = runner.invoke(args=["tick"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "charges sent: 2 (1 failed, 1 succeeded)",
        f"emails sent: {len(inbox.messages)}, Slack messages sent: 0",
        "hand-offs delivered: 0, gateway events applied: 2",
        "failed: nothing",
    ]


def test_flask_tick_says_what_fails_when_the_partner_is_down_and_an_event_fails(runner, monkeypatch):
    """The stuck parts an operator must look at are named, with where to look."""
    monkeypatch.setenv("COLLECTION_PARTNER_URL", "http://127.0.0.1:9/handoffs")
    handed_off_sepa_order()
    GatewayEvent.create(
        webhook_id="msg_poison",
        type="payment.failed",
        body=(MALFORMED / "occurred_at_year_9999.json").read_text(),
        received_at=utcnow(),
    )

    result = runner.invoke(args=["tick"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "failed: 1 event (flask events failed); 1 hand-off the partner has not accepted"
    )


def test_off_a_terminal_flask_tick_writes_plain_progress_lines(runner, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0)
    factories.order(factories.seller(), anchor=utcnow())

    result = runner.invoke(args=["tick"])

    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("tick at ") and line.endswith(" jobs run") for line in lines), lines


def test_on_a_terminal_flask_tick_shows_a_live_line_counting_the_jobs(app):
    """Run in a pseudo-terminal, as an operator's shell runs it: rich draws (and then clears) the line."""
    factories.order(factories.seller(), anchor=utcnow())
    leader, follower = pty.openpty()
    with subprocess.Popen(  # noqa: S603 (this virtualenv's flask)
        [sys.executable, "-m", "flask", "--app", "app", "tick"],
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
        stdout=subprocess.PIPE,
        stderr=follower,
    ) as tick:
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
        summary = tick.stdout.read().decode()
    os.close(leader)

    assert tick.returncode == 0, summary + drawn.decode(errors="replace")
    assert b"jobs run" in drawn and b"\x1b[" in drawn  # drawn with the terminal's escape codes
    assert "charges sent: 1 (1 succeeded)" in summary
