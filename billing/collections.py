"""R8 and R9: the collections list, and the seller's final hand-off to the collection partner."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from peewee import ModelSelect

from billing import notifications
from billing.errors import Refused
from billing.followups import DELIVER_HANDOFF, FollowUp, follow_up
from billing.plans import hold_unpaid_installments, locked
from billing.retries import DELIVERY_RETRIES
from models import ChargeAttempt, CollectionCase, Installment, Order, Seller, transaction, unless_taken


def list_in_collections(order: Order, reason: str, now: dt.datetime) -> None:
    """R8, R7: an open debt Tranche will not recover by itself; the plan charges nothing more."""
    Order.update(status=Order.COLLECTIONS).where(
        Order.id == order.id, Order.status.in_((Order.ACTIVE, Order.INTERRUPTED))
    ).execute()
    listed = unless_taken(CollectionCase.insert(order=order, reason=reason, opened_at=now)).as_rowcount()
    if listed.execute():
        notifications.seller_event(order, "collections.listed", {"reason": reason}, f"listed-{order.id}", now)


def leave_collections(order_id: int) -> None:
    """The debt was paid after all (a success reported after the failure): the order is off the list. A hand-off
    stays final. The caller resumes the plan, in the statement that resumes an interrupted one."""
    # types-peewee declares Model.delete as a generic attribute; whether mypy objects depends on the packages beside it.
    CollectionCase.delete().where(  # type: ignore[misc, unused-ignore]
        CollectionCase.order == order_id, CollectionCase.handed_off_at.is_null()
    ).execute()


def collections_list(seller: Seller) -> "ModelSelect[CollectionCase]":
    """Orders listed in collections or handed off, newest first."""
    return (
        CollectionCase.select(CollectionCase, Order)
        .join(Order)
        .where(Order.seller == seller)
        .order_by(CollectionCase.opened_at.desc())
    )


@dataclass(frozen=True)
class Debt:
    installments: list[int]  # their numbers
    amount: Decimal


def open_debt(order: Order, now: dt.datetime) -> Debt:
    """R9: the installments due by now on the clock and not paid, and their sum."""
    due = order.installments.where(Installment.status != Installment.PAID, Installment.due_at <= now)
    installments = list(due.order_by(Installment.number))
    return Debt([i.number for i in installments], sum((i.amount for i in installments), start=Decimal("0.00")))


def case_debt(case: CollectionCase, now: dt.datetime) -> Debt:
    """What a collections case is about: the debt recorded at the hand-off, else the open debt now."""
    if case.handed_off_amount is not None:
        return Debt(case.handed_off_installments, case.handed_off_amount)
    return open_debt(case.order, now)


def handoff_refusal(order: Order, now: dt.datetime) -> Refused | None:
    """R9: why the seller cannot hand `order` off now, or None when its open debt may go to the partner."""
    if order.status == Order.HANDED_OFF:
        return Refused(f"Order {order.id} was already handed to the collection partner.", "already_handed_off")
    if order.status not in (Order.COLLECTIONS, Order.INTERRUPTED):
        return Refused(
            f"Order {order.id} has no debt Tranche has given up on: only orders in collections or waiting "
            "for a renewal can be handed off.",
            "not_in_collections",
        )
    pending = (
        ChargeAttempt.select()
        .join(Installment)
        .where(
            Installment.order == order,
            ChargeAttempt.status.in_((ChargeAttempt.SCHEDULED, ChargeAttempt.IN_FLIGHT)),
        )
    )
    if pending.exists():
        return Refused(f"Order {order.id} has a charge under way: wait for its outcome.", "charge_in_flight")
    if not open_debt(order, now).installments:
        return Refused(
            f"Order {order.id} has no open debt: nothing due is unpaid, so there is nothing to hand off.",
            "no_open_debt",
        )
    return None


def can_hand_off(order: Order, now: dt.datetime) -> bool:
    return handoff_refusal(order, now) is None


def hand_to_collections(order: Order, now: dt.datetime) -> CollectionCase:
    """R9: record the hand-off (when, which installments, how much) and make it final."""
    with transaction():
        # A hand-off asked while a late success is applied waits for it and reads the plan resumed.
        hold_unpaid_installments(order.id)
        order = locked(order)
        refusal = handoff_refusal(order, now)
        if refusal:
            raise refusal
        debt = open_debt(order, now)
        Order.update(status=Order.HANDED_OFF).where(Order.id == order.id).execute()
        # An interrupted card order has no case yet: the seller chose not to renew.
        unless_taken(
            CollectionCase.insert(order=order, reason="the seller chose not to renew", opened_at=now)
        ).as_rowcount().execute()
        CollectionCase.update(
            handed_off_at=now,
            handed_off_amount=debt.amount,
            handed_off_installments=debt.installments,
            next_delivery_at=now,
        ).where(CollectionCase.order == order).execute()
        Installment.update(status=Installment.HANDED_OFF).where(
            Installment.order == order.id, Installment.status != Installment.PAID
        ).execute()
        case = CollectionCase.get(CollectionCase.order == order)
        notifications.seller_handed_off(case, now)
        handed = {"amount": str(debt.amount), "currency": order.currency, "installments": debt.installments}
        notifications.seller_event(order, "collections.handed_off", handed, f"handed-off-{order.id}", now)
        follow_up(FollowUp(DELIVER_HANDOFF, case.id, now))
    return case


def handoff_payload(case: CollectionCase) -> dict[str, object]:
    """What the partner receives: the debt and whom it is owed by."""
    if case.handed_off_at is None:
        raise ValueError(f"collections case {case.id} was not handed off")
    order = case.order
    return {
        "case_id": case.id,
        "order_id": order.id,
        "invoice_number": order.invoice_number,
        "seller": {"id": order.seller_id, "name": order.seller.name, "email": order.seller.email},
        "customer": {"name": order.customer.name, "email": order.customer.email},
        "product": order.product.name,
        "currency": order.currency,
        "amount": str(case.handed_off_amount),
        "installments": case.handed_off_installments,
        "handed_off_at": case.handed_off_at.isoformat(),
    }


def handoffs_to_deliver(now: dt.datetime) -> "ModelSelect[CollectionCase]":
    return CollectionCase.select(CollectionCase.id).where(
        CollectionCase.delivered_at.is_null(), CollectionCase.next_delivery_at <= now
    )


def record_handoff_delivery(case: CollectionCase, error: str | None, now: dt.datetime) -> None:
    """The partner accepted (error None), or the next try is set with a growing delay."""
    if error is None:
        CollectionCase.update(delivered_at=now, next_delivery_at=None, last_delivery_error=None).where(
            CollectionCase.id == case.id
        ).execute()
        return
    CollectionCase.update(
        delivery_attempts=CollectionCase.delivery_attempts + 1,
        next_delivery_at=DELIVERY_RETRIES.next_try(case.delivery_attempts + 1, now),
        last_delivery_error=error[:2000],
    ).where(CollectionCase.id == case.id).execute()
