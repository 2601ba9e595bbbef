"""R17 the seller digest: what a seller's plans stand at, from one function, for the morning Slack message and
the App Home tab alike; and when each opted-in seller's next digest is due: 09:00 in the seller's time zone, a
row the tick reads."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from peewee import ModelSelect, fn

from billing import notifications
from billing.operations import revenue_at_risk
from models import ChargeAttempt, CollectionCase, Installment, Order, PlanChange, Seller, transaction

DIGEST_AT = dt.time(9, 0)
RECOVERED_OVER = dt.timedelta(days=7)
RECOVERY_RATE_OVER = dt.timedelta(days=30)


@dataclass(frozen=True)
class Figures:
    at_risk: dict[str, Decimal]  # by currency: the open debt of orders in dunning or interrupted
    recovered: dict[str, Decimal]  # by currency: installments paid over RECOVERED_OVER after a failed attempt
    failed: int  # installments whose first failure was in the last RECOVERY_RATE_OVER
    failed_then_paid: int  # of those, the ones paid since
    pending_changes: int
    open_collections: int  # listed, not handed off

    def facts(self) -> dict[str, object]:
        """As a message keeps them (JSON): amounts as strings, the rate as the counts it comes from."""
        return {
            "at_risk": {currency: str(amount) for currency, amount in sorted(self.at_risk.items())},
            "recovered": {currency: str(amount) for currency, amount in sorted(self.recovered.items())},
            "failed": self.failed,
            "failed_then_paid": self.failed_then_paid,
            "pending_changes": self.pending_changes,
            "open_collections": self.open_collections,
        }


def _failed_installments(seller: Seller) -> "ModelSelect[Installment]":
    """The seller's installments with a failed attempt, and when their first failure was."""
    return (
        Installment.select(
            Installment.id,
            Installment.status,
            Installment.amount,
            Installment.paid_at,
            Order.currency,
            fn.MIN(ChargeAttempt.settled_at).alias("first_failure"),
        )
        .join(Order)
        .join_from(Installment, ChargeAttempt, on=ChargeAttempt.installment == Installment.id)
        .where(Order.seller == seller, ChargeAttempt.status == ChargeAttempt.FAILED)
        .group_by(Installment.id, Order.currency)
    )


def seller_figures(seller: Seller, now: dt.datetime) -> Figures:
    """R17's figures for `seller` at `now`."""
    failed: list[Any] = list(_failed_installments(seller).namedtuples())  # named tuples, not the model's rows
    recovered: dict[str, Decimal] = {}
    for row in failed:
        if row.status == Installment.PAID and row.paid_at and now - RECOVERED_OVER < row.paid_at <= now:
            recovered[row.currency] = recovered.get(row.currency, Decimal(0)) + row.amount
    # Read as the database stores them (peewee leaves an aggregate's type to the driver): UTC.
    this_month = [r for r in failed if now - RECOVERY_RATE_OVER < _utc(r.first_failure) <= now]
    return Figures(
        at_risk=revenue_at_risk(now, seller),
        recovered=recovered,
        failed=len(this_month),
        failed_then_paid=sum(1 for r in this_month if r.status == Installment.PAID),
        pending_changes=PlanChange.select()
        .join(Order)
        .where(Order.seller == seller, PlanChange.status == PlanChange.PENDING)
        .count(),
        open_collections=CollectionCase.select()
        .join(Order)
        .where(Order.seller == seller, CollectionCase.handed_off_at.is_null())
        .count(),
    )


def orders_needing_seller(seller: Seller) -> "ModelSelect[Order]":
    """What only the seller can move: plans interrupted (renew them, R7) and debts in collections (hand them off,
    R9), the oldest first."""
    return (
        Order.select()
        .where(Order.seller == seller, Order.status.in_((Order.INTERRUPTED, Order.COLLECTIONS)))
        .order_by(Order.id)
    )


def _utc(value: dt.datetime | str) -> dt.datetime:
    at = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def next_digest_at(timezone: str, after: dt.datetime) -> dt.datetime:
    """The first DIGEST_AT in `timezone` strictly after `after` (09:00 exists on every day, DST or not)."""
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone)
    at = dt.datetime.combine(local.date(), DIGEST_AT, tzinfo=zone)
    if at <= local:
        at = dt.datetime.combine(local.date() + dt.timedelta(days=1), DIGEST_AT, tzinfo=zone)
    return at.astimezone(dt.UTC)


def digest_due_at(seller: Seller, now: dt.datetime) -> dt.datetime | None:
    """When the seller's next digest is due, from `now`: None unless opted in."""
    return next_digest_at(seller.timezone, now) if seller.digest else None


def send_due_digests(now: dt.datetime) -> int:
    """R17: each opted-in seller whose 09:00 has come gets one digest, however late the tick runs; the next is
    due the following 09:00. Returns how many were written."""
    count = 0
    for seller in Seller.select().where(Seller.digest_due_at <= now):
        with transaction():
            # Once, whichever tick gets here first.
            moved = (
                Seller.update(digest_due_at=next_digest_at(seller.timezone, now))
                .where(Seller.id == seller.id, Seller.digest_due_at == seller.digest_due_at)
                .execute()
            )
            if moved:
                notifications.seller_digest(seller, seller_figures(seller, now).facts(), now)
                count += 1
    return count
