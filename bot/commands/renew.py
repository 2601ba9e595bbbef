"""/renew <order> and the "Renew payment plan" button: R7, the fourth and final attempt, charged at once.

The answer says the charge is under way and is kept: once the gateway reports the outcome, the Slack delivery
replaces it with the outcome (bot.delivery.outcome_known).
"""

from billing import dunning
from bot import blocks, parsing
from bot.delivery import await_outcome
from bot.listening import check_may_act, find_order, register_button, register_command, say, seller
from jobs import work
from models import ChargeAttempt, Order
from runtime import enqueue_after_commit, utcnow


def register(app) -> None:
    register_command(app, "/renew", parsing.order_ref, renew_command)
    register_button(app, blocks.RENEW, renew_button)


def _renew(context, user_id: str, ref: str) -> tuple[Order, ChargeAttempt, str]:
    check_may_act(context, user_id)
    owner = seller(context)
    order = find_order(owner, ref)
    attempt = dunning.renew_plan(owner, order.id, utcnow())
    text = (
        f"Order {order.id}: the fourth and final attempt, {blocks.money(attempt.amount, order.currency)} on the card "
        f"•••• {order.card_last4}, is being charged now. The outcome follows here."
    )
    return order, attempt, text


def _charge(attempt: ChargeAttempt) -> None:
    # Queued last, so that the messages awaiting the outcome are kept and shown before it can arrive.
    enqueue_after_commit(work.charge, attempt.id, job_id=f"charge-{attempt.id}")


def renew_command(ref: str, context, command, respond, client) -> None:
    order, attempt, text = _renew(context, command["user_id"], ref)
    try:
        shown = [blocks.section(text)]
        await_outcome(order.seller_id, order.id, shown, utcnow(), response_url=command["response_url"])
        say(respond, text, shown)
    finally:
        _charge(attempt)


def renew_button(ref: str, context, body, respond, client) -> None:
    user = body["user"]["id"]
    order, attempt, text = _renew(context, user, ref)
    try:
        original = body["message"]["blocks"]
        container = body["container"]
        if container.get("is_ephemeral"):
            await_outcome(order.seller_id, order.id, original, utcnow(), response_url=body["response_url"])
        else:
            await_outcome(
                order.seller_id,
                order.id,
                original,
                utcnow(),
                channel_id=container["channel_id"],
                ts=container["message_ts"],
            )
        say(respond, text, blocks.settled(original, f"<@{user}> renewed the payment plan. {text}"), replace=True)
    finally:
        _charge(attempt)
