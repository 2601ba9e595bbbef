"""/collections: R9's list, the orders in collections (with their Hand-off button) and those handed off."""

from billing.collections import collections_list
from bot import blocks
from bot.listening import register_command, say, seller
from bot.parsing import Malformed
from runtime import utcnow


def register(app) -> None:
    register_command(app, "/collections", no_arguments, list_collections)


def no_arguments(text: str) -> str:
    if text.strip():
        raise Malformed("`/collections` takes nothing after it.")
    return text


def list_collections(_, context, command, respond, client) -> None:
    owner = seller(context)
    text, shown = blocks.collections(*blocks.first_listed(collections_list(owner)), owner.timezone, utcnow())
    say(respond, text, shown)
