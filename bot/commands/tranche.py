"""/tranche pending (R15), /tranche help, and the usage for any command no other module took: never a stack
trace."""

import re

from billing.plan_changes import pending_changes
from bot import blocks
from bot.blocks import usage
from bot.listening import register_command, say, seller
from bot.parsing import Malformed
from runtime import utcnow


def register(app) -> None:
    register_command(app, "/tranche", pending_only, list_pending)
    # Registered last: a command Slack sends that nothing above handles still gets the usage.
    app.command(re.compile(r"^/"))(answer_unknown)


def pending_only(text: str) -> str:
    """`/tranche pending` has work to do; anything else, `help` and nothing included, is answered the usage."""
    name = text.strip()
    if name != "pending":
        raise Malformed(None if name in ("", "help") else f"I don't know `/tranche {name}`.")
    return name


def list_pending(_, context, command, respond, client) -> None:
    owner = seller(context)
    changes = pending_changes(owner)
    total = changes.count()
    text, shown = blocks.pending_changes(
        list(changes.limit(blocks.MAX_LISTED)), max(total - blocks.MAX_LISTED, 0), owner.timezone, utcnow()
    )
    say(respond, text, shown)


def answer_unknown(ack, command) -> None:
    ack(text=usage(f"I don't know `{command['command']}`."))
