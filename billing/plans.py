"""R1 plans and R2 billing: due dates, orders, and which installment is charged when."""

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from peewee import ColumnBase, IntegrityError, ModelSelect, Value, fn

from billing import notifications
from billing.errors import InvalidInput
from models import (
    ChargeAttempt,
    Customer,
    Installment,
    Order,
    Product,
    Seller,
    hold,
    lock,
    skipping_locked,
    transaction,
    update_row,
)

INSTALLMENTS = "installments"
SUBSCRIPTION = "subscription"
PLANS = (INSTALLMENTS, SUBSCRIPTION)
INTERVALS = ("weekly", "monthly")
METHODS = ("card", "sepa")
# Ten years of monthly installments: an order makes all its rows at once, so the count needs a ceiling.
MAX_INSTALLMENTS = 120
# An order keyed in a little late still starts today; a first due date further back would charge a backlog of
# installments at once, which no customer agreed to.
FIRST_DUE_AT_MOST_BACK = dt.timedelta(hours=24)


def due_date(anchor_at: dt.datetime, interval: str, number: int, timezone: str) -> dt.datetime:
    """The due time of installment `number` (1-based), counted from the anchor, never chained.

    Monthly plans keep the anchor's day of month in the seller's time zone, clamped to short months
    (31 Jan → 28/29 Feb → 31 Mar); weekly plans add whole weeks of local time.
    """
    local = anchor_at.astimezone(ZoneInfo(timezone))
    if interval == "weekly":
        naive = local.replace(tzinfo=None) + dt.timedelta(weeks=number - 1)
    else:
        months = local.month - 1 + number - 1
        year, month = local.year + months // 12, months % 12 + 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        naive = local.replace(tzinfo=None, year=year, month=month, day=day)
    return naive.replace(tzinfo=ZoneInfo(timezone)).astimezone(dt.UTC)


def card_expired(exp_month: int, exp_year: int, today: dt.date) -> bool:
    """Whether a card is past its expiry month: a card is valid through the last day of the month it shows."""
    return (exp_year, exp_month) < (today.year, today.month)


@dataclass(frozen=True)
class PaymentMethod:
    """What the gateway gave us for the customer's card or mandate: never a card number."""

    method: str
    token: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    iban_masked: str | None = None

    def columns(self) -> dict[str, str | int | None]:
        """The method as an order keeps it on file, and a customer's charge while it is tried (METHOD_COLUMNS)."""
        card = self.method == "card"
        return {
            "method": self.method,
            "card_token": self.token if card else None,
            "card_brand": self.brand,
            "card_last4": self.last4,
            "card_exp_month": self.exp_month,
            "card_exp_year": self.exp_year,
            "sepa_mandate": None if card else self.token,
            "iban_masked": self.iban_masked,
        }


# The columns Order and ChargeAttempt both keep a payment method in.
METHOD_COLUMNS = tuple(PaymentMethod("card", "").columns())


def create_order(
    seller: Seller,
    *,
    product: Product,
    customer: Customer,
    invoice_number: str,
    plan: str,
    installment_count: int | None,
    interval: str,
    amount: Decimal,
    currency: str,
    anchor_at: dt.datetime,
    payment: PaymentMethod,
    now: dt.datetime,
) -> Order:
    """A new order and its schedule: every installment of a fixed plan, the first one of a subscription."""
    if plan not in PLANS:
        raise InvalidInput("plan", f"plan must be one of {', '.join(PLANS)}")
    if interval not in INTERVALS:
        raise InvalidInput("interval", f"interval must be one of {', '.join(INTERVALS)}")
    if plan == INSTALLMENTS and (
        not isinstance(installment_count, int) or not 2 <= installment_count <= MAX_INSTALLMENTS
    ):
        raise InvalidInput(
            "installment_count", f"an installment plan needs a whole installment_count from 2 to {MAX_INSTALLMENTS}"
        )
    if plan == SUBSCRIPTION and installment_count is not None:
        raise InvalidInput("installment_count", "a subscription is open-ended: leave installment_count out")
    if anchor_at < now - FIRST_DUE_AT_MOST_BACK:
        raise InvalidInput(
            "first_due_at", f"first_due_at may lie at most {FIRST_DUE_AT_MOST_BACK.total_seconds() / 3600:g} hours back"
        )
    if product.seller_id != seller.id or customer.seller_id != seller.id:
        raise InvalidInput("product", "product and customer must be your own")
    if Order.select().where(Order.seller == seller, Order.invoice_number == invoice_number).exists():
        raise InvalidInput("invoice_number", f"invoice number {invoice_number} is already used")
    try:
        with transaction():
            order = Order.create(
                seller=seller,
                product=product,
                customer=customer,
                invoice_number=invoice_number,
                plan=plan,
                installment_count=installment_count,
                interval=interval,
                amount=amount,
                currency=currency,
                anchor_at=anchor_at,
                **payment.columns(),
                created_at=now,
            )
            for number in range(1, (installment_count or 1) + 1):
                _add_installment(order, number)
    except IntegrityError:
        # Two requests with one invoice number at the same moment: the unique index decides.
        raise InvalidInput("invoice_number", f"invoice number {invoice_number} is already used") from None
    return order


def _add_installment(order: Order, number: int) -> Installment:
    due = due_date(order.anchor_at, order.interval, number, order.seller.timezone)
    return Installment.create(order=order, number=number, due_at=due, amount=order.amount)


def coming_due_dates(order: Order, after_number: int, count: int) -> list[dt.datetime]:
    """The due dates of the next `count` installments after `after_number` (for an open-ended plan)."""
    return [
        due_date(order.anchor_at, order.interval, n, order.seller.timezone)
        for n in range(after_number + 1, after_number + 1 + count)
    ]


def locked(order: Order) -> Order:
    """Inside a transaction: the order as it stands now, held until the transaction ends, so that a rule decides
    on what another writer may just have changed (a renewal and a hand-off clicked at once take turns)."""
    lock(Order, order.id)
    return Order.get_by_id(order.id)


def hold_unpaid_installments(order_id: int) -> None:
    """Inside a transaction, hold the order's installments not yet paid, in id order, before the order: the order in
    which an outcome takes them. A rule that writes them and the order, asked while a batch applies an outcome of
    the open one, then waits for the batch and reads what it committed, instead of deadlocking with it or writing
    beside what the batch read before."""
    hold(
        Installment.select(Installment.id)
        .where(Installment.order == order_id, Installment.status != Installment.PAID)
        .order_by(Installment.id)
    )


def open_installment(order: Order) -> Installment | None:
    """The installment being charged or in dunning: the earliest one not paid."""
    return order.installments.where(Installment.status == Installment.OPEN).order_by(Installment.number).get_or_none()


# Installments opened per transaction: three statements for each batch, not two for each installment.
OPEN_PER_BATCH = 5000


def start_due_installments(now: dt.datetime) -> int:
    """R2: open every due installment whose plan is active and whose earlier installments are all paid; returns how
    many it opened.

    Opening writes its first automatic attempt, due at once. A batch at a time, oldest due first; calling this
    twice, or from two ticks at once, opens nothing twice: each batch holds its rows, which the other skips.
    """
    opened, after = 0, None
    while True:
        with transaction():
            batch = list(skipping_locked(_due_installments(now, after).limit(OPEN_PER_BATCH), of=Installment).tuples())
            ids = [installment_id for installment_id, _due_at in batch]
            if ids:
                Installment.update(status=Installment.OPEN).where(Installment.id.in_(ids)).execute()
                ChargeAttempt.insert_from(
                    Installment.select(
                        Installment.id,
                        Value(ChargeAttempt.AUTOMATIC),
                        Value(1),
                        _attempt_key_column(ChargeAttempt.AUTOMATIC, 1),
                        Installment.due_at,
                        Installment.amount,
                        Value(ChargeAttempt.SCHEDULED),
                    ).where(Installment.id.in_(ids)),
                    [
                        ChargeAttempt.installment,
                        ChargeAttempt.kind,
                        ChargeAttempt.number,
                        ChargeAttempt.idempotency_key,
                        ChargeAttempt.due_at,
                        ChargeAttempt.amount,
                        ChargeAttempt.status,
                    ],
                ).execute()
        opened += len(batch)
        if len(batch) < OPEN_PER_BATCH:
            return opened
        after = batch[-1]


def _due_installments(now: dt.datetime, after: tuple[int, dt.datetime] | None) -> "ModelSelect[Installment]":
    """The ids and due times of the scheduled installments due by `now` of active orders with every earlier
    installment paid, in due order, past `after` (the last of the batch before: each batch reads on from there, not
    over again)."""
    earlier = Installment.alias()
    unpaid_before = earlier.select().where(
        earlier.order == Installment.order,
        earlier.number < Installment.number,
        earlier.status != Installment.PAID,
    )
    due = (
        Installment.select(Installment.id, Installment.due_at)
        .join(Order)
        .where(
            Order.status == Order.ACTIVE,
            Installment.status == Installment.SCHEDULED,
            Installment.due_at <= now,
            ~fn.EXISTS(unpaid_before),
        )
        .order_by(Installment.due_at, Installment.id)
    )
    if after is not None:
        last_id, last_due_at = after
        due = due.where(
            Installment.due_at >= last_due_at,  # said alone too, so that the index's range starts there
            (Installment.due_at > last_due_at) | (Installment.id > last_id),
        )
    return due


def attempt_key(installment: Installment, kind: str, number: int) -> str:
    """The idempotency key the gateway sees for (order, installment, attempt)."""
    return f"tranche-{installment.order_id}-{installment.number}-{kind}-{number}"


def _attempt_key_column(kind: str, number: int) -> ColumnBase:
    """attempt_key, as the database computes it for each installment a statement writes an attempt of."""
    order_and_installment = Value("tranche-").concat(Installment.order).concat("-").concat(Installment.number)
    return order_and_installment.concat(f"-{kind}-{number}")


def add_attempt(
    installment: Installment, kind: str, number: int, due_at: dt.datetime, payment: PaymentMethod | None = None
) -> ChargeAttempt:
    """A charge attempt row, with the idempotency key the gateway sees for (order, installment, attempt).

    Without `payment` it charges the order's method on file when it is sent; with it, that method only."""
    return ChargeAttempt.create(
        installment=installment,
        kind=kind,
        number=number,
        idempotency_key=attempt_key(installment, kind, number),
        due_at=due_at,
        amount=installment.amount,
        **(payment.columns() if payment else {}),
    )


def record_installment_paid(installment: Installment, attempts: list[ChargeAttempt], at: dt.datetime) -> None:
    """R2: the installment is paid, and its `attempts` (every one, read since the installment was held) still
    scheduled are cancelled; a fixed plan completes with its last one, a subscription grows by one."""
    update_row(Installment, installment.id, status=Installment.PAID, paid_at=at)
    scheduled = [attempt.id for attempt in attempts if attempt.status == ChargeAttempt.SCHEDULED]
    if scheduled:
        ChargeAttempt.update(status=ChargeAttempt.CANCELLED).where(ChargeAttempt.id.in_(scheduled)).execute()
    order = installment.order  # as its caller loaded it, or read now
    if order.plan == INSTALLMENTS:
        # Only the last can complete the plan: an installment opens once every earlier one is paid, so before the
        # last a later one is unpaid, which spares a query a payment.
        last = installment.number == order.installment_count
        if last and not order.installments.where(Installment.status != Installment.PAID).exists():
            Order.update(status=Order.COMPLETED).where(Order.id == order.id).execute()
            notifications.seller_event(order, "plan.completed", {}, f"completed-{order.id}", at)
    elif not order.installments.where(Installment.number == installment.number + 1).exists():
        _add_installment(order, installment.number + 1)
