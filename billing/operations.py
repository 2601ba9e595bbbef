"""What an operator watches, read from the database as it stands: what waits to be done, and the revenue at risk.

Each reader is one query on an indexed column, so that a monitoring system may ask every few seconds.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peewee import ModelSelect, fn

from billing.charging import RESEND_AFTER
from models import ChargeAttempt, CollectionCase, GatewayEvent, Installment, Order, Outbox, Seller


@dataclass(frozen=True)
class Backlog:
    """Rows waiting for the same work: how many, and since when the oldest waits (None when none waits)."""

    count: int = 0
    oldest: dt.datetime | None = None

    def age(self, now: dt.datetime) -> float:
        """Seconds the oldest has waited by `now`; 0 when none waits."""
        return max((now - self.oldest).total_seconds(), 0.0) if self.oldest else 0.0


def gateway_events_waiting() -> dict[str, Backlog]:
    """Stored events not applied, by status: `received` waits for the event job, `failed` for its next try or for
    an operator (tries used up), each since it was received."""
    rows: Iterable[Any] = (  # named tuples, which types-peewee cannot tell from the model's rows
        GatewayEvent.select(
            GatewayEvent.status,
            fn.COUNT(GatewayEvent.id).alias("count"),
            fn.MIN(GatewayEvent.received_at).alias("oldest"),
        )
        .where(GatewayEvent.status.in_((GatewayEvent.RECEIVED, GatewayEvent.FAILED)))
        .group_by(GatewayEvent.status)
        .namedtuples()
    )
    return {GatewayEvent.RECEIVED: Backlog(), GatewayEvent.FAILED: Backlog()} | {
        row.status: Backlog(row.count, row.oldest) for row in rows
    }


def attempts_past_resend(now: dt.datetime) -> int:
    """Charges sent and still unanswered after RESEND_AFTER: the tick sends them again, so a count that lasts says
    the gateway or its webhooks do not answer."""
    return (
        ChargeAttempt.select()
        .where(ChargeAttempt.status == ChargeAttempt.IN_FLIGHT, ChargeAttempt.requested_at <= now - RESEND_AFTER)
        .count()
    )


def outbox_backlog() -> dict[str, Backlog]:
    """Emails and Slack messages not sent yet, by channel, each since it was written."""
    rows: Iterable[Any] = (  # named tuples, as above
        Outbox.select(Outbox.channel, fn.COUNT(Outbox.id).alias("count"), fn.MIN(Outbox.created_at).alias("oldest"))
        .where(Outbox.sent_at.is_null())
        .group_by(Outbox.channel)
        .namedtuples()
    )
    return {Outbox.EMAIL: Backlog(), Outbox.SLACK: Backlog()} | {
        row.channel: Backlog(row.count, row.oldest) for row in rows
    }


def handoffs_waiting() -> Backlog:
    """Hand-offs the collection partner has not accepted yet, each since the seller handed the order off."""
    # A delivered hand-off has no next delivery: the indexed column alone finds those still waiting.
    count, oldest = (
        CollectionCase.select(fn.COUNT(CollectionCase.id), fn.MIN(CollectionCase.handed_off_at))
        .where(CollectionCase.next_delivery_at.is_null(False), CollectionCase.delivered_at.is_null())
        .scalar(as_tuple=True)
    )
    return Backlog(count, oldest)


def handoffs_refused() -> "ModelSelect[CollectionCase]":
    """Hand-offs the collection partner refused or could not be reached for, not delivered yet, the next one due
    first (its last_delivery_error says why)."""
    return (
        CollectionCase.select()
        .where(CollectionCase.delivered_at.is_null(), CollectionCase.delivery_attempts > 0)
        .order_by(CollectionCase.next_delivery_at)
    )


def revenue_at_risk(now: dt.datetime, seller: Seller | None = None) -> dict[str, Decimal]:
    """R17's revenue at risk, by currency: the open debt (due by `now` and unpaid) of orders in dunning or
    interrupted, i.e. active or interrupted orders whose open installment has a failed attempt; of one seller's
    orders, or of all."""
    open_installment = Installment.alias()
    in_dunning = (
        open_installment.select(open_installment.order)
        .join(ChargeAttempt, on=ChargeAttempt.installment == open_installment.id)
        .where(open_installment.status == Installment.OPEN, ChargeAttempt.status == ChargeAttempt.FAILED)
    )
    debts = (
        # Coerced: peewee would leave a SUM as the database gives it, in the cents the amounts are stored in.
        Installment.select(Order.currency, fn.SUM(Installment.amount).coerce(True).alias("amount"))
        .join(Order)
        .where(
            Installment.order.in_(in_dunning),
            Installment.status.in_((Installment.SCHEDULED, Installment.OPEN)),
            Installment.due_at <= now,
            Order.status.in_((Order.ACTIVE, Order.INTERRUPTED)),
        )
        .group_by(Order.currency)
    )
    if seller is not None:
        debts = debts.where(Order.seller == seller)
    rows: Iterable[Any] = debts.namedtuples()  # named tuples, as above
    return {row.currency: row.amount for row in rows}
