"""Who may make the bot act, and how often: signatures, retries, double clicks, unlinked workspaces, listed
users, the 3-second ack; and Slack stays off without its variables."""

import datetime as dt
import json
import subprocess
import time
import urllib.parse

import pytest
from slack_sdk.signature import SignatureVerifier

from billing.workspaces import link_workspace
from bot.once import first_time
from jobs.work import tick
from models import ChargeAttempt, PlanChange, SlackRequest
from runtime import queue, slack_queue
from tests import factories
from tests.conftest import start_worker
from tests.slack_api import CHANNEL, SIGNING_SECRET, TEAM, click, command, fixture, signed_post, wait_until

T = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=20)
# Long enough for a listener that would run to have answered the local server.
QUIET = 0.5


@pytest.fixture
def interrupted(slack):
    owner = factories.seller()
    link_workspace(owner, TEAM, CHANNEL, T)
    order = factories.order(owner, anchor=T)
    factories.decline_the_ladder(T)
    return order


def renewals() -> int:
    return ChargeAttempt.select().where(ChargeAttempt.kind == ChargeAttempt.RENEWAL).count()


def renew_body(slack, order) -> dict:
    return fixture("command.json", command="/renew", text=str(order.id), response_url=slack.response_url())


@pytest.mark.parametrize(
    ("secret", "age"),
    [("not-the-signing-secret", 0), (SIGNING_SECRET, 6 * 60), (SIGNING_SECRET, -6 * 60)],
    ids=["bad signature", "older than 5 minutes", "from the future"],
)
def test_a_forged_or_stale_request_gets_401_and_nothing_runs(client, slack, interrupted, secret, age):
    """A wrong secret, or a timestamp more than 5 minutes off: 401, no answer, no charge."""
    response = signed_post(client, renew_body(slack, interrupted), secret=secret, timestamp=int(time.time()) - age)

    assert response.status_code == 401
    time.sleep(QUIET)
    assert slack.calls == [] and renewals() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
    ],
    ids=["unsigned", "timestamp not a number", "signature of another body"],
)
def test_an_unsigned_or_badly_signed_request_gets_401(client, slack, interrupted, headers):
    """No signature, a garbled timestamp, or a signature that does not match the body: 401, nothing runs."""
    body = urllib.parse.urlencode(renew_body(slack, interrupted))

    response = client.post(
        "/slack/events", data=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
    )

    assert response.status_code == 401
    time.sleep(QUIET)
    assert slack.calls == [] and renewals() == 0


def test_a_signed_body_that_is_not_slacks_gets_400(client, slack, interrupted):
    """A payload that is not JSON, correctly signed: 400, not a server error."""
    raw = "payload=%7Bnot-json"
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=raw)

    response = client.post(
        "/slack/events",
        data=raw,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        },
    )

    assert response.status_code == 400


def test_a_slack_retry_of_a_command_does_not_act_twice(client, slack, interrupted):
    """The same request again with X-Slack-Retry-Num: acknowledged, and one renewal, one answer."""
    body = renew_body(slack, interrupted)

    first = signed_post(client, body)
    retry = signed_post(client, body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})

    assert (first.status_code, retry.status_code) == (200, 200)
    slack.wait_for("response_url")
    wait_until(lambda: queue().count >= 1)
    time.sleep(QUIET)
    assert len(slack.received("response_url")) == 1
    assert renewals() == 1


def test_the_tick_forgets_slack_requests_older_than_a_day_and_keeps_the_others():
    """What makes a request act once is kept a day, far longer than Slack retries, then deleted by the tick."""
    now = dt.datetime(2026, 5, 15, 12, tzinfo=dt.UTC)
    first_time("request:old", now - dt.timedelta(hours=25))
    first_time("request:recent", now - dt.timedelta(hours=23))

    tick(now.isoformat())

    assert [r.key for r in SlackRequest.select()] == ["request:recent"]
    assert not first_time("request:recent", now) and first_time("request:old", now)


def test_a_double_click_on_renew_charges_once_and_the_second_click_says_why(client, slack, interrupted):
    """Two clicks, two requests: one fourth attempt; the second is refused as already renewed."""
    click(client, slack, "renew", interrupted.id)
    slack.wait_for("response_url")
    click(client, slack, "renew", interrupted.id)

    second = slack.wait_for("response_url", 2)[1]
    assert second["text"] == f"Order {interrupted.id} was already renewed once: the fourth attempt is the last."
    assert renewals() == 1


def test_a_command_from_a_workspace_not_linked_says_how_to_link_it(client, slack):
    """An unlinked workspace is told, in the command's own answer, how to link it; nothing runs."""
    response = command(client, slack, "/collections", team_id="T0STRANGER")

    assert response.status_code == 200
    answer = response.get_data(as_text=True)
    assert "This Slack workspace (T0STRANGER) is not linked to a Tranche seller yet" in answer
    assert "flask slack link --seller <id> --team T0STRANGER" in answer
    time.sleep(QUIET)
    assert slack.calls == []


def test_a_button_from_a_workspace_not_linked_says_how_to_link_it(client, slack, interrupted):
    """A click from another workspace is answered where it was clicked, and renews nothing."""
    click(client, slack, "renew", interrupted.id, team={"id": "T0STRANGER", "domain": "strangers"})

    [answer] = slack.wait_for("response_url")
    assert "(T0STRANGER) is not linked" in answer["text"]
    assert renewals() == 0


def test_when_the_link_lists_users_only_they_may_renew(client, slack, interrupted):
    """A listed user renews; another user of the same workspace is refused, and may still look."""
    link_workspace(interrupted.seller, TEAM, CHANNEL, T, allowed_user_ids=["U0BOB"])

    command(client, slack, "/renew", str(interrupted.id))
    [refused] = slack.wait_for("response_url")
    assert refused["text"] == "Only the Slack users your seller account lists may renew or hand off orders."
    assert renewals() == 0

    command(client, slack, "/renew", str(interrupted.id), user_id="U0BOB")
    slack.wait_for("response_url", 2)
    wait_until(lambda: renewals() == 1)


def test_the_ack_does_not_wait_for_the_work(client, slack, interrupted):
    """/renew is acknowledged before its work runs: the work waits on Slack's queue for a worker, which does it and
    answers even when Slack's side is slow (4 s)."""
    slack.slow("response_url", 4)

    response = command(client, slack, "/renew", str(interrupted.id))

    assert response.status_code == 200
    assert (slack_queue().count, slack.received("response_url"), renewals()) == (1, [], 0)
    slack.wait_for("response_url")
    assert renewals() == 1


def test_the_procfiles_worker_answers_a_command_before_the_work_queued_ahead_of_it(client, slack, interrupted):
    """Jobs wait on the queue when /order comes (a backlog of emails, say): the worker runs the command's work first,
    then theirs."""
    queue().empty()  # what the fixture's declines queued
    for _ in range(3):
        queue().enqueue("jobs.work.send_due_messages", result_ttl=0)

    command(client, slack, "/order", str(interrupted.id))
    with start_worker("--burst", stderr=subprocess.PIPE, text=True) as worker:
        _, lines = worker.communicate(timeout=60)

    jobs = [json.loads(line).get("job") for line in lines.splitlines() if line.startswith("{")]
    assert [job for job in jobs if job] == ["bot.bolt.run_lazy_work"] + ["jobs.work.send_due_messages"] * 3
    assert slack.wait_for("response_url")[0]["text"] == f"1 order(s) match “{interrupted.id}”."


def test_a_form_that_is_not_ours_is_acknowledged_and_changes_nothing(client, slack, interrupted):
    """A signed form submission with metadata the bot never wrote: a 200 for Slack, no stack trace, no change."""
    body = fixture("view_submission.json")
    body["view"]["private_metadata"] = "not json"

    response = signed_post(client, body)

    assert response.status_code == 200
    assert PlanChange.select().count() == 0


def test_without_its_variables_slack_is_off_and_the_app_runs(client, monkeypatch):
    """No SLACK_SIGNING_SECRET: /slack/events is 404 and the rest of the app answers."""
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)

    assert client.post("/slack/events", data="command=%2Frenew").status_code == 404
    assert client.get("/slack/install").status_code == 404
    assert client.get("/healthz").status_code == 200
