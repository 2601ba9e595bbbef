"""R14 before a payment fails: the notice of a card that expires before the next installment, and a product's
reminder some days before each installment.

The tick reads both from the installments soon due (no schedule of their own), and each is an outbox message
whose key makes it once: once per card, once per installment."""

import datetime as dt

from peewee import ColumnBase, ModelSelect, Value

from billing import notifications
from models import Installment, Order, Product

EXPIRY_NOTICE = dt.timedelta(days=7)
# A product's reminder comes at most this many days ahead: a monthly plan's installments are a month apart.
REMINDER_DAYS_MAX = 28


def card_expires_at(year: int, month: int) -> dt.datetime:
    """A card is good through its expiry month: it expires at the first instant of the next one."""
    return dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)


def _card(order_id: int, token: str) -> str:
    return f"card-{order_id}-{token}"


def _card_column() -> ColumnBase:
    """_card, as the database computes it for each order it reads."""
    return Value("card-").concat(Order.id).concat("-").concat(Order.card_token)


def _soon_due(now: dt.datetime, within: dt.timedelta) -> "ModelSelect[Installment]":
    return (
        Installment.select(Installment, Order)
        .join(Order)
        .where(
            Installment.status == Installment.SCHEDULED,
            Installment.due_at > now,
            Installment.due_at <= now + within,
            Order.status == Order.ACTIVE,
        )
        .order_by(Installment.due_at, Installment.id)
    )


def warn_expiring_cards(now: dt.datetime) -> int:
    """R14: a card that expires before an installment due within EXPIRY_NOTICE: its customer gets the card link,
    once per card, naming the first installment it cannot pay. Returns how many were told."""
    latest = now + EXPIRY_NOTICE
    # No card valid through the month of the latest due date read can expire before one: the database skips them.
    months = Order.card_exp_year * 12 + Order.card_exp_month
    soon = _soon_due(now, EXPIRY_NOTICE).where(
        Order.method == "card",
        months < latest.year * 12 + latest.month,
        ~notifications.queued(notifications.CARD_EXPIRING, _card_column()),
    )
    told: set[int] = set()
    for installment in soon:
        order = installment.order
        year, month, token = order.card_exp_year, order.card_exp_month, order.card_token
        assert year and month and token, "the query reads cards with a token and an expiry"
        if order.id in told or installment.due_at < card_expires_at(year, month):
            continue
        notifications.customer_card_expiring(installment, _card(order.id, token), now)
        told.add(order.id)
    return len(told)


def remind_due_installments(now: dt.datetime) -> int:
    """R14: each installment of a product with reminder_days is announced to its customer that many days before
    it is due (at once, when it was due sooner than that already). Returns how many were announced."""
    count = 0
    reminding = Product.select(Product.reminder_days).where(Product.reminder_days.is_null(False)).distinct()
    for days in sorted(product.reminder_days for product in reminding if product.reminder_days is not None):
        due = _soon_due(now, dt.timedelta(days=days)).where(
            Order.product.in_(Product.select(Product.id).where(Product.reminder_days == days)),
            ~notifications.queued(notifications.INSTALLMENT_REMINDER, Value("installment-").concat(Installment.id)),
        )
        for installment in due:
            notifications.customer_installment_reminder(installment, now)
            count += 1
    return count
