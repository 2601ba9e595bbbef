"""POST /webhooks/stripe: Stripe-Signature verification, stored once per PaymentIntent outcome, then a job.

Event types Tranche does not use are answered 200 and not stored: the endpoint subscribes to the two it uses, so
another reaches it only if someone widened the subscription in Stripe's dashboard, and a row for it would wait
for an application that never comes. Stripe would send again, for days, anything not answered 2xx.
"""

import stripe
from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from billing.charging import Unmatched, store_event
from runtime import settings, touched, utcnow
from webhooks.answers import accepted, refused
from webhooks.events import InvalidEvent, event_text
from webhooks.stripe_events import outcome_of, read_event

bp = Blueprint("stripe_webhooks", __name__)
GATEWAY = "stripe"
# Stripe's own default, and SPEC's five minutes.
TOLERANCE_SECONDS = 300


@bp.post("/webhooks/stripe")
def stripe_event() -> ResponseReturnValue:
    try:
        # Decoded first: the SDK would decode it too, and raise UnicodeDecodeError on a body that is not UTF-8.
        body = event_text(request.get_data())
    except InvalidEvent as error:
        return refused(GATEWAY, 400, error.code, str(error))
    try:
        stripe.Webhook.construct_event(
            body, request.headers.get("Stripe-Signature"), settings().stripe_webhook_secret, TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as error:
        return refused(GATEWAY, 401, "bad_signature", f"signature rejected: {error}")
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
        # Verified, then parsed: the SDK lets a signed body that is no event object escape as what parsing raised.
        return refused(GATEWAY, 400, "malformed_event", "the body is not a Stripe event object")
    try:
        event = read_event(body)
        if not event.used:
            return accepted(GATEWAY, "ignored", event_id=event.id)
        key = event.key
        touched(order=outcome_of(event).order_id)
    except InvalidEvent as error:
        return refused(GATEWAY, 400, error.code, str(error))
    except Unmatched:
        pass  # kept, as unmatched, for an operator: Tranche's job says so when it applies it
    stored = store_event(key, event.type, body, utcnow())
    return accepted(GATEWAY, "stored" if stored else "duplicate", event_id=event.id)
