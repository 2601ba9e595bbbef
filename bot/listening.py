"""What every listener shares: the seller behind a Slack request, its permission to act, running slow work
after the ack, and never acting twice on one Slack request."""

import functools
import logging

from slack_bolt.response import BoltResponse

from billing.errors import BillingError, Refused
from bot.blocks import usage
from bot.once import first_time
from bot.parsing import Malformed
from models import Seller, db
from runtime import utcnow

logger = logging.getLogger(__name__)
# What an ack function leaves in the context for its lazy work (bot/bolt.py): JSON, since it travels through Redis.
LATER = "later"
SOMETHING_WENT_WRONG = (
    "Sorry, something went wrong on our side and the error was logged. Try again in a minute, or use the API."
)


def seller(context) -> Seller:
    """The seller linked to the request's workspace (identify_seller found it before anything ran)."""
    return Seller.get_by_id(context["seller_id"])


def check_may_act(context, user_id: str) -> None:
    """When the link lists Slack users, only they may renew or hand off."""
    allowed = context.get("allowed_user_ids")
    if allowed and user_id not in allowed:
        raise Refused("Only the Slack users your seller account lists may renew or hand off orders.", "not_allowed")


def say(respond, text: str, blocks: list[dict] | None = None, replace: bool = False) -> None:
    """An answer only the user who asked sees; `replace` swaps it for the message whose button was clicked."""
    respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=replace)


def in_background(func):
    """A lazy listener: runs in a worker after the ack (bot/bolt.py), on its own connection. A refusal is told
    to the user in the rule's own words, and a failure as an apology, never as a stack trace."""

    @functools.wraps(func)
    def run(**kwargs):
        respond = kwargs.get("respond")
        try:
            with db.connection_context():
                func(**kwargs)
        except BillingError as error:
            if respond:
                say(respond, error.message)
        except Malformed as error:
            if respond:
                say(respond, usage(error.message))
        except Exception:
            logger.exception("Slack listener %s failed", func.__name__)
            if respond:
                say(respond, SOMETHING_WENT_WRONG)

    return run


def register_command(app, name: str, parse, work) -> None:
    """`name` acks at once: the usage when `parse` cannot read its text, else nothing; then `work(parsed,
    context, command, respond, client)` runs in the background."""

    def acknowledge(ack, command):
        try:
            parse(command.get("text") or "")
        except Malformed as error:
            return ack(text=usage(error.message))
        return ack()

    @in_background
    def answer(context, command, respond, client):
        try:
            parsed = parse(command.get("text") or "")
        except Malformed:
            return  # the ack answered with the usage
        work(parsed, context=context, command=command, respond=respond, client=client)

    app.command(name)(ack=acknowledge, lazy=[answer])


def register_button(app, action_id: str, work) -> None:
    """A button acks at once; `work(order_ref, context, body, respond, client)` runs in the background."""

    def acknowledge(ack):
        ack()

    @in_background
    def click(context, body, action, respond, client):
        work(action["value"], context=context, body=body, respond=respond, client=client)

    app.action(action_id)(ack=acknowledge, lazy=[click])


def request_key(body: dict) -> str | None:
    """What names one Slack request across its retries: the trigger of a command or click, an event's id."""
    return body.get("trigger_id") or body.get("event_id")


def ignore_repeats(req, body, next):
    """Global middleware: a request Slack sends again (X-Slack-Retry-Num, same trigger) is acknowledged, not run.
    The lazy work of a request comes back through here from its worker, after its ack recorded the key."""
    key = request_key(body)
    if key and not req.lazy_only and not first_time(f"request:{key}", utcnow()):
        return BoltResponse(status=200, body="")
    return next()


def on_error(error, body):
    """Anything a listener did not expect: logged; the user reads an apology, Slack gets a 200."""
    logger.error("Slack request failed: %r", error, exc_info=error)
    return BoltResponse(status=200, body=SOMETHING_WENT_WRONG if "command" in body else "")
