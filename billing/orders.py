"""How a seller names an order, and the order as the seller sees it: the API's order and the bot's /order card
are both drawn from `order_view`."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from billing.collections import Debt, case_debt
from billing.errors import OrderNotFound
from billing.plan_changes import pending_change
from billing.plans import SUBSCRIPTION, coming_due_dates
from billing.values import identifier
from models import ChargeAttempt, CollectionCase, Installment, Order, PlanChange, Seller

COMING_INSTALLMENTS = 3


def find_order(seller: Seller, ref: str | int, *, by_invoice_number: bool = False) -> Order:
    """The seller's order numbered `ref` (`12`, `#12`), or, `by_invoice_number`, the one with that invoice number.

    Another seller's order is as unknown as a missing one: its existence is not ours to reveal."""
    text = str(ref).strip()
    number = identifier(text.removeprefix("#"))
    if number is not None:
        order = Order.get_or_none(Order.id == number, Order.seller == seller)
    elif by_invoice_number:
        order = Order.get_or_none(Order.seller == seller, Order.invoice_number == text)
    else:
        order = None
    if order is None:
        raise OrderNotFound(f"There is no order {text}.")
    return order


@dataclass(frozen=True)
class NextAttempt:
    installment: int
    number: int
    kind: str
    due_at: dt.datetime


@dataclass(frozen=True)
class ScheduledInstallment:
    row: Installment
    attempts: list[ChargeAttempt]  # oldest first


@dataclass(frozen=True)
class CollectionState:
    case: CollectionCase
    debt: Debt  # recorded at the hand-off, else open now


@dataclass(frozen=True)
class OrderView:
    """The whole order at `now`: its schedule with every attempt, what comes next, and where its debt stands."""

    order: Order
    installments: list[ScheduledInstallment]
    next_attempt: NextAttempt | None
    pending_change: PlanChange | None
    collection: CollectionState | None
    # A subscription's next due dates past the installments it has, as (number, due_at); None for a fixed plan.
    coming_installments: list[tuple[int, dt.datetime]] | None


def order_view(order: Order, now: dt.datetime) -> OrderView:
    installments = list(order.installments.order_by(Installment.number))
    attempts: dict[int, list[ChargeAttempt]] = defaultdict(list)
    query = (
        ChargeAttempt.select()
        .join(Installment)
        .where(Installment.order == order)
        .order_by(ChargeAttempt.due_at, ChargeAttempt.id)
    )
    for attempt in query:
        attempts[attempt.installment_id].append(attempt)
    case = CollectionCase.get_or_none(CollectionCase.order == order)
    return OrderView(
        order=order,
        installments=[ScheduledInstallment(i, attempts[i.id]) for i in installments],
        next_attempt=_next_attempt(order, installments, attempts),
        pending_change=pending_change(order),
        collection=CollectionState(case, case_debt(case, now)) if case else None,
        coming_installments=_coming_installments(order, installments),
    )


def _next_attempt(
    order: Order, installments: list[Installment], attempts: dict[int, list[ChargeAttempt]]
) -> NextAttempt | None:
    """The earliest scheduled attempt; while nothing is being charged, an active plan's next installment."""
    scheduled = [
        NextAttempt(i.number, a.number, a.kind, a.due_at)
        for i in installments
        for a in attempts[i.id]
        if a.status == ChargeAttempt.SCHEDULED
    ]
    if not scheduled and order.status == Order.ACTIVE and all(i.status != Installment.OPEN for i in installments):
        # Its first attempt is written only when the installment falls due (R2), but it is known now.
        scheduled = [
            NextAttempt(i.number, 1, ChargeAttempt.AUTOMATIC, i.due_at)
            for i in installments
            if i.status == Installment.SCHEDULED
        ]
    return min(scheduled, key=lambda a: (a.due_at, a.installment, a.number), default=None)


def _coming_installments(order: Order, installments: list[Installment]) -> list[tuple[int, dt.datetime]] | None:
    if order.plan != SUBSCRIPTION:
        return None
    if order.status != Order.ACTIVE:
        return []
    last = installments[-1].number if installments else 0
    dates = coming_due_dates(order, last, COMING_INSTALLMENTS)
    return list(enumerate(dates, start=last + 1))
