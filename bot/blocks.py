"""Block Kit builders: what the seller sees in Slack. Plain functions of facts and rows, no Slack calls.

Every message has a `text` too: Slack shows it in notifications and where blocks cannot be shown.
"""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from babel.numbers import format_currency
from peewee import ModelSelect

from billing.collections import can_hand_off, case_debt
from billing.dunning import can_renew
from billing.orders import OrderView
from billing.plan_changes import can_change_plan
from models import ChargeAttempt, CollectionCase, Installment, Order, PlanChange

LOCALE = "en_IE"
RENEW = "renew"
HAND_OFF = "hand_off"
UPDATE_PLAN = "update_plan"
UPDATE_PLAN_VIEW = "update_plan_view"
AMOUNT_BLOCK = "amount"
ORDER_BLOCK = "order"
# "9 days", not babel's default "1 week": a unit is used up to twice its next one (also i18n.Formats.duration).
DURATION_THRESHOLD = 2
# Slack refuses a message of more than 50 blocks; a long list says how many it left out.
MAX_LISTED = 20


def first_listed(rows: ModelSelect) -> tuple[list, int]:
    """The first MAX_LISTED of `rows`, and how many more there are."""
    total = rows.count()
    return list(rows.limit(MAX_LISTED)), max(total - MAX_LISTED, 0)


USAGE = {
    "/renew": "`/renew <order>`: the fourth and final attempt to charge the card, after the third one failed.",
    "/update-plan": "`/update-plan <order> <amount>`: a new amount for the remaining installments, like "
    "`/update-plan 12 40,00 €`; the customer confirms it by email. `/update-plan` alone opens a form.",
    "/order": "`/order <search>`: find an order by its number, its invoice number or the customer's name.",
    "/collections": "`/collections`: the orders in collections, and those handed to the collection partner.",
    "/collect": "`/collect <order>`: hand an order in collections to the collection partner (final).",
    "/tranche": "`/tranche pending`: the plan changes waiting for the customer's answer, and the time each has "
    "left. `/tranche digest on` (or `off`): the day's figures here every morning at 09:00. `/tranche help`: this "
    "help.",
}


def usage(problem: str | None = None) -> str:
    """The commands and how to write them, after what was wrong with the last one."""
    lines = [problem] if problem else []
    lines.append("*Tranche commands*")
    lines += [f"• {line}" for line in USAGE.values()]
    return "\n".join(lines)


def numbers(installments: list[int]) -> str:
    """Installment numbers as a seller reads them: "1, 2", or "none"."""
    return ", ".join(str(n) for n in installments) or "none"


def money(amount, currency: str) -> str:
    return format_currency(Decimal(amount), currency, locale=LOCALE)


def when(value: dt.datetime | str, timezone: str) -> str:
    """A time as the seller reads it: in the seller's time zone."""
    at = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_datetime(at, "d MMM y, HH:mm", tzinfo=ZoneInfo(timezone), locale=LOCALE)


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _confirm(title: str, text: str, yes: str) -> dict:
    return {
        "title": {"type": "plain_text", "text": title},
        "text": {"type": "mrkdwn", "text": text},
        "confirm": {"type": "plain_text", "text": yes},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }


def renew_button(order_id: int) -> dict:
    return {
        "type": "button",
        "action_id": RENEW,
        "value": str(order_id),
        "style": "primary",
        "text": {"type": "plain_text", "text": "Renew payment plan"},
        "confirm": _confirm(
            "Renew payment plan?",
            f"Order {order_id}: the card is charged once more, now. This fourth attempt is the last one.",
            "Charge now",
        ),
    }


def hand_off_button(order_id: int) -> dict:
    return {
        "type": "button",
        "action_id": HAND_OFF,
        "value": str(order_id),
        "style": "danger",
        "text": {"type": "plain_text", "text": "Hand to collections"},
        "confirm": _confirm(
            "Hand to collections?",
            f"Order {order_id} goes to the collection partner with its open debt. This is final: "
            "no renewal or plan change afterwards.",
            "Hand off",
        ),
    }


def update_plan_button(order_id: int) -> dict:
    return {
        "type": "button",
        "action_id": UPDATE_PLAN,
        "value": str(order_id),
        "text": {"type": "plain_text", "text": "Update plan"},
    }


def order_actions(order: Order, now: dt.datetime, plan_change: bool = False) -> list[dict]:
    """The buttons for what the rules let the seller do next with `order`; they ask again at the click."""
    buttons = []
    if can_renew(order):
        buttons.append(renew_button(order.id))
    if can_hand_off(order, now):
        buttons.append(hand_off_button(order.id))
    if plan_change and can_change_plan(order):
        buttons.append(update_plan_button(order.id))
    return buttons


def actions_block(buttons: list[dict], order_id: int) -> dict:
    return {"type": "actions", "block_id": f"order-{order_id}", "elements": buttons}


def without_actions(blocks: list[dict]) -> list[dict]:
    return [block for block in blocks if block.get("type") != "actions"]


def settled(blocks: list[dict], note: str) -> list[dict]:
    """A message whose buttons are spent: the buttons give way to what became of the order."""
    return [*without_actions(blocks), _context(note)]


# --- notifications (R6, R11): one builder per outbox template, from the facts the rule recorded


def _order_line(facts: dict) -> str:
    return (
        f"Order {facts['order_id']} · {facts['invoice_number']} · {facts['customer_name']} "
        f"<mailto:{facts['customer_email']}|{facts['customer_email']}> · {facts['product']}"
    )


def _failures(facts: dict) -> str:
    return "\n".join(
        f"• Attempt {f['attempt']} ({f['kind']}), {when(f['at'], facts['timezone'])}: "
        f"{f['message'] or f['code'] or 'declined'}"
        for f in facts["failures"]
    )


def _amount(facts: dict) -> str:
    return money(facts["amount"], facts["currency"])


def payment_failed(facts: dict) -> tuple[str, list[dict]]:
    which = (
        "the customer's own attempt after updating the payment method"
        if facts["kind"] == "customer"
        else f"attempt {facts['attempt']} of {facts['attempts_total']}"
    )
    text = f"Payment failed: order {facts['order_id']}, installment {facts['installment']}, {_amount(facts)} ({which})."
    reason = facts["message"] or facts["code"]
    upcoming = facts["next_attempt_at"]
    detail = f"{reason}. " + (
        f"Next attempt {when(upcoming, facts['timezone'])}." if upcoming else "No automatic attempt is left."
    )
    return text, [section(f":warning: {text}\n{detail}"), _context(_order_line(facts))]


def _debt_alert(text: str, facts: dict, detail: str | None = None) -> tuple[str, list[dict]]:
    """A debt Tranche stops chasing by itself (R6, R7, R8, Declines): what happened, every failure, what to do."""
    body = f":rotating_light: *{text}*\n{_failures(facts)}" + (f"\n{detail}" if detail else "")
    return text, [section(body), _context(_order_line(facts))]


def third_failure(facts: dict) -> tuple[str, list[dict]]:
    text = (
        f"Third payment attempt failed: order {facts['order_id']}, installment {facts['installment']}, "
        f"{_amount(facts)}. The plan is interrupted."
    )
    detail = (
        "Contact the customer, then renew the payment plan (the fourth and final attempt) or hand the order "
        "to the collection partner."
    )
    return _debt_alert(text, facts, detail)


def hard_decline(facts: dict) -> tuple[str, list[dict]]:
    text = (
        f"The bank refused the card for good: order {facts['order_id']}, installment {facts['installment']}, "
        f"{_amount(facts)}. It is not tried again, and the plan is interrupted."
    )
    detail = (
        "The customer was emailed a link to give another card. Contact them, or hand the order to the "
        "collection partner."
    )
    return _debt_alert(text, facts, detail)


def sepa_failed(facts: dict) -> tuple[str, list[dict]]:
    text = f"SEPA debit failed: order {facts['order_id']}, installment {facts['installment']}, {_amount(facts)}. " + (
        "Its one retry failed too: the order is in collections."
        if len(facts["failures"]) > 1
        else "A SEPA debit is never retried: the order is in collections."
    )
    return _debt_alert(text, facts)


def renewal_failed(facts: dict) -> tuple[str, list[dict]]:
    text = (
        f"The fourth and final attempt failed: order {facts['order_id']}, installment {facts['installment']}, "
        f"{_amount(facts)}. The order is in collections."
    )
    return _debt_alert(text, facts)


def payment_recovered(facts: dict) -> tuple[str, list[dict]]:
    how = "the renewal went through, the plan is active again" if facts["kind"] == "renewal" else "paid"
    text = f"Payment recovered: order {facts['order_id']}, installment {facts['installment']}, {_amount(facts)}: {how}."
    return text, [section(f":white_check_mark: {text}"), _context(_order_line(facts))]


def handed_off(facts: dict) -> tuple[str, list[dict]]:
    installments = numbers(facts["installments"])
    text = (
        f"Handed to collections: order {facts['order_id']}, {_amount(facts)} "
        f"(installments {installments}), {when(facts['handed_off_at'], facts['timezone'])}."
    )
    return text, [section(f":outbox_tray: {text}"), _context(_order_line(facts))]


def plan_change(facts: dict) -> tuple[str, list[dict]]:
    old, new = money(facts["old_amount"], facts["currency"]), money(facts["new_amount"], facts["currency"])
    status = facts["status"]
    outcome = {
        "confirmed": f"confirmed by the customer: the remaining installments are {new}",
        "declined": f"declined by the customer: the plan stays at {old}",
        "expired": f"expired unconfirmed after 10 days: the plan stays at {old}",
    }.get(status, status)
    text = f"Plan change {status}: order {facts['order_id']}, {old} → {new}, {outcome}."
    return text, [section(f":memo: {text}"), _context(_order_line(facts))]


def _amounts(by_currency: dict[str, str]) -> str:
    return " + ".join(money(amount, currency) for currency, amount in by_currency.items()) or money(0, "EUR")


def figures(facts: dict) -> list[dict]:
    """R17's figures (billing.digest.Figures.facts), as the digest and the App Home tab show them."""
    failed, paid = facts["failed"], facts["failed_then_paid"]
    rate = f"{paid / failed:.0%} ({paid} of {failed} failed installments paid since)" if failed else "no failure"
    lines = [
        f"*Revenue at risk:* {_amounts(facts['at_risk'])} (open debt of orders in dunning or interrupted)",
        f"*Recovered in the last 7 days:* {_amounts(facts['recovered'])}",
        f"*Recovery rate, last 30 days:* {rate}",
        f"*Plan changes waiting for the customer:* {facts['pending_changes']} (`/tranche pending`)",
        f"*Orders in collections:* {facts['open_collections']} (`/collections`)",
    ]
    return [section("\n".join(lines))]


def endpoint_disabled(facts: dict) -> tuple[str, list[dict]]:
    """A seller's webhook endpoint, refusing every event for too long (billing.endpoints), was disabled."""
    since = when(facts["failing_since"], facts["timezone"])
    text = (
        f"Your webhook endpoint {facts['url']} refused Tranche's events since {since} (last: {facts['error']}): it "
        "is disabled and gets no more. Register it anew once it answers (POST /api/v1/webhook-endpoints)."
    )
    return text, [section(f":warning: {text}")]


def digest_setting(due_at: dt.datetime | None, timezone: str) -> str:
    """The answer to /tranche digest on|off."""
    if due_at is None:
        return "No more digests. `/tranche digest on` starts them again."
    return (
        f"You will read the day's figures here every morning at 09:00 ({timezone}), the first on "
        f"{when(due_at, timezone)}. `/tranche digest off` stops them."
    )


def home(facts: dict, needing: list[Order], timezone: str, now: dt.datetime) -> dict:
    """R17: the App Home tab: the digest's figures now, then each order that needs the seller, with its buttons."""
    shown = [section(f"*Tranche, {when(now, timezone)}*"), *figures(facts), {"type": "divider"}]
    if not needing:
        shown.append(section("No order needs you now."))
    for order in needing:
        state = "interrupted: awaits your renewal" if order.status == Order.INTERRUPTED else "in collections"
        shown.append(section(f"*Order {order.id}* · {order.invoice_number} · {order.customer.name}: {state}"))
        buttons = order_actions(order, now)
        if buttons:
            shown.append(actions_block(buttons, order.id))
    return {"type": "home", "blocks": shown}


def digest(facts: dict) -> tuple[str, list[dict]]:
    """R17: the morning digest in the seller's channel."""
    text = f"Good morning: {_amounts(facts['at_risk'])} at risk, {_amounts(facts['recovered'])} recovered this week."
    return text, [section(f"*Tranche digest, {facts['day']}*"), *figures(facts)]


NOTIFICATIONS = {
    "slack_digest": digest,
    "slack_endpoint_disabled": endpoint_disabled,
    "slack_payment_failed": payment_failed,
    "slack_third_failure": third_failure,
    "slack_hard_decline": hard_decline,
    "slack_sepa_failed": sepa_failed,
    "slack_renewal_failed": renewal_failed,
    "slack_payment_recovered": payment_recovered,
    "slack_handed_off": handed_off,
    "slack_plan_change": plan_change,
}
# What these report ends what the buttons of earlier messages about the order offered.
OUTCOMES = ("slack_payment_recovered", "slack_renewal_failed", "slack_handed_off")


# --- answers to commands


def order_card(view: OrderView) -> list[dict]:
    """One order as /order shows it (billing.orders.order_view): status, paid and open installments, the next
    date and any pending change."""
    order = view.order
    zone = order.seller.timezone
    currency = order.currency
    paid = [i.row for i in view.installments if i.row.status == Installment.PAID]
    unpaid = [i for i in view.installments if i.row.status in (Installment.OPEN, Installment.HANDED_OFF)]
    if order.plan == "installments":
        plan = f"{order.installment_count} × {money(order.amount, currency)} {order.interval}"
    else:
        plan = f"subscription, {money(order.amount, currency)} {order.interval}"
    paying = f"card •••• {order.card_last4}" if order.method == "card" else f"SEPA {order.iban_masked}"
    lines = [
        f"*Order {order.id}* · {order.invoice_number} · {order.customer.name} · {order.product.name}",
        f"Status: *{order.status.replace('_', ' ')}* · {plan} · {paying}",
        f"Paid: {len(paid)} installment(s), {money(sum((i.amount for i in paid), Decimal(0)), currency)}",
    ]
    for installment in unpaid:
        failed = sum(1 for a in installment.attempts if a.status == ChargeAttempt.FAILED)
        lines.append(
            f"Open: installment {installment.row.number}, {money(installment.row.amount, currency)}, "
            f"due {when(installment.row.due_at, zone)}, {failed} failed attempt(s)"
        )
    upcoming = view.next_attempt
    if upcoming:
        lines.append(f"Next: installment {upcoming.installment}, {when(upcoming.due_at, zone)}")
    change = view.pending_change
    if change:
        lines.append(
            f"Pending change: {money(change.old_amount, currency)} → {money(change.new_amount, currency)}, "
            f"waiting for the customer until {when(change.expires_at, zone)}"
        )
    return [section("\n".join(lines))]


def orders_found(query: str, cards: list[tuple[list[dict], list[dict]]], more: int) -> tuple[str, list[dict]]:
    """The /order answer: a card and its buttons per order found."""
    if not cards:
        text = f"No order of yours matches “{query}”."
        return text, [section(text)]
    text = f"{len(cards) + more} order(s) match “{query}”."
    blocks = []
    for card, buttons in cards:
        blocks += [{"type": "divider"}, *card, *buttons]
    if more:
        blocks.append(_context(f"{more} more: search more precisely, by order number or invoice number."))
    return text, blocks


def _listing(empty: str, counted: str, shown: int, more: int, entries: list[dict], find_more: str):
    """A list answer: `empty` alone, or how many there are, the entries shown, and where the rest are."""
    if not shown:
        return empty, [section(empty)]
    text = counted.format(shown + more)
    blocks = [section(f"*{text}*"), *entries]
    if more:
        blocks.append(_context(f"{more} more: {find_more}"))
    return text, blocks


def collections(cases: list[CollectionCase], more: int, timezone: str, now: dt.datetime) -> tuple[str, list[dict]]:
    """The /collections answer (R9): the listed orders with their open debt and Hand-off button, then the
    handed-off ones."""
    entries: list[dict] = []
    for case in cases:
        order = case.order
        head = f"*Order {order.id}* · {order.invoice_number} · {order.customer.name}"
        if case.handed_off_at is None:
            debt = case_debt(case, now)
            line = (
                f"{head}\nListed {when(case.opened_at, timezone)}: {case.reason}\n"
                f"Open debt: {money(debt.amount, order.currency)} (installments {numbers(debt.installments)})"
            )
            entries += [section(line), actions_block([hand_off_button(order.id)], order.id)]
        else:
            delivered = "received by the partner" if case.delivered_at else "being delivered to the partner"
            line = (
                f"{head}\nHanded off {when(case.handed_off_at, timezone)}: "
                f"{money(case.handed_off_amount, order.currency)}, {delivered}"
            )
            entries.append(section(line))
    return _listing(
        "No order is in collections.",
        "{} order(s) in collections or handed off.",
        len(cases),
        more,
        entries,
        "see GET /api/v1/collections.",
    )


def pending_changes(changes: list[PlanChange], more: int, timezone: str, now: dt.datetime) -> tuple[str, list[dict]]:
    """The /tranche pending answer (R15): each change waiting for its customer, with the time it has left."""
    entries = []
    for change in changes:
        order = change.order
        reminded = f"; reminded {when(change.reminded_at, timezone)}" if change.reminded_at else ""
        entries.append(
            section(
                f"*Order {order.id}* · {order.invoice_number} · {order.customer.name}\n"
                f"{money(change.old_amount, order.currency)} → {money(change.new_amount, order.currency)}, "
                f"proposed {when(change.proposed_at, timezone)}{reminded}\n"
                f"*{format_timedelta(change.expires_at - now, threshold=DURATION_THRESHOLD, locale=LOCALE)} left* "
                f"(until {when(change.expires_at, timezone)})"
            )
        )
    return _listing(
        "No plan change waits for a customer's answer.",
        "{} plan change(s) wait for the customer's answer.",
        len(changes),
        more,
        entries,
        "see GET /api/v1/orders.",
    )


def collect_prompt(order: Order) -> tuple[str, list[dict]]:
    """The /collect answer: what would be handed off, and the button whose confirm dialog does it."""
    text = f"Hand order {order.id} ({order.invoice_number}, {order.customer.name}) to the collection partner?"
    return text, [section(text), actions_block([hand_off_button(order.id)], order.id)]


def plan_modal(order: OrderView | None, metadata: str) -> dict:
    """The /update-plan form: the order's current plan when known (else a field for the order), and the amount."""
    blocks = []
    if order is None:
        blocks.append(
            {
                "type": "input",
                "block_id": ORDER_BLOCK,
                "label": {"type": "plain_text", "text": "Order"},
                "element": {"type": "plain_text_input", "action_id": "value", "placeholder": _plain("e.g. 12")},
            }
        )
    else:
        blocks += order_card(order)
    blocks.append(
        {
            "type": "input",
            "block_id": AMOUNT_BLOCK,
            "label": {"type": "plain_text", "text": "New amount per installment"},
            "hint": _plain("For the installments not charged yet. At least 2.00; the customer confirms by email."),
            "element": {"type": "plain_text_input", "action_id": "value", "placeholder": _plain("e.g. 40,00 €")},
        }
    )
    return {
        "type": "modal",
        "callback_id": UPDATE_PLAN_VIEW,
        "private_metadata": metadata,
        "title": _plain("Update payment plan"),
        "submit": _plain("Propose"),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text}
