"""R6, R11 on Slack: the seller's channel hears of every failure, the third one with buttons, recoveries, plan
changes and hand-offs, sent by the outbox job; a message whose buttons are spent is updated in place."""

import datetime as dt
import json

import pytest

from billing import plan_changes
from billing.card_updates import update_card_and_charge
from billing.workspaces import link_workspace
from jobs.work import charge, run_due_work, send_due_messages
from models import Order, Outbox, SlackLink
from runtime import queue, utcnow
from tests import factories
from tests.slack_api import (
    BOT_TOKEN,
    CHANNEL,
    TEAM,
    click,
    wait_until,
)

T = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=20)
WEEK = dt.timedelta(days=7)


@pytest.fixture
def seller(slack):
    owner = factories.seller()
    link_workspace(owner, TEAM, CHANNEL, T)
    return owner


@pytest.fixture
def third_failure(seller, slack):
    """A card that declines three times, through the sandbox and its webhooks: the third message, as posted."""
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    for step in range(3):
        run_due_work(T + WEEK * step)
    return order, slack.wait_for("chat.postMessage", 3)[2]


def buttons(message: dict) -> list[str]:
    return [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def texts(slack) -> list[str]:
    return [m["text"] for m in slack.received("chat.postMessage")]


def test_each_failure_is_told_briefly_and_the_third_with_renew_and_hand_off_buttons(third_failure, slack):
    """Attempts 1 and 2 in a line each; the third with every reason and the two buttons, in the linked channel."""
    order, third = third_failure
    first, second, _ = slack.received("chat.postMessage")

    assert first["text"] == f"Payment failed: order {order.id}, installment 1, €30.00 (attempt 1 of 3)."
    assert second["text"] == f"Payment failed: order {order.id}, installment 1, €30.00 (attempt 2 of 3)."
    assert third["text"].startswith(f"Third payment attempt failed: order {order.id}, installment 1, €30.00.")
    assert json.dumps(third["blocks"]).count("Your card has insufficient funds.") == 3
    assert buttons(third) == ["renew", "hand_off"]
    assert {m["channel"] for m in slack.received("chat.postMessage")} == {CHANNEL}
    assert set(slack.tokens("chat.postMessage")) == {BOT_TOKEN}


def test_a_renewal_from_the_button_updates_the_message_once_the_payment_is_recovered(client, third_failure, slack):
    """Renew with a card that now works: the plan is active again, the channel hears it, the buttons are gone."""
    order, third = third_failure
    Order.update(card_token=factories.card().token).where(Order.id == order.id).execute()

    click(client, slack, "renew", order.id, message=third)
    slack.wait_for("response_url")
    wait_until(lambda: queue().count >= 1)
    run_due_work(utcnow())

    assert texts(slack)[3] == (
        f"Payment recovered: order {order.id}, installment 1, €30.00: the renewal went through, the plan is active "
        "again."
    )
    [update] = slack.received("chat.update")
    assert (update["channel"], update["ts"]) == (CHANNEL, third["ts"])
    assert "Payment recovered" in json.dumps(update["blocks"])
    assert buttons(update) == []
    assert Order.get_by_id(order.id).status == Order.ACTIVE


def test_a_failed_renewal_lists_the_order_in_collections_and_a_hand_off_clears_the_last_button(
    client, third_failure, slack
):
    """The final attempt fails: a message with the Hand-off button; handing off updates it, and the Renew
    button of the old message, clicked late, refuses."""
    order, third = third_failure
    click(client, slack, "renew", order.id, message=third)
    slack.wait_for("response_url")
    wait_until(lambda: queue().count >= 1)
    run_due_work(utcnow())
    failed = slack.received("chat.postMessage")[3]
    assert failed["text"].startswith(f"The fourth and final attempt failed: order {order.id}")
    assert buttons(failed) == ["hand_off"]
    assert buttons(slack.received("chat.update")[0]) == []

    click(client, slack, "hand_off", order.id, message=failed)
    slack.wait_for("response_url", 2)
    wait_until(lambda: queue().count >= 2)
    run_due_work(utcnow())

    assert texts(slack)[4].startswith(f"Handed to collections: order {order.id}, €30.00 (installments 1)")
    updated = slack.received("chat.update")
    assert [u["ts"] for u in updated] == [third["ts"], failed["ts"]]
    click(client, slack, "renew", order.id, message=third)
    late = slack.wait_for("response_url", 3)[2]
    assert late["text"] == f"Order {order.id} is in collections: it can no longer be renewed."
    assert Order.get_by_id(order.id).status == Order.HANDED_OFF


def test_a_renew_button_clicked_after_a_hand_off_refuses(client, third_failure, slack):
    """Handed off from the third-failure message, the order refuses a renewal clicked on a stale copy of it."""
    order, third = third_failure
    click(client, slack, "hand_off", order.id, message=third)
    slack.wait_for("response_url")

    click(client, slack, "renew", order.id, message=third)

    refused = slack.wait_for("response_url", 2)[1]
    assert refused["text"] == f"Order {order.id} is in collections: it can no longer be renewed."
    assert refused["replace_original"] is False


def test_a_failed_sepa_debit_is_posted_with_the_hand_off_button(seller, slack):
    """R8: SEPA is never retried; the channel hears the order is in collections."""
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)

    run_due_work(T)

    [message] = slack.received("chat.postMessage")
    assert message["text"].startswith(f"SEPA debit failed: order {order.id}, installment 1, €30.00.")
    assert buttons(message) == ["hand_off"]


@pytest.mark.parametrize(
    ("decide", "outcome"),
    [
        (plan_changes.confirm_plan_change, "confirmed by the customer: the remaining installments are €40.00"),
        (plan_changes.decline_plan_change, "declined by the customer: the plan stays at €30.00"),
    ],
)
def test_the_customers_answer_to_a_plan_change_is_posted(seller, slack, decide, outcome):
    """R4, R11: confirmed or declined, the seller hears it."""
    order = factories.order(seller, anchor=T + dt.timedelta(days=60))
    change = plan_changes.propose_plan_change(order, "40", utcnow())

    decided = decide(change.id, utcnow())
    send_due_messages()

    [text] = texts(slack)
    assert text.startswith(f"Plan change {decided.status}: order {order.id}, €30.00 → €40.00, {outcome}")


def test_an_expired_plan_change_is_posted(seller, slack):
    """R4: ten days without an answer: the plan is unchanged and the seller hears it."""
    order = factories.order(seller, anchor=T + dt.timedelta(days=60))
    change = plan_changes.propose_plan_change(order, "40", T)

    run_due_work(change.expires_at)
    send_due_messages()

    assert any("expired unconfirmed after 10 days: the plan stays at €30.00" in t for t in texts(slack))


def test_a_rate_limited_message_waits_for_retry_after_then_is_sent_once(seller, slack):
    """429: nothing posted, the next try after Retry-After; then the one message, once."""
    order = factories.order(seller, anchor=T + dt.timedelta(days=60))
    plan_changes.decline_plan_change(plan_changes.propose_plan_change(order, "40", utcnow()).id, utcnow())
    slack.fail("chat.postMessage", 429, retry_after=30)

    send_due_messages()

    message = Outbox.get(Outbox.channel == Outbox.SLACK)
    assert message.sent_at is None and "ratelimited" in message.last_error
    assert dt.timedelta(seconds=29) <= message.next_try_at - message.created_at <= dt.timedelta(seconds=40)
    send_due_messages()
    assert slack.statuses("chat.postMessage") == [429]
    send_due_messages((utcnow() + dt.timedelta(seconds=31)).isoformat())
    send_due_messages((utcnow() + dt.timedelta(seconds=31)).isoformat())
    assert slack.statuses("chat.postMessage") == [429, 200]


def test_a_slack_server_error_backs_off_then_the_message_is_sent_once(seller, slack):
    """5xx: the next try a minute later, then one message."""
    order = factories.order(seller, anchor=T + dt.timedelta(days=60))
    plan_changes.decline_plan_change(plan_changes.propose_plan_change(order, "40", utcnow()).id, utcnow())
    slack.fail("chat.postMessage", 503)

    send_due_messages()
    message = Outbox.get(Outbox.channel == Outbox.SLACK)
    assert message.sent_at is None and message.next_try_at >= utcnow() + dt.timedelta(seconds=50)
    send_due_messages((utcnow() + dt.timedelta(minutes=2)).isoformat())

    assert slack.statuses("chat.postMessage") == [503, 200]
    assert Outbox.get_by_id(message.id).sent_at is not None


def test_a_seller_without_a_slack_workspace_gets_emails_only(slack):
    """No link, no Slack message: the emails stand alone."""
    owner = factories.seller()
    factories.order(owner, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)

    run_due_work(T)

    assert Outbox.select().where(Outbox.channel == Outbox.SLACK).count() == 0
    assert Outbox.select().where(Outbox.template == "seller_sepa_failed").count() == 1
    assert slack.calls == []


def test_while_slack_is_off_its_messages_wait_and_the_rest_goes_on(monkeypatch, slack_api_server):
    """Without SLACK_SIGNING_SECRET the message waits, saying why; emails are sent meanwhile."""
    slack_api_server.reset()
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    owner = factories.seller()
    link_workspace(owner, TEAM, CHANNEL, T)
    factories.order(owner, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)

    run_due_work(T)

    waiting = Outbox.get(Outbox.channel == Outbox.SLACK)
    assert waiting.sent_at is None and "Slack is not configured" in waiting.last_error
    assert Outbox.get(Outbox.template == "seller_sepa_failed").sent_at is not None
    assert slack_api_server.calls == []


def test_a_message_for_a_seller_who_unlinked_slack_is_dropped(seller, slack):
    """The link is gone before the message went out: it is not sent, and says so."""
    factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    factories.answer_due_charges(T, "insufficient_funds")
    SlackLink.delete().execute()

    send_due_messages()

    message = Outbox.get(Outbox.channel == Outbox.SLACK)
    assert message.sent_at is not None and "no Slack workspace linked" in message.last_error
    assert slack.calls == []


def test_a_failed_charge_the_customer_made_after_updating_the_card_is_told_with_the_next_automatic_date(seller, slack):
    """R10, R11: the seller hears of every failed payment, the customer's own too; the schedule stands."""
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    run_due_work(T)
    day_after = T + dt.timedelta(days=1)
    attempt = update_card_and_charge(order, 1, factories.card(factories.DECLINED), day_after)
    charge(attempt.id, day_after.isoformat())
    run_due_work(day_after)

    _, told = slack.wait_for("chat.postMessage", 2)
    assert told["text"] == (
        f"Payment failed: order {order.id}, installment 1, €30.00 "
        "(the customer's own attempt after updating the payment method)."
    )
    assert "Next attempt" in json.dumps(told["blocks"]) and "Your card was declined." in json.dumps(told["blocks"])


def test_failures_of_two_sellers_applied_in_one_batch_reach_each_seller_where_that_seller_listens(seller, slack):
    """One batch, read once per seller: the seller who linked Slack hears of each failure there, the other by
    email, whichever order their events come in."""
    unlinked = factories.seller()
    declining = factories.card(factories.INSUFFICIENT_FUNDS)
    orders = [factories.order(owner, payment=declining, anchor=T) for owner in (seller, unlinked, seller, unlinked)]

    run_due_work(T)

    told = Outbox.select(Outbox.channel, Outbox.template, Outbox.recipient).where(Outbox.template != "payment_failed")
    assert sorted(told.tuples()) == sorted(
        [(Outbox.SLACK, "slack_payment_failed", str(seller.id))] * 2
        + [(Outbox.EMAIL, "seller_payment_failed", orders[1].product.notification_email)] * 2
    )
    assert len(slack.wait_for("chat.postMessage", 2)) == 2
