"""R10 the customer's card update: a new payment method, then the outstanding installment charged at once.

The customer's charge is numbered on its own (kind "customer"): it is not one of the three automatic
attempts, so when it fails the automatic schedule stands (billing.dunning.payment_failed leaves it).
"""

import datetime as dt

from peewee import IntegrityError, fn

from billing.errors import Refused
from billing.plans import PaymentMethod, add_attempt
from models import ChargeAttempt, Installment, Order, transaction

# The order states a customer's charge goes through in (billing.charging cancels it in any other).
PAYABLE = (Order.ACTIVE, Order.INTERRUPTED)


def check_card_update(order: Order, installment: Installment, now: dt.datetime) -> None:
    """Refused, with a code the page explains, when the customer may not pay this installment now.

    Reads only: the page asks it before showing a form, and the rule again before acting.
    """
    if installment.status == Installment.PAID:
        raise Refused(f"Installment {installment.number} of order {order.id} is already paid.", "paid")
    if order.status == Order.HANDED_OFF or installment.status == Installment.HANDED_OFF:
        raise Refused(f"Order {order.id} was handed to the collection partner.", "handed_off")
    if order.status not in PAYABLE:
        raise Refused(f"Order {order.id} is {order.status.replace('_', ' ')}: the seller handles it.", "closed")
    if installment.status != Installment.OPEN:
        raise Refused(f"Installment {installment.number} of order {order.id} is not due yet.", "not_due")
    # R2: one charge per installment in flight; an attempt already due is about to be sent.
    busy = installment.attempts.where(
        (ChargeAttempt.status == ChargeAttempt.IN_FLIGHT)
        | ((ChargeAttempt.status == ChargeAttempt.SCHEDULED) & (ChargeAttempt.due_at <= now))
    )
    if busy.exists():
        raise Refused(f"A charge of installment {installment.number} is being processed.", "pending")


def update_card_and_charge(
    order: Order, installment_number: int, payment_method: PaymentMethod, now: dt.datetime
) -> ChargeAttempt:
    """R10: store the customer's new method on the order and add a customer charge of the open installment,
    due now; the caller sends it once this commits. Retries charge the method on file, so they use it too."""
    try:
        with transaction():
            order = Order.get_by_id(order.id)
            installment = Installment.get(Installment.order == order, Installment.number == installment_number)
            check_card_update(order, installment, now)
            card = payment_method.method == "card"
            Order.update(
                method=payment_method.method,
                card_token=payment_method.token if card else None,
                card_brand=payment_method.brand,
                card_last4=payment_method.last4,
                card_exp_month=payment_method.exp_month,
                card_exp_year=payment_method.exp_year,
                sepa_mandate=None if card else payment_method.token,
                iban_masked=payment_method.iban_masked,
            ).where(Order.id == order.id).execute()
            previous = (
                installment.attempts.select(fn.MAX(ChargeAttempt.number))
                .where(ChargeAttempt.kind == ChargeAttempt.CUSTOMER)
                .scalar()
            )
            return add_attempt(installment, ChargeAttempt.CUSTOMER, (previous or 0) + 1, now)
    except IntegrityError:
        # Two submissions at once: the unique (installment, kind, number) let only the first through.
        raise Refused(f"A charge of installment {installment_number} is being processed.", "pending") from None
