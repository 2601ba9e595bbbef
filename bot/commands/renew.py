"""/renew <order> and the "Renew payment plan" button: R7, the fourth and final attempt, charged at once.

The answer says the charge is under way and is kept: once the gateway reports the outcome, the Slack delivery
replaces it with the outcome (bot.delivery.outcome_known).
"""

from billing import dunning, followups
from bot import blocks, parsing
from bot.delivery import await_outcome
from bot.listening import check_may_act, find_order, register_button, register_command, say, seller
from models import ChargeAttempt, Order
from runtime import utcnow


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


# The charge starts last (followups.held), so that the messages awaiting its outcome are kept and shown before
# the outcome can arrive.


def renew_command(ref: str, context, command, respond, client) -> None:
    with followups.held():
        order, _attempt, text = _renew(context, command["user_id"], ref)
        shown = [blocks.section(text)]
        await_outcome(order.seller_id, order.id, shown, utcnow(), response_url=command["response_url"])
        say(respond, text, shown)


def renew_button(ref: str, context, body, respond, client) -> None:
    user = body["user"]["id"]
    with followups.held():
        order, _attempt, text = _renew(context, user, ref)
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
