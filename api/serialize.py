"""What the API answers: rows turned into the JSON shapes that api/openapi.py describes.

Amounts are strings ("30.00"), never floats; times are UTC ISO 8601 ("2027-01-31T08:00:00Z"), and every
answer that carries times names the seller's time zone so clients can show local times.
"""

import datetime as dt
from collections import defaultdict

from billing.collections import case_debt
from billing.plan_changes import first_due_at, pending_change
from billing.plans import SUBSCRIPTION, coming_due_dates
from models import ChargeAttempt, CollectionCase, Installment, Order, PlanChange, Product

COMING_INSTALLMENTS = 3


def utc(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def product(row: Product) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "notification_email": row.notification_email,
        "support_email": row.support_email,
    }


def payment_method(order: Order) -> dict:
    """What identifies the card or account to a person; the gateway's token never leaves Tranche."""
    if order.method == "sepa":
        return {"type": "sepa", "iban": order.iban_masked}
    return {
        "type": "card",
        "brand": order.card_brand,
        "last4": order.card_last4,
        "exp_month": order.card_exp_month,
        "exp_year": order.card_exp_year,
    }


def order_summary(order: Order) -> dict:
    customer = order.customer
    return {
        "id": order.id,
        "invoice_number": order.invoice_number,
        "status": order.status,
        "plan": order.plan,
        "installment_count": order.installment_count,
        "interval": order.interval,
        "amount": str(order.amount),
        "currency": order.currency,
        "customer": {"name": customer.name, "email": customer.email, "language": customer.language},
        "created_at": utc(order.created_at),
    }


def attempt(row: ChargeAttempt) -> dict:
    return {
        "number": row.number,
        "kind": row.kind,
        "status": row.status,
        "amount": str(row.amount),
        "due_at": utc(row.due_at),
        "settled_at": utc(row.settled_at),
        "failure_code": row.failure_code,
        "failure_message": row.failure_message,
    }


def collection_state(case: CollectionCase | None, now: dt.datetime) -> dict | None:
    """None while Tranche still collects by itself; else listed with its open debt now, or handed off (when,
    what, how much)."""
    if case is None:
        return None
    debt = case_debt(case, now)
    return {
        "state": "listed" if case.handed_off_at is None else "handed_off",
        "reason": case.reason,
        "opened_at": utc(case.opened_at),
        "handed_off_at": utc(case.handed_off_at),
        "installments": debt.installments,
        "amount": str(debt.amount),
        "delivered_at": utc(case.delivered_at),
    }


def collection_entry(case: CollectionCase, now: dt.datetime) -> dict:
    return {"order": order_summary(case.order), "collection": collection_state(case, now)}


def renewal(row: ChargeAttempt, timezone: str) -> dict:
    return {
        "order_id": row.installment.order_id,
        "installment": row.installment.number,
        "attempt": attempt(row),
        "timezone": timezone,
    }


def _next_attempt(order: Order, installments: list[Installment], attempts: dict) -> dict | None:
    """The earliest scheduled attempt; while nothing is being charged, an active plan's next installment."""
    scheduled = [
        (a.due_at, i.number, a.number, a.kind)
        for i in installments
        for a in attempts[i.id]
        if a.status == ChargeAttempt.SCHEDULED
    ]
    if not scheduled and order.status == Order.ACTIVE and all(i.status != Installment.OPEN for i in installments):
        # Its first attempt is written only when the installment falls due (R2), but it is known now.
        scheduled = [
            (i.due_at, i.number, 1, ChargeAttempt.AUTOMATIC) for i in installments if i.status == Installment.SCHEDULED
        ]
    if not scheduled:
        return None
    due_at, installment, number, kind = min(scheduled)
    return {"installment": installment, "number": number, "kind": kind, "due_at": utc(due_at)}


def _coming_installments(order: Order, installments: list[Installment]) -> list[dict] | None:
    """A subscription's next due dates past the installments it already has (none once it stopped)."""
    if order.plan != SUBSCRIPTION:
        return None
    if order.status != Order.ACTIVE:
        return []
    last = installments[-1].number if installments else 0
    dates = coming_due_dates(order, last, COMING_INSTALLMENTS)
    return [{"number": last + n, "due_at": utc(due)} for n, due in enumerate(dates, start=1)]


def plan_change(change: PlanChange) -> dict:
    return {
        "id": change.id,
        "order_id": change.order_id,
        "status": change.status,
        "old_amount": str(change.old_amount),
        "new_amount": str(change.new_amount),
        "proposed_at": utc(change.proposed_at),
        "expires_at": utc(change.expires_at),
        "first_due_at": utc(first_due_at(change)),
    }


def _change_or_none(change: PlanChange | None) -> dict | None:
    return plan_change(change) if change else None


def order(row: Order, now: dt.datetime) -> dict:
    """The whole order: its schedule with every attempt, what comes next, and where its debt stands."""
    installments = list(row.installments.order_by(Installment.number))
    attempts = defaultdict(list)
    query = (
        ChargeAttempt.select()
        .join(Installment)
        .where(Installment.order == row)
        .order_by(ChargeAttempt.due_at, ChargeAttempt.id)
    )
    for each in query:
        attempts[each.installment_id].append(each)
    schedule = [
        {
            "number": i.number,
            "due_at": utc(i.due_at),
            "amount": str(i.amount),
            "status": i.status,
            "paid_at": utc(i.paid_at),
            "attempts": [attempt(a) for a in attempts[i.id]],
        }
        for i in installments
    ]
    return {
        **order_summary(row),
        "timezone": row.seller.timezone,
        "first_due_at": utc(row.anchor_at),
        "product": {"id": row.product.id, "name": row.product.name},
        "payment_method": payment_method(row),
        "installments": schedule,
        "next_attempt": _next_attempt(row, installments, attempts),
        "pending_change": _change_or_none(pending_change(row)),
        "collections": collection_state(CollectionCase.get_or_none(CollectionCase.order == row), now),
        "coming_installments": _coming_installments(row, installments),
    }
