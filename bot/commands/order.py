"""/order <search>: R12, the seller's orders by number, invoice number or customer name, each with its state
and the buttons for what the seller may do next."""

from billing import search
from billing.orders import order_view
from bot import blocks
from bot.listening import register_command, say, seller
from bot.parsing import Malformed
from runtime import utcnow

# Each order is a card of a few blocks; Slack takes 50 blocks per message.
SHOWN = 5


def register(app) -> None:
    register_command(app, "/order", search_text, find)


def search_text(text: str) -> str:
    if not text.strip():
        raise Malformed("Say which order: `/order 12`, `/order INV-2026-001` or `/order Dubois`.")
    return text.strip()


def find(query: str, context, command, respond, client) -> None:
    found = search.find_orders(seller(context), query)
    cards, now = [], utcnow()
    for order in found[:SHOWN]:
        buttons = blocks.order_actions(order, now, plan_change=True)
        cards.append(
            (blocks.order_card(order_view(order, now)), [blocks.actions_block(buttons, order.id)] if buttons else [])
        )
    text, shown = blocks.orders_found(query, cards, max(len(found) - SHOWN, 0))
    say(respond, text, shown)
