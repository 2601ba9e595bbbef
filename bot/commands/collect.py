"""/collect <order> and the "Hand to collections" button: R9's hand-off to the collection partner, final.

The command only shows what would be handed off; the button, behind Slack's confirm dialog, does it.
"""

from billing import collections
from bot import blocks, parsing
from bot.listening import check_may_act, find_order, register_button, register_command, say, seller
from runtime import utcnow


def register(app) -> None:
    register_command(app, "/collect", parsing.order_ref, collect_command)
    register_button(app, blocks.HAND_OFF, hand_off_button)


def collect_command(ref: str, context, command, respond, client) -> None:
    check_may_act(context, command["user_id"])
    text, shown = blocks.collect_prompt(find_order(seller(context), ref))
    say(respond, text, shown)


def hand_off_button(ref: str, context, body, respond, client) -> None:
    user = body["user"]["id"]
    check_may_act(context, user)
    owner = seller(context)
    case = collections.hand_to_collections(owner, find_order(owner, ref).id, utcnow())
    text = (
        f"<@{user}> handed order {case.order_id} to the collection partner: "
        f"{blocks.money(case.handed_off_amount, case.order.currency)} "
        f"(installments {blocks.numbers(case.handed_off_installments)})."
    )
    say(respond, text, blocks.settled(body["message"]["blocks"], text), replace=True)
