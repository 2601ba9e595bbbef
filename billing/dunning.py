"""R5 smooth retries, R6 the interruption after the third failure, R7 the seller's final renewal."""

import datetime as dt

from peewee import IntegrityError

from billing import collections, notifications
from billing.errors import Refused
from billing.followups import CHARGE, FollowUp, follow_up
from billing.plans import add_attempt, locked, open_installment
from billing.retries import AUTOMATIC_ATTEMPTS, RETRY_INTERVAL, hard_decline
from models import ChargeAttempt, Installment, Order, hold, transaction

RENEWAL_NUMBER = AUTOMATIC_ATTEMPTS + 1
# R16: the one SEPA failure worth a second debit; others (a closed account, a refused mandate) will not heal.
SEPA_RETRIED_FAILURE = "insufficient_funds"
SEPA_NOT_RETRIED = "SEPA debit failed: SEPA debits are never retried"


def payment_failed(attempt: ChargeAttempt, attempts: list[ChargeAttempt], now: dt.datetime) -> str:
    """Route a failed charge: SEPA to collections, a card to its next retry, the plan's interruption or
    collections. A failed customer-initiated charge changes nothing: the automatic schedule stands. `attempts`
    are its installment's, `attempt` among them."""
    installment = attempt.installment
    order = installment.order
    notifications.seller_event(order, "payment.failed", attempt_data(attempt), f"attempt-{attempt.id}", now)
    # R10 before R8: a customer who just switched to SEPA on the card page is not sent to collections.
    if attempt.kind == ChargeAttempt.CUSTOMER:
        next_automatic = next((a for a in _automatic(attempts) if a.status == ChargeAttempt.SCHEDULED), None)
        notifications.seller_customer_charge_failed(attempt, next_automatic.due_at if next_automatic else None, now)
        return "customer-initiated charge failed: schedule unchanged"
    if order.method == "sepa":
        if sepa_retry_allowed(attempt, order):
            retry = schedule_retry(attempt, attempts)
            notifications.customer_sepa_debit_retried(attempt, retry.due_at, now)
            return f"SEPA failure ({attempt.failure_code}): its one retry due {retry.due_at.isoformat()}"
        reason = "SEPA debit failed, and its one retry too" if attempt.number > 1 else SEPA_NOT_RETRIED
        collections.list_in_collections(order, reason, now)
        notifications.seller_payment_failed_finally(installment, "seller_sepa_failed", now)
        return "SEPA failure: listed in collections"
    if attempt.kind == ChargeAttempt.RENEWAL:
        collections.list_in_collections(order, "the fourth and final attempt failed", now)
        notifications.seller_payment_failed_finally(installment, "seller_renewal_failed", now)
        return "final attempt failed: listed in collections"
    if hard_decline(attempt.failure_code, attempt.advice_code):
        # No retry can succeed: the customer must give another card, and the seller hears at once.
        interrupt_plan(order, now)
        notifications.customer_payment_failed(attempt, None, now)
        notifications.seller_payment_failed_finally(installment, "seller_hard_decline", now)
        return f"hard decline ({attempt.failure_code}): plan interrupted"
    if attempt.number < AUTOMATIC_ATTEMPTS:
        retry = schedule_retry(attempt, attempts)
        notifications.customer_payment_failed(attempt, retry.due_at, now)
        return f"attempt {attempt.number} failed: attempt {retry.number} due {retry.due_at.isoformat()}"
    interrupt_plan(order, now)
    notifications.customer_payment_failed(attempt, None, now)
    notifications.seller_payment_failed_finally(installment, "seller_third_failure", now)
    return "third attempt failed: plan interrupted"


def sepa_retry_allowed(failed: ChargeAttempt, order: Order) -> bool:
    """R16: a product that opted in retries the first failed SEPA debit of an installment once, and only when
    the account lacked the funds; every other SEPA failure, and the retry's, goes to collections (R8)."""
    return (
        order.product.sepa_retry
        and failed.kind == ChargeAttempt.AUTOMATIC
        and failed.number == 1
        and failed.failure_code == SEPA_RETRIED_FAILURE
    )


def schedule_retry(failed: ChargeAttempt, attempts: list[ChargeAttempt]) -> ChargeAttempt:
    """R5: attempt n+1 is due 7·n days after the first attempt failed (T+7 d, T+14 d), never chained. `attempts`
    are the installment's, `failed` among them."""
    automatic = {attempt.number: attempt for attempt in _automatic(attempts)}
    first = automatic[1]
    number = failed.number + 1
    assert first.settled_at is not None, "a failed attempt is settled"
    due = first.settled_at + RETRY_INTERVAL * failed.number
    return automatic.get(number) or add_attempt(failed.installment, ChargeAttempt.AUTOMATIC, number, due)


def _automatic(attempts: list[ChargeAttempt]) -> list[ChargeAttempt]:
    return [attempt for attempt in attempts if attempt.kind == ChargeAttempt.AUTOMATIC]


def interrupt_plan(order: Order, now: dt.datetime) -> None:
    """R6: no later installment is charged until the seller renews."""
    if Order.update(status=Order.INTERRUPTED).where(Order.id == order.id, Order.status == Order.ACTIVE).execute():
        notifications.seller_event(order, "plan.interrupted", {}, f"interrupted-{order.id}-{now.isoformat()}", now)


def attempt_data(attempt: ChargeAttempt) -> dict[str, object]:
    """What the seller's systems read of a settled attempt (payment.failed, payment.recovered)."""
    return {
        "installment": attempt.installment.number,
        **charge_data(attempt),
        "amount": str(attempt.amount),
        "currency": attempt.installment.order.currency,
        "failure_code": attempt.failure_code,
    }


def charge_data(attempt: ChargeAttempt) -> dict[str, object]:
    """Which charge an attempt is, as the seller's systems name it: numbers count each kind apart, and the reference
    is the gateway's own name for it, as the seller's books there show it (None: not reported)."""
    return {"attempt": attempt.number, "kind": attempt.kind, "reference": attempt.reference}


def renewal_refusal(order: Order) -> Refused | None:
    """R7: why the seller cannot renew `order` now, or None when the fourth and final attempt may be made."""
    if order.method != "card":
        return Refused(f"Order {order.id} is paid by SEPA: a failed SEPA debit is never retried.", "sepa")
    installment = open_installment(order)
    if installment and installment.attempts.where(ChargeAttempt.kind == ChargeAttempt.RENEWAL).exists():
        return _already_renewed(order)
    if order.status in (Order.COLLECTIONS, Order.HANDED_OFF):
        return Refused(f"Order {order.id} is in collections: it can no longer be renewed.", "in_collections")
    failures = (
        list(
            installment.attempts.where(
                ChargeAttempt.kind == ChargeAttempt.AUTOMATIC, ChargeAttempt.status == ChargeAttempt.FAILED
            )
        )
        if installment
        else []
    )
    # Automatic attempts charge the card on file, which a customer's failed new card never replaced (R10).
    hard = next((a for a in failures if hard_decline(a.failure_code, a.advice_code)), None)
    if hard:
        return Refused(
            f"Order {order.id}: the bank refused the card on file for good ({hard.failure_code or hard.advice_code}), "
            "so a renewal on it cannot succeed. The customer was asked for another card.",
            "hard_decline",
        )
    failed = len(failures)
    if order.status != Order.INTERRUPTED or failed < AUTOMATIC_ATTEMPTS:
        return Refused(
            f"Order {order.id} has had {failed} of {AUTOMATIC_ATTEMPTS} automatic attempts: "
            "renewing is possible only after the third one failed.",
            "too_early",
        )
    return None


def can_renew(order: Order) -> bool:
    return renewal_refusal(order) is None


def _already_renewed(order: Order) -> Refused:
    return Refused(f"Order {order.id} was already renewed once: the fourth attempt is the last.", "already_renewed")


def renew_plan(order: Order, now: dt.datetime) -> ChargeAttempt:
    """R7: the fourth and final attempt, due at once. Every refusal says why."""
    try:
        with transaction():
            # The installment before the order, in the order an outcome takes them: a renewal asked while a late
            # success of that installment is applied waits for it and reads the plan resumed, instead of holding the
            # order the success must resume, and deadlocking with it.
            hold(
                Installment.select(Installment.id).where(
                    Installment.order == order.id, Installment.status == Installment.OPEN
                )
            )
            order = locked(order)
            refusal = renewal_refusal(order)
            if refusal:
                raise refusal
            installment = open_installment(order)
            assert installment is not None, "renewal_refusal lets no order without an open installment through"
            renewal = add_attempt(installment, ChargeAttempt.RENEWAL, RENEWAL_NUMBER, now)
            follow_up(FollowUp(CHARGE, renewal.id, now))
            return renewal
    except IntegrityError:
        raise _already_renewed(order) from None
