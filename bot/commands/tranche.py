"""/tranche pending (R15), /tranche digest on|off (R17), /tranche help, the App Home tab (R17), and the usage for
any command no other module took: never a stack trace."""

import re

from billing.digest import orders_needing_seller, seller_figures
from billing.plan_changes import pending_changes
from billing.sellers import change_settings
from bot import blocks
from bot.blocks import usage
from bot.listening import in_background, register_command, say, seller
from bot.parsing import Malformed
from runtime import utcnow

SUBCOMMANDS = ("pending", "digest on", "digest off")


def register(app) -> None:
    register_command(app, "/tranche", subcommand, run)
    app.event("app_home_opened")(ack=lambda ack: ack(), lazy=[publish_home])
    # Registered last: a command Slack sends that nothing above handles still gets the usage.
    app.command(re.compile(r"^/"))(answer_unknown)


def subcommand(text: str) -> str:
    """One of SUBCOMMANDS; anything else, `help` and nothing included, is answered the usage."""
    name = " ".join(text.split())
    if name not in SUBCOMMANDS:
        raise Malformed(None if name in ("", "help") else f"I don't know `/tranche {name}`.")
    return name


def run(name: str, context, command, respond, client) -> None:
    owner = seller(context)
    now = utcnow()
    if name == "pending":
        text, shown = blocks.pending_changes(*blocks.first_listed(pending_changes(owner)), owner.timezone, now)
        say(respond, text, shown)
        return
    owner = change_settings(owner, now, digest=name == "digest on")
    say(respond, blocks.digest_setting(owner.digest_due_at, owner.timezone))


@in_background
def publish_home(context, event, client) -> None:
    """R17: the App Home tab shows the digest's figures, now, and the orders that need the seller, with buttons."""
    owner = seller(context)
    now = utcnow()
    needing = list(orders_needing_seller(owner).limit(blocks.MAX_LISTED))
    view = blocks.home(seller_figures(owner, now).facts(), needing, owner.timezone, now)
    client.views_publish(user_id=event["user"], view=view)


def answer_unknown(ack, command) -> None:
    ack(text=usage(f"I don't know `{command['command']}`."))
