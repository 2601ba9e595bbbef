"""R2 in motion: claiming a due attempt for the gateway, and applying the outcome the gateway reports."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from peewee import ModelSelect

from billing import collections, dunning, notifications
from billing.card_updates import PAYABLE, adopt_payment_method
from billing.followups import APPLY_EVENTS, FollowUp, follow_up
from billing.plans import record_installment_paid
from models import ChargeAttempt, Customer, GatewayEvent, Installment, Order, Product, Seller, lock, transaction

# An attempt sent but never answered is sent again after this long, with the same idempotency key,
# so a worker killed between the database and the gateway loses nothing and charges nothing twice.
RESEND_AFTER = dt.timedelta(minutes=10)

# Which order states each kind of attempt may still charge in.
_CHARGEABLE = {
    ChargeAttempt.AUTOMATIC: (Order.ACTIVE,),
    ChargeAttempt.RENEWAL: (Order.INTERRUPTED,),
    ChargeAttempt.CUSTOMER: PAYABLE,
}


@dataclass(frozen=True)
class ChargeRequest:
    """What a gateway needs for one charge: the payment method on file at this moment."""

    attempt_id: int
    idempotency_key: str
    order_id: int
    installment: int
    amount: Decimal
    currency: str
    method: str
    token: str
    at: dt.datetime
    # The customer at the gateway, when it keeps one (a Stripe Customer holds the payment methods it charges).
    gateway_customer: str | None = None
    # Sent before and never answered: the gateway may have charged it already, so it is looked up before anything
    # new is sent (an idempotency key does not last forever: Stripe forgets it after 24 hours).
    resent: bool = False
    # What the gateway answered the earlier send, when that answer was recorded.
    reference: str | None = None


def store_event(webhook_id: str, event_type: str, body: str, now: dt.datetime) -> bool:
    """Keep a gateway's event once by its webhook id, to be applied after the commit; False for a duplicate."""
    # One statement, committed on its own: a transaction around it would only add BEGIN and COMMIT, two of the
    # webhook's four round trips to PostgreSQL (bench/webhooks.py).
    stored = (
        GatewayEvent.insert(webhook_id=webhook_id, type=event_type, body=body, received_at=now)
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )
    if stored:
        follow_up(FollowUp(APPLY_EVENTS))
    return bool(stored)


def due_attempts(now: dt.datetime) -> "ModelSelect[ChargeAttempt]":
    """Attempts to send now: scheduled ones that are due, and sent ones that never got an answer."""
    return ChargeAttempt.select(ChargeAttempt.id).where(
        ((ChargeAttempt.status == ChargeAttempt.SCHEDULED) & (ChargeAttempt.due_at <= now))
        | ((ChargeAttempt.status == ChargeAttempt.IN_FLIGHT) & (ChargeAttempt.requested_at <= now - RESEND_AFTER))
    )


def claim_attempt(attempt_id: int, now: dt.datetime) -> ChargeRequest | None:
    """Mark a due attempt in flight and say what to charge; None when there is nothing to send.

    Two workers claiming the same attempt get one request between them: the claim is a conditional update.
    """
    attempt = ChargeAttempt.get_or_none(ChargeAttempt.id == attempt_id)
    if attempt is None or attempt.due_at > now:
        return None
    order = attempt.installment.order
    with transaction():
        if attempt.status == ChargeAttempt.SCHEDULED:
            if order.status not in _CHARGEABLE[attempt.kind]:
                ChargeAttempt.update(status=ChargeAttempt.CANCELLED).where(
                    ChargeAttempt.id == attempt.id, ChargeAttempt.status == ChargeAttempt.SCHEDULED
                ).execute()
                return None
            if _another_charge_in_flight(attempt):
                # R2: one charge per installment at a time; the next tick sends this one after the answer.
                return None
            claimed = (
                ChargeAttempt.update(status=ChargeAttempt.IN_FLIGHT, requested_at=now)
                .where(ChargeAttempt.id == attempt.id, ChargeAttempt.status == ChargeAttempt.SCHEDULED)
                .execute()
            )
        else:
            claimed = (
                ChargeAttempt.update(requested_at=now)
                .where(
                    ChargeAttempt.id == attempt.id,
                    ChargeAttempt.status == ChargeAttempt.IN_FLIGHT,
                    ChargeAttempt.requested_at <= now - RESEND_AFTER,
                )
                .execute()
            )
    if not claimed:
        return None
    # A customer's charge carries the method the customer just gave; any other charges the one on file (R5, R10).
    held = attempt if attempt.method else order
    method = held.method
    token = held.card_token if method == "card" else held.sepa_mandate
    assert method and token, f"attempt {attempt.id} has no payment method to charge"
    return ChargeRequest(
        attempt_id=attempt.id,
        idempotency_key=attempt.idempotency_key,
        order_id=order.id,
        installment=attempt.installment.number,
        amount=attempt.amount,
        currency=order.currency,
        method=method,
        token=token,
        at=now,
        gateway_customer=order.customer.gateway_customer_id,
        resent=attempt.status == ChargeAttempt.IN_FLIGHT,
        reference=attempt.reference,
    )


def _another_charge_in_flight(attempt: ChargeAttempt) -> bool:
    """Whether another charge of the attempt's installment awaits its answer.

    Called inside the claim's transaction, which holds the installment: a row lock on PostgreSQL, the
    IMMEDIATE write lock on SQLite. So two workers claiming two attempts of one installment see each other.
    """
    lock(Installment, attempt.installment_id)
    return (
        ChargeAttempt.select()
        .where(
            ChargeAttempt.installment == attempt.installment_id,
            ChargeAttempt.status == ChargeAttempt.IN_FLIGHT,
            ChargeAttempt.id != attempt.id,
        )
        .exists()
    )


def record_reference(attempt_id: int, reference: str) -> None:
    ChargeAttempt.update(reference=reference).where(
        ChargeAttempt.id == attempt_id, ChargeAttempt.reference.is_null()
    ).execute()


@dataclass(frozen=True)
class Outcome:
    """A gateway's report on one charge, whatever gateway sent it."""

    succeeded: bool
    order_id: int
    installment: int
    occurred_at: dt.datetime
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    advice_code: str | None = None
    amount: Decimal | None = None
    currency: str | None = None


class Unmatched(Exception):
    """The report names an order, installment or charge Tranche does not know."""


def _attempt_for(installment: Installment, reference: str | None) -> ChargeAttempt | None:
    attempts = installment.attempts
    if reference:
        by_reference = attempts.where(ChargeAttempt.reference == reference).get_or_none()
        if by_reference:
            return by_reference
    # At most one attempt per installment is ever in flight (R2), so it is the one reported on.
    return attempts.where(ChargeAttempt.status == ChargeAttempt.IN_FLIGHT).get_or_none()


@dataclass(frozen=True)
class Applied:
    """What applying an outcome did: in words, for the event log, and the attempt it settled (None: it changed
    nothing, the outcome was ignored)."""

    note: str
    settled: ChargeAttempt | None = None


def apply_outcome(outcome: Outcome, now: dt.datetime) -> Applied:
    """Apply a charge outcome once, and say what it did.

    A success is final: it settles the installment even after a failure was reported for the same
    charge, and no later failure undoes it. Repeats change nothing.
    """
    with transaction():
        # With its order, customer, product and seller: the rules and their messages read them all (1 query, not 5).
        installment = (
            Installment.select(Installment, Order, Customer, Product, Seller)
            .join(Order)
            .join_from(Order, Customer)
            .join_from(Order, Product)
            .join_from(Order, Seller)
            .where(Installment.order == outcome.order_id, Installment.number == outcome.installment)
            .get_or_none()
        )
        if installment is None:
            raise Unmatched(f"no installment {outcome.installment} of order {outcome.order_id}")
        attempt = _attempt_for(installment, outcome.reference)
        if attempt is None:
            if installment.status == Installment.PAID:
                return Applied("ignored: installment already paid")
            raise Unmatched(f"no charge in flight for installment {outcome.installment} of order {outcome.order_id}")
        charged = (attempt.amount, installment.order.currency)
        if outcome.amount is not None and (outcome.amount, outcome.currency) != charged:
            # Never settle a debt with another sum than the one asked for: an operator looks first.
            raise Unmatched(f"reports {outcome.amount} {outcome.currency} for a charge of {charged[0]} {charged[1]}")
        if attempt.status == ChargeAttempt.SUCCEEDED:
            return Applied("ignored: charge already succeeded")
        if not outcome.succeeded and attempt.status == ChargeAttempt.FAILED:
            return Applied("ignored: failure already recorded")
        if not outcome.succeeded and installment.status == Installment.PAID:
            return Applied("ignored: installment already paid")
        was_failed = attempt.status == ChargeAttempt.FAILED
        attempt.status = ChargeAttempt.SUCCEEDED if outcome.succeeded else ChargeAttempt.FAILED
        attempt.reference = outcome.reference or attempt.reference
        attempt.failure_code = None if outcome.succeeded else outcome.failure_code
        attempt.failure_message = None if outcome.succeeded else outcome.failure_message
        attempt.advice_code = None if outcome.succeeded else outcome.advice_code
        attempt.settled_at = outcome.occurred_at
        settled = ("status", "reference", "failure_code", "failure_message", "advice_code", "settled_at")
        attempt.save(only=[ChargeAttempt._meta.fields[name] for name in settled])
        attempt.installment = installment  # the one loaded above, with its order
        if outcome.succeeded:
            note = _payment_succeeded(attempt, recovered=was_failed or attempt.number > 1, now=now)
        else:
            note = dunning.payment_failed(attempt, now)
        return Applied(note, attempt)


def _payment_succeeded(attempt: ChargeAttempt, recovered: bool, now: dt.datetime) -> str:
    installment = attempt.installment
    assert attempt.settled_at is not None, "a succeeded attempt is settled"
    record_installment_paid(installment, attempt.settled_at)
    adopt_payment_method(attempt)
    collections.leave_collections(installment.order_id)
    Order.update(status=Order.ACTIVE).where(
        Order.id == installment.order_id, Order.status == Order.INTERRUPTED
    ).execute()
    if recovered or attempt.kind != ChargeAttempt.AUTOMATIC:
        notifications.customer_payment_recovered(attempt, now)
        return f"installment {installment.number} paid, recovered"
    return f"installment {installment.number} paid"
