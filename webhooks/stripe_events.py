"""Stripe's PaymentIntent events, read strictly into a charge outcome: those `POST /webhooks/stripe` stores, and
those the Stripe gateway stores from Stripe's answer to a confirm, which have the same shape.

The failure code is the issuer's `decline_code` when Stripe gives one (insufficient_funds), else Stripe's `code`
(card_declined); Stripe's `advice_code` is the outcome's advice (do_not_try_again makes a hard decline, SPEC
"Declines"); the message is Stripe's, written for the customer.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from billing.charging import Outcome, Unmatched
from billing.errors import InvalidInput
from billing.money import currency_code, parse_amount
from billing.values import EARLIEST, LATEST, identifier, whole_number
from gateways.stripe import EVENT_TYPES, SUCCEEDED, event_key, tranche_amount
from webhooks.events import LONG_TEXT, SHORT_TEXT, InvalidEvent, checked_text

# A failure without Stripe's error: off-session, `requires_action` is the bank asking for the absent customer.
_CODE_OF_STATUS = {"requires_action": "authentication_required", "canceled": "canceled"}
# Past any amount Tranche charges in any currency's smallest unit, and short of what Decimal's context holds.
MOST_UNITS = 10**12


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    created: dt.datetime
    object: dict[str, Any]  # the PaymentIntent, for the events Tranche uses

    @property
    def key(self) -> str:
        """The id it is stored under: one per PaymentIntent's outcome (gateways.stripe.event_key)."""
        key = event_key(checked_text(self.object.get("id"), "data.object.id"), self.type)
        # Checked whole: the id with its event type must fit the column the key is kept in.
        return checked_text(key, "data.object.id with the event type")

    @property
    def used(self) -> bool:
        """Whether Tranche acts on events of this type; it answers the others and forgets them."""
        return self.type in EVENT_TYPES


def read_event(text: str) -> StripeEvent:
    """The event's id, type, time and object; InvalidEvent names what is missing or malformed."""
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be an event
        raise InvalidEvent("the body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidEvent("the body must be a Stripe event object")
    created = whole_number(event.get("created"))
    if created is None or not EARLIEST.timestamp() <= created < LATEST.timestamp():
        raise InvalidEvent(f"created must be a Unix time from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidEvent("data.object must be an object")
    return StripeEvent(
        id=checked_text(event.get("id"), "id"),
        type=checked_text(event.get("type"), "type"),
        created=dt.datetime.fromtimestamp(created, dt.UTC),
        object=data["object"],
    )


def _text(values: dict[str, Any], name: str, longest: int = SHORT_TEXT) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = value[:longest]  # cut, not refused: a long text of Stripe's must not hold its event back for days
    return checked_text(value, name, longest)


def _failure_code(error: dict[str, Any], status: str | None) -> str:
    return _text(error, "decline_code") or _text(error, "code") or _CODE_OF_STATUS.get(status or "") or "unknown"


def outcome_of(event: StripeEvent) -> Outcome:
    """The charge outcome a payment_intent.succeeded or payment_intent.payment_failed event reports.

    Unmatched when its PaymentIntent is none of Tranche's (no tranche_order_id and tranche_installment in its
    metadata); InvalidEvent when it is malformed."""
    payment_intent = event.object
    reference = checked_text(payment_intent.get("id"), "data.object.id")
    metadata = payment_intent.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    order_id = identifier(metadata.get("tranche_order_id"))
    installment = identifier(metadata.get("tranche_installment"))
    if order_id is None or installment is None:
        raise Unmatched(f"PaymentIntent {reference} names no Tranche attempt (no tranche_* metadata)")
    try:
        currency = currency_code(str(payment_intent.get("currency")).upper(), "data.object.currency")
        units = whole_number(payment_intent.get("amount"))
        if units is None or not 0 < units < MOST_UNITS:
            raise InvalidInput("data.object.amount", "data.object.amount must be a whole number of minor units")
        amount = parse_amount(str(tranche_amount(units, currency)), "data.object.amount")
    except InvalidInput as error:
        raise InvalidEvent(error.message) from None
    succeeded = event.type == SUCCEEDED
    payment_error = payment_intent.get("last_payment_error")
    payment_error = payment_error if isinstance(payment_error, dict) else {}
    status = payment_intent.get("status")
    return Outcome(
        succeeded=succeeded,
        order_id=order_id,
        installment=installment,
        occurred_at=event.created,
        reference=reference,
        failure_code=None if succeeded else _failure_code(payment_error, status if isinstance(status, str) else None),
        failure_message=None if succeeded else _text(payment_error, "message", LONG_TEXT),
        advice_code=None if succeeded else _text(payment_error, "advice_code"),
        amount=amount,
        currency=currency,
    )


def stripe_outcome(text: str) -> Outcome:
    """The outcome a stored Stripe event reports (jobs.work applies it)."""
    return outcome_of(read_event(text))
