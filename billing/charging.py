"""R2 in motion: claiming a due attempt for the gateway, and applying the outcome the gateway reports."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from peewee import Case, Expression, ModelSelect, Tuple, fn

from billing import collections, dunning, notifications
from billing.card_updates import PAYABLE, adopt_payment_method
from billing.followups import APPLY_EVENTS, FollowUp, follow_up
from billing.plans import record_installment_paid
from models import (
    ChargeAttempt,
    Customer,
    GatewayEvent,
    Installment,
    Order,
    Product,
    Seller,
    hold,
    insert_new,
    one_write,
    skipping_locked,
    transaction,
    update_row,
)

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
    # Resent, and no longer to be charged (its installment paid since by another charge, its order closed): the
    # gateway only looks for what the earlier send made, and sends nothing new when it finds nothing.
    look_up_only: bool = False


def store_event(webhook_id: str, event_type: str, body: str, now: dt.datetime) -> bool:
    """Keep a gateway's event once by its webhook id, to be applied after the commit; False for a duplicate."""
    with one_write():
        stored = insert_new(GatewayEvent, webhook_id=webhook_id, type=event_type, body=body, received_at=now)
        if stored:
            follow_up(FollowUp(APPLY_EVENTS))
    return bool(stored)


# Attempts one charge job claims at a time: each is an HTTP call to the gateway, so a batch takes a second or so,
# well within RESEND_AFTER, and a backlog is cut into enough batches for every worker to take some.
CHARGES_PER_CLAIM = 100


def due_attempts(now: dt.datetime) -> "ModelSelect[ChargeAttempt]":
    """Attempts to send now: scheduled ones that are due, unless another charge of their installment awaits its
    answer (R2), and sent ones that never got an answer."""
    other = ChargeAttempt.alias()
    awaiting_answer = other.select(other.id).where(
        other.installment == ChargeAttempt.installment, other.status == ChargeAttempt.IN_FLIGHT
    )
    # Left out here, not only at the claim: a claim full of attempts that must wait would send nothing, and start
    # the next job to find the same ones again.
    return ChargeAttempt.select(ChargeAttempt.id).where(
        (
            (ChargeAttempt.status == ChargeAttempt.SCHEDULED)
            & (ChargeAttempt.due_at <= now)
            & ~fn.EXISTS(awaiting_answer)
        )
        | ((ChargeAttempt.status == ChargeAttempt.IN_FLIGHT) & (ChargeAttempt.requested_at <= now - RESEND_AFTER))
    )


@dataclass(frozen=True)
class Claimed:
    """The charges a claim took, and whether it found as many due attempts as it could take (more may wait)."""

    requests: list[ChargeRequest]
    full: bool


def claim_due_attempts(now: dt.datetime) -> Claimed:
    """Mark up to CHARGES_PER_CLAIM due attempts in flight and say what to charge for each, beside any number of
    workers: each claim skips the attempts another is taking."""
    requests, found = _claim(due_attempts(now).limit(CHARGES_PER_CLAIM), now)
    return Claimed(requests, full=found == CHARGES_PER_CLAIM)


def claim_attempt(attempt_id: int, now: dt.datetime) -> ChargeRequest | None:
    """Mark a due attempt in flight and say what to charge; None when there is nothing to send.

    Two workers claiming the same attempt get one request between them.
    """
    requests, _found = _claim(due_attempts(now).where(ChargeAttempt.id == attempt_id), now)
    return requests[0] if requests else None


# What a claim decides on and a ChargeRequest carries, and no more: a hundred rows of four whole models took a
# tenth of a charge job's time to build.
_CLAIM_READS = (
    ChargeAttempt.id,
    ChargeAttempt.installment,
    ChargeAttempt.kind,
    ChargeAttempt.status,
    ChargeAttempt.amount,
    ChargeAttempt.idempotency_key,
    ChargeAttempt.reference,
    ChargeAttempt.method,
    ChargeAttempt.card_token,
    ChargeAttempt.sepa_mandate,
    Installment.id,
    Installment.number,
    Order.id,
    Order.status,
    Order.currency,
    Order.method,
    Order.card_token,
    Order.sepa_mandate,
    Customer.id,
    Customer.gateway_customer_id,
)


def _claim(due: "ModelSelect[ChargeAttempt]", now: dt.datetime) -> tuple[list[ChargeRequest], int]:
    """Claim the attempts `due` selects; returns the requests to send and how many attempts it found.

    A scheduled attempt whose installment is paid, or whose order can no longer be charged, is cancelled. R2, one
    charge per installment at a time: the claim holds each attempt's installment, so two claims of two attempts of
    one installment see each other, and one that waits for an answer holds back the installment's others. On
    PostgreSQL it skips the rows another transaction holds instead of waiting for them (they are claimed by the next
    batch or tick), so it can never be one end of a deadlock with the rules that settle attempts.
    """
    with transaction():
        # In no order: an order would have the planner read the attempts in that order, past every settled one.
        attempts = sorted(
            skipping_locked(
                due.select(*_CLAIM_READS).join(Installment).join(Order).join(Customer),
                of=ChargeAttempt,
            ),
            key=lambda attempt: attempt.id,
        )
        if not attempts:
            return [], 0
        installments = {attempt.installment_id for attempt in attempts}
        # With each one's status as it stands once held: a success committed since the read above paid it.
        held = {
            row.id: row.status
            for row in skipping_locked(
                Installment.select(Installment.id, Installment.status)
                .where(Installment.id.in_(installments))
                .order_by(Installment.id)
            )
        }
        waiting_for_answer = {
            row.installment_id
            for row in ChargeAttempt.select(ChargeAttempt.installment).where(
                ChargeAttempt.installment.in_(list(held)), ChargeAttempt.status == ChargeAttempt.IN_FLIGHT
            )
        }
        cancelled: list[int] = []
        sent: list[ChargeAttempt] = []
        resent: list[ChargeAttempt] = []
        looked_up: list[ChargeAttempt] = []
        for attempt in attempts:
            if attempt.installment_id not in held:
                continue
            chargeable = (
                held[attempt.installment_id] != Installment.PAID
                and attempt.installment.order.status in _CHARGEABLE[attempt.kind]
            )
            if attempt.status == ChargeAttempt.IN_FLIGHT:
                # Not cancelled even when no longer chargeable: the earlier send may have reached the gateway.
                (resent if chargeable else looked_up).append(attempt)
            elif not chargeable:
                cancelled.append(attempt.id)
            elif attempt.installment_id not in waiting_for_answer:
                sent.append(attempt)
                waiting_for_answer.add(attempt.installment_id)
        if cancelled:
            ChargeAttempt.update(status=ChargeAttempt.CANCELLED).where(ChargeAttempt.id.in_(cancelled)).execute()
        if sent:
            ChargeAttempt.update(status=ChargeAttempt.IN_FLIGHT, requested_at=now).where(
                ChargeAttempt.id.in_([attempt.id for attempt in sent])
            ).execute()
        if resent or looked_up:
            ChargeAttempt.update(requested_at=now).where(
                ChargeAttempt.id.in_([attempt.id for attempt in resent + looked_up])
            ).execute()
    requests = [_request(attempt, now, resent=False) for attempt in sent]
    requests += [_request(attempt, now, resent=True) for attempt in resent]
    requests += [_request(attempt, now, resent=True, look_up_only=True) for attempt in looked_up]
    return requests, len(attempts)


def _request(attempt: ChargeAttempt, now: dt.datetime, resent: bool, look_up_only: bool = False) -> ChargeRequest:
    order = attempt.installment.order
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
        resent=resent,
        reference=attempt.reference,
        look_up_only=look_up_only,
    )


def record_answers(answers: dict[int, str | None]) -> None:
    """Note the gateway's reference of each charge just sent (attempt id → reference), unless its outcome, applied
    already, noted one; None, the answer to a look-up that found nothing sent: that attempt, no longer to be charged,
    is cancelled. One transaction for a batch of charges, not a statement and a commit for each.

    The attempts another transaction holds (a batch applying their outcomes) are noted after it, each alone: waiting
    for them while holding the others could deadlock with a batch applying the same outcomes in another order, and
    skipping them would lose the reference of an outcome reported without one."""
    if not answers:
        return
    with transaction():
        asked = ChargeAttempt.select(ChargeAttempt.id).where(ChargeAttempt.id.in_(list(answers)))
        free = {row.id for row in skipping_locked(asked)}
        _note({attempt_id: answers[attempt_id] for attempt_id in free})
    for attempt_id in answers.keys() - free:
        _note({attempt_id: answers[attempt_id]})


def _note(answers: dict[int, str | None]) -> None:
    cancelled = [attempt_id for attempt_id, reference in answers.items() if reference is None]
    if cancelled:
        ChargeAttempt.update(status=ChargeAttempt.CANCELLED).where(
            ChargeAttempt.id.in_(cancelled), ChargeAttempt.status == ChargeAttempt.IN_FLIGHT
        ).execute()
    references = [(attempt_id, reference) for attempt_id, reference in answers.items() if reference is not None]
    if references:
        # Not `WHERE reference IS NULL`: PostgreSQL's statistics, taken while nearly every attempt had its reference,
        # read that as a few rows and scan the reference index's nulls (a tick's 100,000 new attempts).
        ChargeAttempt.update(reference=fn.COALESCE(ChargeAttempt.reference, Case(ChargeAttempt.id, references))).where(
            ChargeAttempt.id.in_([attempt_id for attempt_id, _ in references])
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


class NotNotedYet(Exception):
    """The report names its charge by a reference that may be one Tranche has not noted yet: a failure was applied
    to a charge of the installment without its reference (a gateway may leave it out), and a charge job notes its
    batch's answers as the batch ends. Raised before anything is written, so that the event is tried again
    (EVENT_RETRIES) rather than refused as unmatched, or taken for the charge in flight."""


def _attempt_for(attempts: list[ChargeAttempt], outcome: Outcome, installment: Installment) -> ChargeAttempt | None:
    """The attempt `outcome` reports on: the one of its reference, else the one in flight, whose reference may not be
    noted yet: at most one attempt per installment is ever in flight (R2). Unmatched when the one in flight has
    another reference noted: the outcome names a charge Tranche does not know."""
    in_flight = next((attempt for attempt in attempts if attempt.status == ChargeAttempt.IN_FLIGHT), None)
    if outcome.reference:
        by_reference = next((attempt for attempt in attempts if attempt.reference == outcome.reference), None)
        if by_reference:
            return by_reference
        failed_unnamed = any(
            each.status == ChargeAttempt.FAILED and each.requested_at and not each.reference for each in attempts
        )
        # A success may be the failed charge's even once another paid the installment: a second payment to show.
        if failed_unnamed and (outcome.succeeded or installment.status != Installment.PAID):
            raise NotNotedYet(
                f"{outcome.reference} may be the reference of a failed charge of installment {outcome.installment} of "
                f"order {outcome.order_id}, not noted yet"
            )
        if in_flight and in_flight.reference:
            raise Unmatched(
                f"{outcome.reference} is not the charge in flight ({in_flight.reference}) for installment "
                f"{outcome.installment} of order {outcome.order_id}"
            )
    return in_flight


@dataclass(frozen=True)
class Applied:
    """What applying an outcome did: in words, for the event log, and the attempt it settled (None: it changed
    nothing, the outcome was ignored)."""

    note: str
    settled: ChargeAttempt | None = None


def _named(outcomes: Iterable[Outcome]) -> list[tuple[int, int]]:
    """The installments `outcomes` report on, as (order, number), sorted."""
    return sorted({(outcome.order_id, outcome.installment) for outcome in outcomes})


def hold_installments(outcomes: Iterable[Outcome]) -> None:
    """Inside a transaction that will apply `outcomes`, hold the installments they report on, in one statement and in
    id order. Two transactions that each held theirs as they came (apply_outcome) could deadlock: one holding the
    first and waiting for the second, the other the other way round. Held in one order, the second waits whole."""
    named = _named(outcomes)
    if named:
        hold(
            Installment.select(Installment.id)
            .where(Tuple(Installment.order, Installment.number).in_(named))
            .order_by(Installment.id)
        )


def _attempts_of(installments: Expression) -> "ModelSelect[ChargeAttempt]":
    """Every attempt of the installments the condition `installments` names, each with its installment, order,
    customer, product and seller, which the rules and their messages read: one query."""
    return (
        ChargeAttempt.select(ChargeAttempt, Installment, Order, Customer, Product, Seller)
        .join(Installment)
        .join(Order)
        .join_from(Order, Customer)
        .join_from(Order, Product)
        .join_from(Order, Seller)
        .where(installments)
        .order_by(ChargeAttempt.id)
    )


def _as_one(attempts: list[ChargeAttempt]) -> list[ChargeAttempt]:
    """One installment's attempts sharing one installment and one seller object, so that what a rule changes on one
    the others see (a query gives each row objects of its own)."""
    if attempts:
        installment = attempts[0].installment
        for each in attempts:
            each.installment = installment
        order = installment.order
        order.product.seller = order.seller  # R11's contact address reads it again
    return attempts


Loaded = dict[tuple[int, int], list[ChargeAttempt]]


def read_attempts(outcomes: Iterable[Outcome]) -> Loaded:
    """Inside the transaction that holds their installments (hold_installments), the attempts of every installment
    `outcomes` report on, in one query, by (order, installment number), for apply_outcome: a batch's outcomes read
    them once instead of once each."""
    named = _named(outcomes)
    loaded: Loaded = {key: [] for key in named}
    if named:
        for attempt in _attempts_of(Tuple(Installment.order, Installment.number).in_(named)):
            loaded[attempt.installment.order_id, attempt.installment.number].append(attempt)
    return {key: _as_one(attempts) for key, attempts in loaded.items()}


def apply_outcome(
    outcome: Outcome, now: dt.datetime, held: bool = False, attempts: list[ChargeAttempt] | None = None
) -> Applied:
    """Apply a charge outcome once, and say what it did; `held`: the transaction holds its installment already
    (hold_installments); `attempts`: its installment's attempts, read since it was held and changed by nothing
    since (read_attempts).

    A success is final: it settles the installment even after a failure was reported for the same
    charge, and no later failure undoes it. Repeats change nothing.
    """
    with transaction():
        # Held till the commit before anything of it is read: two outcomes of one charge applied side by side (its
        # failure and its success, in two workers' batches) take turns, the second reading what the first wrote.
        installment_named = (Installment.order == outcome.order_id) & (Installment.number == outcome.installment)
        if not held:
            hold(Installment.select(Installment.id).where(installment_named))
        if attempts is None:
            # A handful: the one reported on, R5's first and next.
            attempts = _as_one(list(_attempts_of(installment_named)))
        if attempts:
            installment = attempts[0].installment
        else:  # never charged: no charge of it can be reported on
            uncharged = Installment.get_or_none(installment_named)
            if uncharged is None:
                raise Unmatched(f"no installment {outcome.installment} of order {outcome.order_id}")
            installment = uncharged
        attempt = _attempt_for(attempts, outcome, installment)
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
        settled = ["status", "failure_code", "failure_message", "advice_code", "settled_at"]
        if outcome.reference:  # else kept: the attempt was read before the charge job may have noted the answer
            settled.append("reference")
        update_row(ChargeAttempt, attempt.id, **{name: getattr(attempt, name) for name in settled})
        if outcome.succeeded:
            note = _payment_succeeded(attempt, attempts, recovered=was_failed or attempt.number > 1, now=now)
        else:
            note = dunning.payment_failed(attempt, attempts, now)
        return Applied(note, attempt)


def _named_charge(attempt: ChargeAttempt) -> str:
    """An attempt as the event log names it: numbers count each kind apart (a customer's charge 1, a renewal 1)."""
    return f"{attempt.kind} charge {attempt.number}" + (f" ({attempt.reference})" if attempt.reference else "")


def _payment_succeeded(attempt: ChargeAttempt, attempts: list[ChargeAttempt], recovered: bool, now: dt.datetime) -> str:
    installment = attempt.installment
    assert attempt.settled_at is not None, "a succeeded attempt is settled"
    paid = [each for each in attempts if each.status == ChargeAttempt.SUCCEEDED and each is not attempt]
    if paid:
        # A failed charge's late success once another charge paid the installment: a second payment, which the
        # seller's system hears of, naming the charge whose payment the installment shows (a third payment names it,
        # not the second), to refund one; the installment keeps that payment.
        paid_by = next((each for each in paid if each.settled_at == installment.paid_at), paid[0])
        data = {**dunning.attempt_data(attempt), "paid_by": dunning.charge_data(paid_by)}
        notifications.seller_event(installment.order, "payment.recovered", data, f"attempt-{attempt.id}", now)
        twice = f"{_named_charge(attempt)} succeeded once {_named_charge(paid_by)} had paid it"
        return f"installment {installment.number} paid twice: {twice}"
    record_installment_paid(installment, attempts, attempt.settled_at)
    adopt_payment_method(attempt)
    # R6 and R8: a plan interrupted or listed in collections resumes (a hand-off stays final). As read once its
    # installment was held: only an outcome of that installment, held by this transaction, interrupts or lists it.
    if installment.order.status in (Order.INTERRUPTED, Order.COLLECTIONS):
        collections.leave_collections(installment.order_id)
        Order.update(status=Order.ACTIVE).where(
            Order.id == installment.order_id, Order.status.in_((Order.INTERRUPTED, Order.COLLECTIONS))
        ).execute()
    if recovered or attempt.kind != ChargeAttempt.AUTOMATIC:
        notifications.customer_payment_recovered(attempt, now)
        data = dunning.attempt_data(attempt)
        notifications.seller_event(installment.order, "payment.recovered", data, f"attempt-{attempt.id}", now)
        return f"installment {installment.number} paid, recovered"
    return f"installment {installment.number} paid"
