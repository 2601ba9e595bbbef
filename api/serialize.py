"""What the API answers: rows turned into the JSON shapes that api/openapi.py describes.

Amounts are strings ("30.00"), never floats; times are UTC ISO 8601 ("2027-01-31T08:00:00Z"), and every
answer that carries times names the seller's time zone so clients can show local times.
"""

import datetime as dt

from billing.collections import Debt, case_debt
from billing.orders import OrderView
from billing.plan_changes import first_due_at
from models import ChargeAttempt, CollectionCase, Order, PlanChange, Product, Seller, WebhookEndpoint


def utc(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def seller(row: Seller) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "language": row.language,
        "timezone": row.timezone,
        "digest": row.digest,
        "digest_due_at": utc(row.digest_due_at),
    }


def webhook_endpoint(row: WebhookEndpoint) -> dict:
    return {
        "id": row.id,
        "url": row.url,
        "created_at": utc(row.created_at),
        "failing_since": utc(row.failing_since),
        "disabled_at": utc(row.disabled_at),
    }


def product(row: Product) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "notification_email": row.notification_email,
        "support_email": row.support_email,
        "sepa_retry": row.sepa_retry,
        "reminder_days": row.reminder_days,
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


def collection_state(case: CollectionCase, debt: Debt) -> dict:
    """Listed with its open debt now, or handed off (when, what, how much)."""
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
    return {"order": order_summary(case.order), "collection": collection_state(case, case_debt(case, now))}


def renewal(row: ChargeAttempt, timezone: str) -> dict:
    return {
        "order_id": row.installment.order_id,
        "installment": row.installment.number,
        "attempt": attempt(row),
        "timezone": timezone,
    }


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
        "reminded_at": utc(change.reminded_at),
    }


def order(view: OrderView) -> dict:
    """The whole order (billing.orders.order_view)."""
    row = view.order
    upcoming = view.next_attempt
    return {
        **order_summary(row),
        "timezone": row.seller.timezone,
        "first_due_at": utc(row.anchor_at),
        "product": {"id": row.product.id, "name": row.product.name},
        "payment_method": payment_method(row),
        "installments": [
            {
                "number": i.row.number,
                "due_at": utc(i.row.due_at),
                "amount": str(i.row.amount),
                "status": i.row.status,
                "paid_at": utc(i.row.paid_at),
                "attempts": [attempt(a) for a in i.attempts],
            }
            for i in view.installments
        ],
        "next_attempt": {
            "installment": upcoming.installment,
            "number": upcoming.number,
            "kind": upcoming.kind,
            "due_at": utc(upcoming.due_at),
        }
        if upcoming
        else None,
        "pending_change": plan_change(view.pending_change) if view.pending_change else None,
        "collections": collection_state(view.collection.case, view.collection.debt) if view.collection else None,
        "coming_installments": None
        if view.coming_installments is None
        else [{"number": number, "due_at": utc(due)} for number, due in view.coming_installments],
    }
