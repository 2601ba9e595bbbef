"""The Slack side of the outbox (R6, R11): post each notification in the seller's channel once, and once an
order's outcome is known, update in place every message that still shows buttons for it.

Slack's answers decide the next try: 429 waits its Retry-After, a 5xx or a network failure backs off.
"""

import datetime as dt

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

from billing.retries import DELIVERY_RETRIES
from bot import blocks
from bot.linking import api_url, bot_token, installation_store, slack_enabled
from models import Order, Outbox, SlackLink, SlackMessage, transaction

SETTLE = "slack_update"  # the outbox template that updates an earlier message in place
# Messages whose buttons (renew, hand off) stay useful until the order's outcome is known.
ACTIONABLE = ("slack_third_failure", "slack_hard_decline", "slack_sepa_failed", "slack_renewal_failed")


class Retry(Exception):
    """Not sent this time; try again after `delay`."""

    def __init__(self, reason: str, delay: dt.timedelta | None = None):
        super().__init__(reason)
        self.delay = delay


def await_outcome(
    seller_id: int,
    order_id: int,
    shown: list[dict],
    now: dt.datetime,
    channel_id: str | None = None,
    ts: str | None = None,
    response_url: str | None = None,
) -> None:
    """Keep a message that waits for the order's outcome (it shows buttons, or says the outcome follows): a
    channel message, or an ephemeral answer by its response_url. A message already kept stays as it is."""
    if (
        channel_id
        and SlackMessage.select().where(SlackMessage.channel_id == channel_id, SlackMessage.ts == ts).exists()
    ):
        return
    SlackMessage.create(
        seller=seller_id,
        order=order_id,
        channel_id=channel_id,
        ts=ts,
        response_url=response_url,
        blocks=blocks.without_actions(shown),
        created_at=now,
    )


def outcome_known(order_id: int, note: str, now: dt.datetime) -> list[int]:
    """The order's outcome is known: each message waiting for it gets an update, sent through the outbox.
    Returns the outbox ids of the updates."""
    updates = []
    waiting = SlackMessage.select().where(SlackMessage.order == order_id, SlackMessage.settled_at.is_null())
    for message in list(waiting):
        # Conditional, so that two outcomes delivered at once update a message once.
        settled = (
            SlackMessage.update(settled_at=now)
            .where(SlackMessage.id == message.id, SlackMessage.settled_at.is_null())
            .execute()
        )
        if settled:
            update = Outbox.create(
                channel=Outbox.SLACK,
                template=SETTLE,
                recipient=str(message.seller_id),
                context={"slack_message_id": message.id, "note": note},
                dedupe_key=f"{SETTLE}:slack-message-{message.id}",
                created_at=now,
                next_try_at=now,
            )
            updates.append(update.id)
    return updates


def _client(settings, link: SlackLink) -> WebClient:
    if not slack_enabled(settings):
        raise Retry("Slack is not configured (SLACK_SIGNING_SECRET, and SLACK_BOT_TOKEN or the OAuth client)")
    token = bot_token(settings, link.team_id, None, installation_store(settings))
    if token is None:
        raise Retry(f"no bot token for Slack workspace {link.team_id}: install the app again")
    return WebClient(token=token, base_url=api_url(settings), timeout=10)


def _post(message: Outbox, link: SlackLink, settings, now: dt.datetime) -> list[int]:
    """Post one notification; a message with buttons is kept, and an outcome queues the updates of the earlier
    messages that wait for it (returned)."""
    facts = message.context
    text, shown = blocks.NOTIFICATIONS[message.template](facts)
    order = Order.get_or_none(Order.id == facts["order_id"]) if "order_id" in facts else None
    # The buttons reflect the order as it is now: a message sent late offers no spent action.
    buttons = blocks.order_actions(order, now) if order and message.template in ACTIONABLE else []
    if buttons:
        shown = [*shown, blocks.actions_block(buttons, order.id)]
    posted = _client(settings, link).chat_postMessage(channel=link.channel_id, text=text, blocks=shown)
    # Recorded at once, on its own: Slack does not deduplicate posts, so nothing that may fail after the post
    # may leave it unrecorded (and posted again once the claim lapses).
    Outbox.record_sent(message.id, now)
    with transaction():
        updates = outcome_known(facts["order_id"], text, now) if message.template in blocks.OUTCOMES else []
        if buttons:
            await_outcome(link.seller_id, order.id, shown, now, channel_id=posted["channel"], ts=posted["ts"])
    return updates


def _update(message: Outbox, link: SlackLink, settings, now: dt.datetime) -> list[int]:
    """Update an earlier message in place: its buttons give way to the outcome."""
    shown = SlackMessage.get_by_id(message.context["slack_message_id"])
    note = message.context["note"]
    settled = blocks.settled(shown.blocks, note)
    if shown.response_url:
        answer = WebhookClient(shown.response_url, timeout=10).send(
            text=note, blocks=settled, replace_original=True, response_type="ephemeral"
        )
        if answer.status_code == 429 or answer.status_code >= 500:
            raise Retry(f"response_url answered HTTP {answer.status_code}", _retry_after(answer.headers))
        # Any other refusal is final: a response_url works for 30 minutes only.
        refused = None if answer.status_code == 200 else f"response_url: HTTP {answer.status_code}"
        Outbox.record_sent(message.id, now, refused)
        return []
    _client(settings, link).chat_update(channel=shown.channel_id, ts=shown.ts, text=note, blocks=settled)
    Outbox.record_sent(message.id, now)
    return []


def _retry_after(headers) -> dt.timedelta | None:
    value = {k.lower(): v for k, v in (headers or {}).items()}.get("retry-after")
    if isinstance(value, list):
        value = value[0]
    return dt.timedelta(seconds=int(value)) if value and str(value).isdigit() else None


def deliver_slack_message(message: Outbox, settings, now: dt.datetime) -> bool:
    """Send one Slack outbox message its caller claimed (Outbox.claim_due, Outbox.claim); True once sent."""
    link = SlackLink.get_or_none(SlackLink.seller == int(message.recipient))
    if link is None:
        Outbox.record_sent(message.id, now, "not sent: the seller has no Slack workspace linked any more")
        return False
    try:
        updates = (_update if message.template == SETTLE else _post)(message, link, settings, now)
    except (Retry, SlackApiError, SlackRequestError, OSError) as error:
        delay = getattr(error, "delay", None)
        if isinstance(error, SlackApiError) and error.response.status_code == 429:
            delay = _retry_after(error.response.headers)
        next_try_at = now + delay if delay else DELIVERY_RETRIES.next_try(message.attempts, now)
        Outbox.record_failure(message.id, next_try_at, error)
        return False
    # Updated at once, not at the next tick: the outcome is known now, so no stale button should stay.
    for update in updates:
        if Outbox.claim(update, now):
            deliver_slack_message(Outbox.get_by_id(update), settings, now)
    return True
