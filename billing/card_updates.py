"""R10 the customer's card update: a new payment method, then the outstanding installment charged at once.

The customer's charge is numbered on its own (kind "customer"): it is not one of the three automatic
attempts, so when it fails the automatic schedule stands (billing.dunning.payment_failed leaves it).
"""

import datetime as dt

from peewee import IntegrityError, fn

from billing.errors import Refused
from billing.followups import CHARGE, FollowUp, follow_up
from billing.plans import METHOD_COLUMNS, PaymentMethod, add_attempt
from models import ChargeAttempt, Installment, Order, hold, transaction

# The order states a customer's charge goes through in (billing.charging cancels it in any other). Listed in
# collections is one: until the seller hands the order off, the customer may still pay (R10).
PAYABLE = (Order.ACTIVE, Order.INTERRUPTED, Order.COLLECTIONS)


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
    """R10: a customer charge of the open installment with the new method, due now, sent once this commits.
    The method stays on the charge: it goes on file only if the charge succeeds
    (adopt_payment_method), so a declined card never reaches the automatic retries."""
    try:
        with transaction():
            order = Order.get_by_id(order.id)
            named = (Installment.order == order) & (Installment.number == installment_number)
            # Held before it is read, as an outcome holds it: a success being applied meanwhile (a decline that went
            # through after all) is waited for and read, instead of a second charge scheduled on a paid installment.
            hold(Installment.select(Installment.id).where(named))
            installment = Installment.get(named)
            check_card_update(order, installment, now)
            previous = (
                installment.attempts.select(fn.MAX(ChargeAttempt.number))
                .where(ChargeAttempt.kind == ChargeAttempt.CUSTOMER)
                .scalar()
            )
            attempt = add_attempt(installment, ChargeAttempt.CUSTOMER, (previous or 0) + 1, now, payment_method)
            follow_up(FollowUp(CHARGE, attempt.id, now))
            return attempt
    except IntegrityError:
        # Two submissions at once: the unique (installment, kind, number) let only the first through.
        raise Refused(f"A charge of installment {installment_number} is being processed.", "pending") from None


def adopt_payment_method(attempt: ChargeAttempt) -> None:
    """R10: the method a customer's charge just succeeded with becomes the order's method on file."""
    if attempt.method is None:
        return
    order = attempt.installment.order
    method = {name: getattr(attempt, name) for name in METHOD_COLUMNS}
    Order.update(**method).where(Order.id == order.id).execute()
    for name, value in method.items():
        setattr(order, name, value)  # the messages about this payment read the order loaded with it
