"""R11 and the customer emails of R5: messages written to the outbox in the transaction of their fact.

Each function names one fact and records it, as it is now, for whoever must hear of it: an email, and for a
seller who linked a Slack workspace a message in its channel. A job renders and sends them later. The dedupe
key names the fact, so the same fact never yields two messages on one channel. Customers read their emails in
their language, with the product's support address to reply to; sellers in the seller's language, at the
product's notification address.
"""

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from peewee import ColumnBase, Value, fn

from billing.followups import SEND_MESSAGES, FollowUp, follow_up
from billing.retries import AUTOMATIC_ATTEMPTS, hard_decline
from models import (
    ChargeAttempt,
    CollectionCase,
    Installment,
    Order,
    Outbox,
    PlanChange,
    Seller,
    SlackLink,
    WebhookEndpoint,
    unless_taken,
)

# What a message says, as its outbox row keeps it (JSON): rendered later, in the recipient's language.
Facts = dict[str, object]
# R14's messages, which the tick looks for before it writes them (billing.reminders).
CARD_EXPIRING = "card_expiring"
INSTALLMENT_REMINDER = "installment_reminder"


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _queue(
    template: str,
    recipient: str,
    language: str,
    context: Facts,
    fact: str,
    now: dt.datetime,
    channel: str = Outbox.EMAIL,
) -> None:
    row = {
        "channel": channel,
        "template": template,
        "recipient": recipient,
        "language": language,
        "context": context,
        "dedupe_key": f"{template}:{fact}",
        "created_at": now,
        "next_try_at": now,
    }
    batch = _batch.get()
    if batch is not None:
        batch.rows.append(row)
        return
    _write([row])


# Rows an INSERT carries: a batch's failures write a message per live endpoint of their seller's, which has no bound,
# and a statement binds at most 65,535 values on PostgreSQL, 32,766 on SQLite (a row is nine).
ROWS_PER_INSERT = 1000


def _write(rows: list[dict[str, Any]]) -> None:
    # A message already written for its fact is not written again, nor is the second of two in one batch.
    written = 0
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        written += unless_taken(Outbox.insert_many(chunk)).as_rowcount().execute()
    if written:
        follow_up(FollowUp(SEND_MESSAGES))


_T = TypeVar("_T")


@dataclass
class _Batch:
    # What has been read of each seller's reach, by what was asked.
    read: dict[tuple[str, int], object] = field(default_factory=dict)
    # The messages queued, written as the batch ends.
    rows: list[dict[str, Any]] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("batch", default=None)


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """For a batch of events applied in one transaction, which links and registers nothing: within the block, whether
    a seller linked Slack and which of its webhook endpoints are live is read once per seller, and the messages
    queued are written in one statement as the block ends: four statements fewer for each failed payment."""
    current = _Batch()
    token = _batch.set(current)
    try:
        yield
        if current.rows:
            _write(current.rows)
    finally:
        _batch.reset(token)


def _once(what: str, seller_id: int, read: Callable[[], _T]) -> _T:
    current = _batch.get()
    if current is None:
        return read()
    known = current.read
    if (what, seller_id) not in known:
        known[what, seller_id] = read()
    return known[what, seller_id]  # type: ignore[return-value]  # what was read for that key


def _has_slack(seller_id: int) -> bool:
    return _once("slack", seller_id, lambda: SlackLink.select().where(SlackLink.seller == seller_id).exists())


def _live_endpoints(seller_id: int) -> list[int]:
    live = WebhookEndpoint.select(WebhookEndpoint.id).where(
        WebhookEndpoint.seller == seller_id, WebhookEndpoint.disabled_at.is_null()
    )
    return _once("endpoints", seller_id, lambda: [endpoint.id for endpoint in live])


def _tell_seller_on_slack(template: str, order: Order, context: Facts, fact: str, now: dt.datetime) -> None:
    """R11: a message in the seller's Slack channel, when the seller linked a workspace (the recipient is the
    seller's id: the job finds the channel, which the seller may relink meanwhile)."""
    if _has_slack(order.seller_id):
        _queue(template, str(order.seller_id), "en", context, fact, now, channel=Outbox.SLACK)


def _tell_seller_by_email(template: str, order: Order, context: Facts, fact: str, now: dt.datetime) -> None:
    _queue(template, order.product.notification_email, order.seller.language, context, fact, now)


def _tell_seller_briefly(template: str, order: Order, context: Facts, fact: str, now: dt.datetime) -> None:
    """R11: news a seller hears on Slack, or by email when no workspace is linked (`template` names the email;
    the Slack message is its slack_ twin)."""
    if _has_slack(order.seller_id):
        _tell_seller_on_slack(template.replace("seller_", "slack_", 1), order, context, fact, now)
    else:
        _tell_seller_by_email(template, order, context, fact, now)


def _tell_customer(template: str, order: Order, context: Facts, fact: str, now: dt.datetime) -> None:
    """An email to the customer, in their language, that they answer at the product's support address."""
    facts = {**context, "reply_to": order.product.contact_email}
    _queue(template, order.customer.email, order.customer.language, facts, fact, now)


# The events a seller's webhook endpoints hear of (SPEC), each written where its fact is.
EVENT_TYPES = (
    "payment.failed",
    "payment.recovered",
    "plan.interrupted",
    "plan.completed",
    "plan_change.confirmed",
    "plan_change.declined",
    "plan_change.expired",
    "collections.listed",
    "collections.handed_off",
)


def seller_event(order: Order, event_type: str, data: Mapping[str, object], fact: str, now: dt.datetime) -> None:
    """SPEC: each endpoint of the order's seller that is not disabled gets the event (Standard Webhooks' body:
    type, timestamp, data), written in the transaction of its fact; `fact` names it once per endpoint."""
    assert event_type in EVENT_TYPES, event_type
    body: Facts = {
        "type": event_type,
        "timestamp": now.isoformat(),
        "data": {"order_id": order.id, "invoice_number": order.invoice_number, **data},
    }
    for endpoint_id in _live_endpoints(order.seller_id):
        recipient = str(endpoint_id)
        _queue(event_type, recipient, "en", body, f"{fact}:endpoint-{recipient}", now, channel=Outbox.WEBHOOK)


def seller_endpoint_disabled(endpoint: WebhookEndpoint, error: str, now: dt.datetime) -> None:
    """SPEC: the seller hears that an endpoint failing for 3 days no longer gets events, by email and on Slack."""
    seller = endpoint.seller
    facts = {
        "endpoint_id": endpoint.id,
        "url": endpoint.url,
        "error": error,
        "failing_since": _time(endpoint.failing_since),
        "seller": seller.name,
        "timezone": seller.timezone,
        "currency": "EUR",
    }
    _queue("seller_endpoint_disabled", seller.email, seller.language, facts, f"endpoint-{endpoint.id}", now)
    if _has_slack(seller.id):
        fact = f"endpoint-{endpoint.id}"
        _queue("slack_endpoint_disabled", str(seller.id), "en", facts, fact, now, channel=Outbox.SLACK)


def queued(template: str, fact: ColumnBase) -> ColumnBase:
    """SQL: the outbox holds `template`'s message about the fact each row names (_queue's dedupe key)."""
    return fn.EXISTS(Outbox.select(Outbox.id).where(Outbox.dedupe_key == Value(f"{template}:").concat(fact)))


def _installment_facts(installment: Installment) -> Facts:
    order = installment.order
    return {
        **_order_facts(order),
        "installment": installment.number,
        "amount": str(installment.amount),
        "due_at": _time(installment.due_at),
        "card_last4": order.card_last4,
        "card_exp": f"{order.card_exp_year:04}-{order.card_exp_month:02}" if order.card_exp_year else None,
        "iban_masked": order.iban_masked,
    }


def customer_card_expiring(installment: Installment, card: str, now: dt.datetime) -> None:
    """R14: the card on file expires before `installment` is due; the link (rendered later) updates it."""
    _tell_customer(CARD_EXPIRING, installment.order, _installment_facts(installment), card, now)


def customer_installment_reminder(installment: Installment, now: dt.datetime) -> None:
    """R14: the product's reminder, some days before `installment` is charged."""
    facts = _installment_facts(installment)
    _tell_customer(INSTALLMENT_REMINDER, installment.order, facts, f"installment-{installment.id}", now)


def seller_digest(seller: Seller, figures: Facts, now: dt.datetime) -> None:
    """R17: the morning's figures in the seller's Slack channel, one per local day; no workspace, no digest."""
    if _has_slack(seller.id):
        day = now.astimezone(ZoneInfo(seller.timezone)).date().isoformat()
        facts = {**figures, "seller": seller.name, "timezone": seller.timezone, "day": day}
        _queue("slack_digest", str(seller.id), "en", facts, f"digest-{seller.id}-{day}", now, channel=Outbox.SLACK)


def _order_facts(order: Order) -> Facts:
    return {
        "order_id": order.id,
        "invoice_number": order.invoice_number,
        "product": order.product.name,
        "seller": order.seller.name,
        "customer_name": order.customer.name,
        "customer_email": order.customer.email,
        "currency": order.currency,
        "method": order.method,
        "timezone": order.seller.timezone,
    }


def _failure_facts(attempt: ChargeAttempt) -> Facts:
    return {
        "attempt": attempt.number,
        "kind": attempt.kind,
        "at": _time(attempt.settled_at),
        "code": attempt.failure_code,
        "message": attempt.failure_message,
    }


def customer_payment_failed(attempt: ChargeAttempt, next_attempt_at: dt.datetime | None, now: dt.datetime) -> None:
    """R5: amount, reason, which attempt of three, the next date, and (rendered) the card-update link.

    R11: the seller hears of it briefly on Slack, unless it was the third: that one has its own message, with
    buttons (seller_payment_failed_finally)."""
    order = attempt.installment.order
    facts = _failed_payment_facts(attempt, next_attempt_at)
    _tell_customer("payment_failed", order, facts, f"attempt-{attempt.id}", now)
    if next_attempt_at is not None:
        _tell_seller_briefly("seller_payment_failed", order, facts, f"attempt-{attempt.id}", now)


def customer_sepa_debit_retried(attempt: ChargeAttempt, next_attempt_at: dt.datetime, now: dt.datetime) -> None:
    """R16: the customer hears the debit failed and when it is tried once more, so that the funds are there."""
    order = attempt.installment.order
    facts = _failed_payment_facts(attempt, next_attempt_at)
    _tell_customer("sepa_debit_retried", order, facts, f"attempt-{attempt.id}", now)


def _failed_payment_facts(attempt: ChargeAttempt, next_attempt_at: dt.datetime | None) -> Facts:
    installment = attempt.installment
    return {
        **_order_facts(installment.order),
        **_failure_facts(attempt),
        "installment": installment.number,
        "amount": str(attempt.amount),
        "attempts_total": AUTOMATIC_ATTEMPTS,
        "hard_decline": hard_decline(attempt.failure_code, attempt.advice_code),
        "next_attempt_at": _time(next_attempt_at),
    }


def seller_customer_charge_failed(attempt: ChargeAttempt, next_at: dt.datetime | None, now: dt.datetime) -> None:
    """R10, R11: the customer's own charge after updating the card failed: the seller hears of it briefly."""
    order = attempt.installment.order
    facts = _failed_payment_facts(attempt, next_at)
    _tell_seller_briefly("seller_payment_failed", order, facts, f"attempt-{attempt.id}", now)


def customer_payment_recovered(attempt: ChargeAttempt, now: dt.datetime) -> None:
    """A payment that failed before (or the seller's renewal) went through: the customer and the seller hear."""
    installment = attempt.installment
    order = installment.order
    facts = {
        **_order_facts(order),
        "installment": installment.number,
        "amount": str(attempt.amount),
        "attempt": attempt.number,
        "kind": attempt.kind,
    }
    fact = f"installment-{installment.id}"
    _tell_customer("payment_recovered", order, facts, fact, now)
    _tell_seller_briefly("seller_payment_recovered", order, facts, fact, now)


def seller_payment_failed_finally(installment: Installment, template: str, now: dt.datetime) -> None:
    """R6, R7, R8: the seller hears of a debt Tranche stops chasing, with every failure reason."""
    order = installment.order
    failures = installment.attempts.where(ChargeAttempt.status == ChargeAttempt.FAILED).order_by(
        ChargeAttempt.settled_at
    )
    facts = {
        **_order_facts(order),
        "installment": installment.number,
        "amount": str(installment.amount),
        "failures": [_failure_facts(a) for a in failures],
    }
    fact = f"installment-{installment.id}"
    _tell_seller_by_email(template, order, facts, fact, now)
    # seller_third_failure → slack_third_failure (R6: with the Renew and Hand-off buttons), and so on.
    _tell_seller_on_slack(template.replace("seller_", "slack_", 1), order, facts, fact, now)


def seller_handed_off(case: CollectionCase, now: dt.datetime) -> None:
    order = case.order
    facts = {
        **_order_facts(order),
        "installments": case.handed_off_installments,
        "amount": str(case.handed_off_amount),
        "handed_off_at": _time(case.handed_off_at),
    }
    _tell_seller_by_email("seller_handed_off", order, facts, f"case-{case.id}", now)
    _tell_seller_on_slack("slack_handed_off", order, facts, f"case-{case.id}", now)


def _change_facts(change: PlanChange) -> Facts:
    return {
        **_order_facts(change.order),
        "change_id": change.id,
        "old_amount": str(change.old_amount),
        "new_amount": str(change.new_amount),
        "proposed_at": change.proposed_at.isoformat(),
        "expires_at": change.expires_at.isoformat(),
        "status": change.status,
    }


def customer_plan_change_proposed(change: PlanChange, first_due_at: dt.datetime | None, now: dt.datetime) -> None:
    """R3: the customer is asked to confirm; the link (rendered later) is bound to this change."""
    facts = {**_change_facts(change), "first_due_at": _time(first_due_at)}
    _tell_customer("plan_change_proposed", change.order, facts, f"change-{change.id}", now)


def customer_plan_change_reminder(change: PlanChange, first_due_at: dt.datetime | None, now: dt.datetime) -> None:
    """R15: the same request again, with the time left; its link is the first email's (signed at the proposal)."""
    facts = {**_change_facts(change), "first_due_at": _time(first_due_at)}
    _tell_customer("plan_change_reminder", change.order, facts, f"change-{change.id}", now)


def plan_change_decided(change: PlanChange, now: dt.datetime, first_due_at: dt.datetime | None = None) -> None:
    """R4, R11: the seller hears the outcome (confirmed, declined or expired); a confirming customer too, with
    the first due date at the new amount."""
    order = change.order
    facts = {**_change_facts(change), "first_due_at": _time(first_due_at)}
    _tell_seller_by_email("seller_plan_change", order, facts, f"change-{change.id}", now)
    _tell_seller_on_slack("slack_plan_change", order, facts, f"change-{change.id}", now)
    data = {k: facts[k] for k in ("change_id", "old_amount", "new_amount", "first_due_at")}
    seller_event(order, f"plan_change.{change.status}", data, f"change-{change.id}", now)
    if change.status == PlanChange.CONFIRMED:
        _tell_customer("plan_change_confirmed", order, facts, f"change-{change.id}", now)
