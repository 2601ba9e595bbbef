"""The slash commands and their buttons and form, through signed requests to /slack/events (R3, R7, R9, R12);
what the bot answers is what the local Slack Web API received."""

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from billing import dunning, plan_changes
from billing.workspaces import link_workspace
from bot import blocks
from jobs.work import run_due_work
from models import ChargeAttempt, CollectionCase, Order, Outbox, PlanChange, Seller
from runtime import queue, redis_connection, utcnow
from tests import factories
from tests.slack_api import (
    CHANNEL,
    TEAM,
    click,
    command,
    fixture,
    signed_post,
    wait_until,
)

# The adapter takes the time from the clock (runtime.utcnow): orders start 20 days ago, so the first installment is
# due and the second is not, whatever the day the suite runs.
T = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=20)
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


@pytest.fixture
def seller(slack):
    owner = factories.seller()
    link_workspace(owner, TEAM, CHANNEL, T)
    return owner


@pytest.fixture
def interrupted(seller):
    """A card order whose three automatic attempts failed: waiting for the seller."""
    order = factories.order(seller, anchor=T)
    factories.decline_the_ladder(T)
    return order


def answers(slack, count=1):
    return [body["text"] for body in slack.wait_for("response_url", count)]


def renewals():
    return ChargeAttempt.select().where(ChargeAttempt.kind == ChargeAttempt.RENEWAL).count()


# --- /renew (R7)


def test_renew_charges_the_fourth_attempt_and_replaces_its_answer_with_the_outcome(client, slack, interrupted):
    """/renew answers at once that the final attempt is charged, then, once the gateway reported, the outcome."""
    response = command(client, slack, "/renew", str(interrupted.id))

    assert response.status_code == 200
    [sent] = answers(slack)
    assert f"Order {interrupted.id}: the fourth and final attempt, €30.00" in sent
    wait_until(lambda: queue().count >= 1)  # the charge job, queued last
    run_due_work(utcnow())  # the sandbox charges the card on file (it succeeds) and reports it by webhook

    outcome = slack.wait_for("response_url", 2)[1]
    assert outcome["replace_original"] is True
    assert f"Payment recovered: order {interrupted.id}, installment 1" in outcome["text"]
    assert Order.get_by_id(interrupted.id).status == Order.ACTIVE
    assert renewals() == 1


@pytest.mark.parametrize(
    ("situation", "reason"),
    [
        ("active", "has had 0 of 3 automatic attempts: renewing is possible only after the third one failed"),
        ("sepa", "is paid by SEPA: a failed SEPA debit is never retried"),
        ("unknown", "There is no order 999999"),
        ("another seller's", "There is no order"),
    ],
)
def test_renew_refusals_say_why_and_charge_nothing(client, slack, seller, situation, reason):
    """Too early, SEPA, an unknown order and another seller's order are each refused with the reason."""
    order = {
        "active": lambda: factories.order(seller),
        "sepa": lambda: factories.order(seller, payment=factories.sepa()),
        "unknown": lambda: None,
        "another seller's": lambda: factories.order(factories.seller("Bob Books")),
    }[situation]()

    command(client, slack, "/renew", str(order.id) if order else "999999")

    [answer] = answers(slack)
    assert reason in answer
    assert renewals() == 0


def test_renew_finds_an_order_by_its_invoice_number_too(client, slack, interrupted):
    """`/renew INV-…` names the order as well as its number does."""
    command(client, slack, "/renew", interrupted.invoice_number)

    assert "the fourth and final attempt" in answers(slack)[0]
    wait_until(lambda: queue().count >= 1)
    assert renewals() == 1


def test_an_order_number_in_other_digits_names_no_order(client, slack, interrupted):
    """`/renew ٣` and `/order ٣` are not order 3: Python's int() reads other scripts' digits, Tranche does not."""
    other_digits = str(interrupted.id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))

    command(client, slack, "/renew", other_digits)
    command(client, slack, "/order", other_digits)

    assert answers(slack, 2) == [f"There is no order {other_digits}.", f"No order of yours matches “{other_digits}”."]
    assert renewals() == 0


@pytest.mark.parametrize("text", ["", "12 13"])
def test_a_malformed_renew_gets_the_usage_at_once_and_nothing_runs(client, slack, seller, text):
    """Nothing, or two orders: the answer to the command itself is the usage, never a stack trace."""
    response = command(client, slack, "/renew", text)

    assert response.status_code == 200
    assert "`/renew <order>`" in response.get_data(as_text=True)
    assert "Name one order" in response.get_data(as_text=True)
    assert slack.calls == []


def test_renew_from_a_button_replaces_the_message_and_leaves_no_button(client, slack, interrupted):
    """The Renew button of /order's answer charges once; the answer loses its buttons, the outcome follows."""
    command(client, slack, "/order", str(interrupted.id))
    [card] = slack.wait_for("response_url")

    click(client, slack, "renew", interrupted.id, message=card)

    replaced = slack.wait_for("response_url", 2)[1]
    assert replaced["replace_original"] is True
    assert "renewed the payment plan" in json.dumps(replaced["blocks"])
    assert not [b for b in replaced["blocks"] if b["type"] == "actions"]
    wait_until(lambda: queue().count >= 1)
    assert renewals() == 1


# --- /update-plan (R3)


@pytest.mark.parametrize("amount", ["40", "40.00", "40,00", "40,00 €", "€40"])
def test_update_plan_reads_the_amount_as_sellers_write_it(client, slack, seller, amount):
    """40, 40.00, 40,00 and 40,00 € all propose 40.00; the customer is emailed the link to confirm."""
    order = factories.order(seller)

    command(client, slack, "/update-plan", f"{order.id} {amount}")

    [answer] = answers(slack)
    assert f"Order {order.id}: €40.00 instead of €30.00 for the remaining installments is proposed" in answer
    change = PlanChange.get(PlanChange.order == order)
    assert (change.status, change.new_amount) == (PlanChange.PENDING, Decimal("40.00"))
    assert Outbox.select().where(Outbox.template == "plan_change_proposed").count() == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{id} 1,99", "The new amount must be at least 2.00."),
        ("{id} 30,00", "The new amount must differ from the current 30.00."),
        ("{id} 40 6 installments", "The number of installments cannot change: only the amount can."),
        ("{id} 40 weekly", "The payment interval cannot change: only the amount can."),
        ("{id} 40 USD", "is billed in EUR, not USD"),
        ("{id} abc", "“abc” is not an amount: write it like `40`, `40.00` or `40,00 €`."),
        ("{id} 1.234,50", "without thousands separators"),
        ("{id} ٤٠", "is not an amount"),
        ("{id} ４０", "is not an amount"),
        ("{id} 40 ٦x", "is not an amount"),
        ("{other_digits} 40", "There is no order"),
    ],
)
def test_update_plan_refusals_say_why_and_change_nothing(client, slack, seller, text, reason):
    """Below 2.00, unchanged, another count or interval, another currency, no amount at all, or digits of another
    script in the amount, the count or the order: the reason."""
    order = factories.order(seller)

    other_digits = str(order.id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    command(client, slack, "/update-plan", text.format(id=order.id, other_digits=other_digits))

    [answer] = answers(slack)
    assert reason in answer
    assert PlanChange.select().count() == 0


def proposals_emailed(inbox, order) -> int:
    """Send what is due, and count the confirmation emails the customer received."""
    run_due_work(utcnow())
    return len(inbox.to(order.customer.email))


def test_a_retried_update_plan_after_a_redis_restart_proposes_once_and_emails_once(client, slack, seller, inbox):
    """Redis forgets the request between Slack's try and its retry: still one change and one email."""
    order = factories.order(seller)
    body = fixture("command.json", command="/update-plan", text=f"{order.id} 40", response_url=slack.response_url())
    signed_post(client, body)
    answers(slack)
    redis_connection().flushdb()  # a Redis restart without persistence

    retry = signed_post(client, body, headers=RETRY)

    assert retry.status_code == 200
    assert PlanChange.select().count() == 1
    assert proposals_emailed(inbox, order) == 1
    assert len(slack.received("response_url")) == 1


def test_update_plan_without_arguments_opens_the_form_with_an_order_field(client, slack, seller):
    """`/update-plan` alone opens the form: which order, and the new amount."""
    response = command(client, slack, "/update-plan")

    assert response.status_code == 200
    [opened] = slack.wait_for("views.open")
    view = opened["view"]
    assert view["callback_id"] == "update_plan_view"
    assert [b["block_id"] for b in view["blocks"]] == ["order", "amount"]


def test_update_plan_with_an_order_opens_the_form_showing_its_current_plan(client, slack, seller):
    """`/update-plan 12` shows order 12's plan (3 × €30.00 monthly) above the amount field."""
    order = factories.order(seller)

    command(client, slack, "/update-plan", str(order.id))

    view = slack.wait_for("views.open")[0]["view"]
    assert "3 × €30.00 monthly" in view["blocks"][0]["text"]["text"]
    assert view["blocks"][-1]["block_id"] == "amount"
    assert json.loads(view["private_metadata"])["order_id"] == order.id


def _submit(client, slack, order_id, amount, order_field=None, view_id="V0PLANFORM", headers=None):
    body = fixture("view_submission.json", trigger_id=f"trigger-{view_id}-{amount}-{order_field}")
    body["view"]["id"] = view_id
    body["view"]["private_metadata"] = json.dumps({"order_id": order_id, "response_url": slack.response_url("form")})
    values = {"amount": {"value": {"type": "plain_text_input", "value": amount}}}
    if order_field is not None:
        values["order"] = {"value": {"type": "plain_text_input", "value": order_field}}
    body["view"]["state"]["values"] = values
    return signed_post(client, body, headers=headers)


def test_the_form_proposes_the_change_and_confirms_where_the_command_was_typed(client, slack, seller):
    """A valid form closes, the change is pending, and the command's channel hears of it."""
    order = factories.order(seller)

    response = _submit(client, slack, None, "40,00 €", order_field=str(order.id))

    assert response.status_code == 200 and response.data == b""
    assert PlanChange.get(PlanChange.order == order).new_amount == Decimal("40.00")
    [confirmation] = slack.wait_for("response_url")
    assert confirmation["path"] == "/response/form"
    assert "€40.00 instead of €30.00" in confirmation["text"]


@pytest.mark.parametrize(
    ("amount", "order_field", "block", "reason"),
    [
        ("abc", None, "amount", "is not an amount"),
        ("1,50", None, "amount", "at least 2.00"),
        ("40", "999999", "order", "There is no order 999999."),
    ],
)
def test_the_form_shows_a_refusal_beside_its_field_and_changes_nothing(
    client, slack, seller, amount, order_field, block, reason
):
    """A malformed or refused amount, or an unknown order, comes back into the form next to its field."""
    order = factories.order(seller)

    response = _submit(client, slack, None if order_field else order.id, amount, order_field=order_field)

    answer = response.get_json()
    assert answer["response_action"] == "errors"
    assert reason in answer["errors"][block]
    assert PlanChange.select().count() == 0


def test_a_form_submitted_twice_proposes_once(client, slack, seller):
    """A double submit of one form makes one proposal and one email, not two."""
    order = factories.order(seller)

    _submit(client, slack, order.id, "40")
    _submit(client, slack, order.id, "40", order_field="")

    assert PlanChange.select().count() == 1
    assert Outbox.select().where(Outbox.template == "plan_change_proposed").count() == 1


@pytest.mark.parametrize(
    ("order_field", "headers"), [(None, RETRY), ("", None)], ids=["Slack's retry", "a second submit"]
)
def test_a_form_submitted_again_after_a_redis_restart_proposes_once_and_emails_once(
    client, slack, seller, inbox, order_field, headers
):
    """Redis forgets the form between its two submissions (the same request retried, or a double click)."""
    order = factories.order(seller)
    _submit(client, slack, order.id, "40")
    redis_connection().flushdb()  # a Redis restart without persistence

    again = _submit(client, slack, order.id, "40", order_field=order_field, headers=headers)

    assert again.status_code == 200
    assert PlanChange.select().count() == 1
    assert proposals_emailed(inbox, order) == 1


def test_a_refused_form_may_be_corrected_and_submitted_again(client, slack, seller):
    """After a refusal the same form is submitted again with a good amount, and proposes."""
    order = factories.order(seller)

    _submit(client, slack, order.id, "1")
    _submit(client, slack, order.id, "45")

    assert PlanChange.get(PlanChange.order == order).new_amount == Decimal("45.00")


def test_the_update_plan_button_opens_the_form_for_its_order(client, slack, seller):
    """/order's "Update plan" button opens the form showing that order's plan."""
    order = factories.order(seller)
    command(client, slack, "/order", str(order.id))
    [card] = slack.wait_for("response_url")

    click(client, slack, "update_plan", order.id, message=card)

    view = slack.wait_for("views.open")[0]["view"]
    assert json.loads(view["private_metadata"])["order_id"] == order.id


# --- /order (R12)


def test_order_finds_by_customer_name_and_shows_the_state_and_the_next_actions(client, slack, interrupted):
    """/order dubois: status, paid and open installments, next date, and Renew / Hand off / Update plan."""
    command(client, slack, "/order", "dubois")

    [answer] = slack.wait_for("response_url")
    text = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "Status: *interrupted*" in text
    assert "Open: installment 1, €30.00" in text and "3 failed attempt(s)" in text
    [actions] = [b for b in answer["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["renew", "hand_off", "update_plan"]


def test_order_offers_no_renew_or_hand_off_while_the_renewal_is_being_charged(client, slack, interrupted):
    """The buttons are what the rules allow now: a renewed order cannot be renewed again, nor handed off while
    its fourth attempt is under way; its plan may still change."""
    dunning.renew_plan(interrupted, utcnow())

    command(client, slack, "/order", str(interrupted.id))

    [answer] = slack.wait_for("response_url")
    [actions] = [b for b in answer["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["update_plan"]


def test_order_shows_a_pending_change_and_the_next_date(client, slack, seller):
    """An active order with a pending change shows it, with the date its consent expires."""
    order = factories.order(seller)
    command(client, slack, "/update-plan", f"{order.id} 40")
    slack.wait_for("response_url")

    command(client, slack, "/order", order.invoice_number)

    text = json.dumps(slack.wait_for("response_url", 2)[1]["blocks"], ensure_ascii=False)
    assert "Pending change: €30.00 → €40.00" in text
    assert "Next: installment 1, 1 May 2026, 10:00" in text


def test_order_never_shows_another_sellers_orders(client, slack, seller):
    """Bob's order matches the name, but Alice's workspace does not see it."""
    factories.order(factories.seller("Bob Books"), customer_name="Zoe Zimmer")

    command(client, slack, "/order", "zimmer")

    assert answers(slack) == ["No order of yours matches “zimmer”."]


def test_order_without_a_search_gets_the_usage(client, slack, seller):
    """`/order` alone says what to type."""
    response = command(client, slack, "/order", "  ")

    assert "Say which order" in response.get_data(as_text=True)


# --- /collections and /collect (R9)


def test_collections_lists_orders_in_collections_with_their_hand_off_button(client, slack, seller):
    """A failed SEPA debit is listed, with its reason and a Hand-off button."""
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    factories.answer_due_charges(T, "insufficient_funds")

    command(client, slack, "/collections")

    [answer] = slack.wait_for("response_url")
    text = json.dumps(answer["blocks"], ensure_ascii=False)
    assert f"*Order {order.id}*" in text and "SEPA debit failed" in text
    assert "Open debt: €30.00 (installments 1)" in text
    [actions] = [b for b in answer["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["action_id"] == "hand_off"


def test_collections_says_so_when_the_list_is_empty(client, slack, seller):
    """No order in collections: one line says so."""
    command(client, slack, "/collections")

    assert answers(slack) == ["No order is in collections."]


def test_collect_asks_for_confirmation_then_the_click_hands_off_once(client, slack, interrupted):
    """/collect shows a Hand-off button behind a confirm dialog; its click hands off and queues the delivery."""
    command(client, slack, "/collect", str(interrupted.id))
    [prompt] = slack.wait_for("response_url")
    [button] = [b for b in prompt["blocks"] if b["type"] == "actions"][0]["elements"]
    assert button["confirm"]["title"]["text"] == "Hand to collections?"

    click(client, slack, "hand_off", interrupted.id, message=prompt)

    replaced = slack.wait_for("response_url", 2)[1]
    assert replaced["replace_original"] is True
    assert f"handed order {interrupted.id} to the collection partner: €30.00 (installments 1)" in replaced["text"]
    wait_until(lambda: queue().count >= 2)  # the partner delivery and the messages
    assert Order.get_by_id(interrupted.id).status == Order.HANDED_OFF
    assert CollectionCase.get(CollectionCase.order == interrupted).handed_off_amount == Decimal("30.00")


def test_a_hand_off_clicked_twice_hands_off_once_and_says_why_the_second_time(client, slack, interrupted):
    """The second click is refused: the order was already handed to the collection partner."""
    click(client, slack, "hand_off", interrupted.id)
    slack.wait_for("response_url")
    click(client, slack, "hand_off", interrupted.id)

    second = slack.wait_for("response_url", 2)[1]
    assert second["text"] == f"Order {interrupted.id} was already handed to the collection partner."
    assert CollectionCase.select().count() == 1


# --- /tranche pending (R15)


def test_tranche_pending_lists_the_changes_waiting_for_customers_nearest_deadline_first_with_the_time_left(
    client, slack, seller
):
    """Two changes wait: one proposed 8 days ago (48 hours left, reminded), one yesterday (9 days left); a confirmed
    one and another seller's are not listed."""
    now = utcnow()
    older, newer, answered = (factories.order(seller) for _ in range(3))
    plan_changes.propose_plan_change(newer, "45.00", now - dt.timedelta(days=1))
    plan_changes.propose_plan_change(older, "40.00", now - dt.timedelta(days=8))
    plan_changes.remind_unanswered_changes(now)
    done = plan_changes.propose_plan_change(answered, "50.00", now - dt.timedelta(days=2))
    plan_changes.confirm_plan_change(done.id, now - dt.timedelta(days=1))
    plan_changes.propose_plan_change(factories.order(factories.seller("Bob Books")), "35.00", now)

    command(client, slack, "/tranche", "pending")

    [answer] = slack.wait_for("response_url")
    assert answer["text"] == "2 plan change(s) wait for the customer's answer."
    shown = [block["text"]["text"] for block in answer["blocks"][1:]]
    assert [line.split(" · ")[0] for line in shown] == [f"*Order {older.id}*", f"*Order {newer.id}*"]
    assert "€30.00 → €40.00" in shown[0] and "; reminded " in shown[0] and "*48 hours left*" in shown[0]
    assert "€30.00 → €45.00" in shown[1] and "reminded" not in shown[1] and "*9 days left*" in shown[1]


def test_tranche_pending_says_so_when_nothing_waits(client, slack, seller):
    command(client, slack, "/tranche", "pending")

    assert answers(slack) == ["No plan change waits for a customer's answer."]


# --- R17: /tranche digest, the digest, the App Home tab


def test_tranche_digest_on_brings_the_figures_to_the_channel_at_9_and_off_stops_them(client, slack, interrupted):
    """Opted in from Slack: at the next 09:00 Berlin the channel reads the figures (the interrupted order's €30.00
    at risk); opted out, the next 09:00 brings nothing."""
    command(client, slack, "/tranche", "digest on")

    [answer] = answers(slack)
    due = Seller.get_by_id(interrupted.seller_id).digest_due_at
    assert answer.startswith("You will read the day's figures here every morning at 09:00 (Europe/Berlin)")
    run_due_work(due)
    [posted] = [body for body in slack.received("chat.postMessage") if "digest" in json.dumps(body["blocks"])]
    assert posted["channel"] == CHANNEL
    assert posted["text"].startswith("Good morning: €30.00 at risk")
    assert "*Recovery rate, last 30 days:* 0% (0 of 1 failed installments paid since)" in json.dumps(posted["blocks"])

    command(client, slack, "/tranche", "digest off")
    assert answers(slack, 2)[1] == "No more digests. `/tranche digest on` starts them again."
    run_due_work(due + dt.timedelta(days=1))
    assert len([b for b in slack.received("chat.postMessage") if "digest" in json.dumps(b["blocks"])]) == 1


def test_the_app_home_tab_shows_the_figures_and_the_orders_that_need_the_seller_with_their_buttons(
    client, slack, interrupted
):
    """Opening the bot's Home tab publishes the digest's figures now, and the interrupted order with Renew."""
    body = fixture("event__app_home_opened.json", team_id=TEAM, event_id=f"Ev{uuid.uuid4().hex[:10]}")

    assert signed_post(client, body).status_code == 200

    [published] = slack.wait_for("views.publish")
    view = json.loads(published["view"]) if isinstance(published["view"], str) else published["view"]
    assert published["user_id"] == "U0ALICE" and view["type"] == "home"
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert "*Revenue at risk:* €30.00" in shown
    assert f"*Order {interrupted.id}*" in shown and "interrupted: awaits your renewal" in shown
    assert f'"action_id": "{blocks.RENEW}"' in shown


# --- help and usage


@pytest.mark.parametrize(("name", "text"), [("/tranche", "help"), ("/tranche", ""), ("/tranche", "dance"), ("/x", "")])
def test_help_and_unknown_commands_get_the_usage(client, slack, seller, name, text):
    """`/tranche help`, `/tranche`, an unknown subcommand or command: the list of commands."""
    response = command(client, slack, name, text)

    answer = response.get_data(as_text=True)
    assert "*Tranche commands*" in answer and "`/update-plan <order> <amount>`" in answer


def test_renew_after_a_hard_decline_is_refused_saying_the_customer_must_give_another_card(client, slack, seller):
    order = factories.order(seller, payment=factories.card(factories.LOST), anchor=T)
    run_due_work(T)

    command(client, slack, "/renew", str(order.id))

    [answer] = answers(slack)
    assert "refused the card on file for good (lost_card)" in answer and "another card" in answer
    assert renewals() == 0
