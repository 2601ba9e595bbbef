"""R3 the seller's new amount for the remaining installments, R4 the customer's consent within 10 days."""

import datetime as dt

from peewee import ModelSelect

from billing import notifications
from billing.errors import BillingError, Refused
from billing.money import MINIMUM_INSTALLMENT, parse_amount
from billing.plans import hold_unpaid_installments, locked
from models import Customer, Installment, Order, PlanChange, Seller, lock, transaction

CONFIRMATION_WINDOW = dt.timedelta(hours=240)
# R15: a change still unanswered this long after its email gets one reminder, with the same link.
REMINDER_AFTER = dt.timedelta(hours=168)
# A plan the seller may still change: not completed, and not given up to collections.
CHANGEABLE = (Order.ACTIVE, Order.INTERRUPTED)


class ChangeNotOpen(BillingError):
    """The link's change was already decided, replaced by a newer one, or has expired."""

    def __init__(self, change: PlanChange, status: str | None = None):
        status = status or change.status
        super().__init__(f"This plan change is {status}.", status)
        self.change = change


def change_refusal(order: Order) -> Refused | None:
    """R3: why the seller cannot change the plan of `order`, or None when a new amount may be proposed."""
    if order.status not in CHANGEABLE:
        status = order.status.replace("_", " ")
        return Refused(f"Order {order.id} is {status}: its plan can no longer change.", "closed")
    return None


def can_change_plan(order: Order) -> bool:
    return change_refusal(order) is None


def propose_plan_change(
    order: Order,
    amount: object,
    now: dt.datetime,
    installment_count: int | None = None,
    interval: str | None = None,
) -> PlanChange:
    """R3: a pending change to `amount`, replacing any pending one; the customer is emailed to confirm."""
    with transaction():
        # Two proposals at once must not both stay pending: the second waits, then supersedes the first.
        order = locked(order)
        if installment_count is not None and installment_count != order.installment_count:
            raise Refused("The number of installments cannot change: only the amount can.", "count_fixed")
        if interval is not None and interval != order.interval:
            raise Refused("The payment interval cannot change: only the amount can.", "interval_fixed")
        refusal = change_refusal(order)
        if refusal:
            raise refusal
        new_amount = parse_amount(amount)
        if new_amount < MINIMUM_INSTALLMENT:
            raise Refused(f"The new amount must be at least {MINIMUM_INSTALLMENT}.", "below_minimum")
        if new_amount == order.amount:
            raise Refused(f"The new amount must differ from the current {order.amount}.", "unchanged")
        PlanChange.update(status=PlanChange.SUPERSEDED, decided_at=now).where(
            PlanChange.order == order, PlanChange.status == PlanChange.PENDING
        ).execute()
        change = PlanChange.create(
            order=order,
            old_amount=order.amount,
            new_amount=new_amount,
            proposed_at=now,
            expires_at=now + CONFIRMATION_WINDOW,
        )
        notifications.customer_plan_change_proposed(change, first_due_at(change), now)
    return change


def pending_change(order: Order) -> PlanChange | None:
    return order.plan_changes.where(PlanChange.status == PlanChange.PENDING).get_or_none()


def pending_changes(seller: Seller) -> "ModelSelect[PlanChange]":
    """R15: the seller's changes waiting for their customers' answer, the nearest deadline first."""
    return (
        PlanChange.select(PlanChange, Order, Customer)
        .join(Order)
        .join(Customer)
        .where(Order.seller == seller, PlanChange.status == PlanChange.PENDING)
        .order_by(PlanChange.expires_at, PlanChange.id)
    )


def first_due_at(change: PlanChange) -> dt.datetime | None:
    """The due date of the first installment the new amount would apply to, were it confirmed now."""
    first = (
        change.order.installments.where(Installment.status == Installment.SCHEDULED)
        .order_by(Installment.number)
        .get_or_none()
    )
    return first.due_at if first else None


def check_change_open(change: PlanChange, now: dt.datetime) -> None:
    """R4: ChangeNotOpen unless the change is pending and within its 240 hours (a late one counts as expired
    even before the tick records it), Refused if its order closed meanwhile. Reads only: pages ask it on GET."""
    if change.status != PlanChange.PENDING:
        raise ChangeNotOpen(change)
    if now >= change.expires_at:
        raise ChangeNotOpen(change, PlanChange.EXPIRED)
    if change.order.status not in CHANGEABLE:
        raise Refused("This order can no longer change: the seller has closed it.", "closed")


def _open_change(change_id: int, now: dt.datetime) -> PlanChange:
    change = PlanChange.get_by_id(change_id)
    if change.status == PlanChange.PENDING and now >= change.expires_at:
        expire_plan_change(change, now)
        change = PlanChange.get_by_id(change_id)
    check_change_open(change, now)
    return change


def _decide(change_id: int, status: str, now: dt.datetime) -> PlanChange:
    """Close a pending change as `status`, once: the first of two clicks decides, the second is refused."""
    # Its order held first, as a proposal holds it before superseding the pending change: a confirmation holding the
    # change while it waited for the order would deadlock with a proposal made at that moment.
    lock(Order, PlanChange.get_by_id(change_id).order_id)
    change = _open_change(change_id, now)
    decided = (
        PlanChange.update(status=status, decided_at=now)
        .where(PlanChange.id == change.id, PlanChange.status == PlanChange.PENDING)
        .execute()
    )
    if not decided:
        raise ChangeNotOpen(PlanChange.get_by_id(change_id))
    return PlanChange.get_by_id(change_id)


def confirm_plan_change(change_id: int, now: dt.datetime) -> PlanChange:
    """R4: within 240 hours, the new amount applies to every installment not yet charged."""
    with transaction():
        # A batch paying the open installment meanwhile read the old amount, and a subscription's success adds the
        # next installment at it: the confirmation waits for the batch, and then changes that installment too.
        hold_unpaid_installments(PlanChange.get_by_id(change_id).order_id)
        change = _decide(change_id, PlanChange.CONFIRMED, now)
        Order.update(amount=change.new_amount).where(Order.id == change.order_id).execute()
        Installment.update(amount=change.new_amount).where(
            Installment.order == change.order_id, Installment.status == Installment.SCHEDULED
        ).execute()
        notifications.plan_change_decided(change, now, first_due_at(change))
    return change


def decline_plan_change(change_id: int, now: dt.datetime) -> PlanChange:
    """R4: the customer says no; the plan stays as it was and the seller is told."""
    with transaction():
        change = _decide(change_id, PlanChange.DECLINED, now)
        notifications.plan_change_decided(change, now)
    return change


def expire_plan_change(change: PlanChange, now: dt.datetime) -> None:
    expired = (
        PlanChange.update(status=PlanChange.EXPIRED, decided_at=change.expires_at)
        .where(PlanChange.id == change.id, PlanChange.status == PlanChange.PENDING)
        .execute()
    )
    if expired:
        notifications.plan_change_decided(PlanChange.get_by_id(change.id), now)


def remind_unanswered_changes(now: dt.datetime) -> int:
    """R15: each change pending REMINDER_AFTER its proposal, and not expired, reminds its customer once."""
    due = PlanChange.select().where(
        PlanChange.status == PlanChange.PENDING,
        PlanChange.reminded_at.is_null(),
        PlanChange.proposed_at <= now - REMINDER_AFTER,
        PlanChange.expires_at > now,
    )
    count = 0
    for change in due:
        with transaction():
            # Once, whichever tick gets here first; an answer or a newer change since the read wins.
            unanswered = (PlanChange.status == PlanChange.PENDING) & PlanChange.reminded_at.is_null()
            reminded = PlanChange.update(reminded_at=now).where(PlanChange.id == change.id, unanswered).execute()
            if reminded:
                notifications.customer_plan_change_reminder(change, first_due_at(change), now)
                count += 1
    return count


def expire_plan_changes(now: dt.datetime) -> int:
    """R4: pending changes past their 240 hours expire; the plan is unchanged and the seller is told."""
    due = PlanChange.select().where(PlanChange.status == PlanChange.PENDING, PlanChange.expires_at <= now)
    count = 0
    for change in due:
        with transaction():
            expire_plan_change(change, now)
        count += 1
    return count
