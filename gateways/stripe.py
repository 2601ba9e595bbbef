"""The Stripe gateway: one off-session PaymentIntent per attempt, through Stripe's official SDK.

Stripe tells a charge's outcome twice: in its answer to the request that confirms the PaymentIntent (a card's
success at once, a decline as a CardError) and as a webhook (`POST /webhooks/stripe`). Both are stored as one
gateway event under the same id, `event_key(PaymentIntent, event type)`, so whichever comes first is applied and
the other is a duplicate. A PaymentIntent still `processing` (SEPA, for days) tells nothing yet: the attempt
stays in flight until Stripe's webhook reports how it ended.
"""

import json
import re
from collections.abc import Sequence
from concurrent.futures import Future
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

import stripe

from billing.charging import ChargeRequest, store_event
from billing.plans import PaymentMethod
from billing.retries import DO_NOT_TRY_AGAIN, METHOD_GONE
from gateways import (
    Attached,
    BrowserScript,
    GatewayUnavailable,
    Payer,
    PaymentMethodRejected,
    SetupFor,
    side_by_side,
)
from models import db

SUCCEEDED: Final = "payment_intent.succeeded"
FAILED: Final = "payment_intent.payment_failed"
# The events Tranche needs, and the only ones its webhook endpoint subscribes to.
EVENT_TYPES = (SUCCEEDED, FAILED)
# A final status is an outcome. Off-session, `requires_action` means the bank wants the customer, who is not
# there to answer (3-D Secure): the charge failed, and the customer is asked for another card. A PaymentIntent
# canceled at Stripe (its dashboard, while a debit was processing) will bring no money: a failure too.
_OUTCOME_OF_STATUS = {
    "succeeded": SUCCEEDED,
    "requires_payment_method": FAILED,
    "requires_action": FAILED,
    "canceled": FAILED,
}
_STRIPE_METHOD = {"card": "card", "sepa": "sepa_debit"}
# The parameters Stripe names when the payment method or customer it was asked to charge is gone.
CHARGED_WITH = frozenset({"payment_method", "customer"})
# What "Stripe did not answer" looks like through the SDK, once its own retries are spent.
UNANSWERED = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)
# The SDK sends a timed-out, refused (409) or failed (5xx) request again, with the same Idempotency-Key.
NETWORK_RETRIES = 3
TIMEOUT_SECONDS = 30
ATTEMPT_KEY = "tranche_attempt"

# Stripe counts in the currency's smallest unit: cents, but for these.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
CARD_DATA_REFUSED = (
    "With Stripe, card and bank details go to Stripe, never to Tranche: give the customer's Stripe "
    "PaymentMethod (pm_…) instead."
)
SETUP_INTENT_ID = re.compile(r"seti_[A-Za-z0-9]+", re.ASCII)
# What Stripe's security guide has a page running Stripe.js allow, beside the origin the script is loaded from: its
# frames (card fields, 3-D Secure) and its API.
STRIPE_JS_SOURCES = {
    "script-src": ("https://js.stripe.com", "https://*.js.stripe.com"),
    "frame-src": ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"),
    "connect-src": ("https://api.stripe.com",),
}


def _exponent(currency: str) -> int:
    currency = currency.upper()
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def stripe_amount(amount: Decimal, currency: str) -> int:
    """`amount` in Stripe's smallest unit of `currency` (4000 for 40.00 EUR); ValueError if it is no whole count."""
    units = amount.scaleb(_exponent(currency))
    if units != units.to_integral_value():
        raise ValueError(f"{amount} {currency} is no whole amount of {currency}'s smallest unit")
    return int(units)


def tranche_amount(units: int, currency: str) -> Decimal:
    """Stripe's amount in `currency`'s smallest unit as Tranche keeps amounts (40.00 for 4000 EUR)."""
    return Decimal(units).scaleb(-_exponent(currency)).quantize(Decimal("0.01"))


def event_key(payment_intent_id: str, event_type: str) -> str:
    """The id a PaymentIntent's outcome is stored under, whether Stripe's answer or its webhook told it.

    Tranche confirms each PaymentIntent once and never again, so it ends once: one outcome per PaymentIntent."""
    return f"{payment_intent_id}:{event_type}"


def stripe_js(url: str, publishable_key: str) -> BrowserScript:
    """Stripe.js loaded from `url` (Stripe's own, or a stand-in's copy that calls its own origin's API)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    sources = {directive: tuple(dict.fromkeys((origin, *stripes))) for directive, stripes in STRIPE_JS_SOURCES.items()}
    return BrowserScript(url, publishable_key, sources)


class StripeGateway:
    def __init__(self, secret_key: str, api_base: str, script: BrowserScript | None = None) -> None:
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base},
            max_network_retries=NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
        )
        # Without Stripe.js (the CLI's gateway) it only talks to Stripe's API.
        self.browser_setup = SetupIntents(self.client, script) if script is not None else None

    def create_webhook_endpoint(self, url: str) -> tuple[str, str]:
        """Have Stripe send the events Tranche needs to `url`; returns the endpoint's id and signing secret."""
        endpoint = self.client.v1.webhook_endpoints.create(
            {
                "url": url,
                "enabled_events": [SUCCEEDED, FAILED],
                "description": "Tranche: the outcomes of its charges",
            }
        )
        return endpoint.id, endpoint.secret or ""

    def tokenize_card(self, number: str, exp_month: int, exp_year: int) -> PaymentMethod:
        raise PaymentMethodRejected(CARD_DATA_REFUSED)

    def sepa_mandate(self, iban: str) -> PaymentMethod:
        raise PaymentMethodRejected(CARD_DATA_REFUSED)

    def attach(self, kind: str, token: str, payer: Payer) -> Attached:
        """The PaymentMethod `token` attached to the payer's Stripe Customer: the one it is attached to already
        (the seller's checkout made it), else the one an earlier order of this email made, else a new one."""
        try:
            found = self.client.v1.payment_methods.retrieve(token)
            if found.type != _STRIPE_METHOD[kind]:
                raise PaymentMethodRejected(f"{token} is a {found.type} PaymentMethod, not a {kind} one.")
            if found.customer is not None:
                return Attached(stored_method(found), _id(found.customer))
            customer = payer.known_as or self._new_customer(payer)
            attached = self.client.v1.payment_methods.attach(token, {"customer": customer})
        except stripe.InvalidRequestError as refused:
            if refused.http_status == 404:
                raise PaymentMethodRejected(f"Stripe has no PaymentMethod {token} for this account.") from None
            raise PaymentMethodRejected(f"Stripe refused {token}: {_reason(refused)}") from None
        except stripe.CardError as declined:
            raise PaymentMethodRejected(f"Stripe refused {token}: {_reason(declined)}") from None
        except UNANSWERED as fault:
            raise _unavailable(fault) from None
        return Attached(stored_method(attached), customer)

    def _new_customer(self, payer: Payer) -> str:
        customer = self.client.v1.customers.create(
            {"name": payer.name, "email": payer.email}, {"idempotency_key": payer.idempotency_key}
        )
        return customer.id

    def charge(self, request: ChargeRequest) -> str | None:
        """Confirm the attempt's PaymentIntent off-session (or find the one an earlier send made) and store
        whatever outcome Stripe's answer holds; returns the PaymentIntent's id, None when a look-up only finds none.

        A network fault the SDK's retries do not outlast, and a 429, raise: the attempt stays in flight and is
        sent again, with the same key, after charging.RESEND_AFTER."""
        try:
            payment_intent = self._sent_before(request)
            if payment_intent is None:
                if request.look_up_only:
                    return None
                payment_intent = self._confirm(request)
        except stripe.InvalidRequestError as refused:
            if not _unusable_method(refused):
                raise
            return self._store_answer(request, _refused_payment_intent(request, refused))
        return self._store_answer(request, payment_intent.to_dict(for_json=True))

    def charge_all(self, requests: Sequence[ChargeRequest]) -> "list[Future[str | None]]":
        return side_by_side(self._charge_in_thread, requests)

    def _charge_in_thread(self, request: ChargeRequest) -> str | None:
        with db.connection_context():  # the thread's own, from the pool, for the answer it stores
            return self.charge(request)

    def _store_answer(self, request: ChargeRequest, payment_intent: dict[str, Any]) -> str:
        """Store the outcome a PaymentIntent's state holds, as its webhook would; returns its id."""
        event_type = _OUTCOME_OF_STATUS.get(payment_intent["status"])
        if event_type is not None:
            event = {
                "id": f"answer_{payment_intent['id']}",
                "object": "event",
                "type": event_type,
                "created": int(request.at.timestamp()),
                "data": {"object": payment_intent},
            }
            store_event(event_key(payment_intent["id"], event_type), event_type, json.dumps(event), request.at)
        return str(payment_intent["id"])

    def _sent_before(self, request: ChargeRequest) -> stripe.PaymentIntent | None:
        """The PaymentIntent an earlier send of this attempt made: by the id recorded from Stripe's answer, else
        (a worker died before recording it) by the attempt's key in the metadata of the customer's PaymentIntents.
        Asked before anything is sent again, since Stripe forgets an Idempotency-Key after 24 hours."""
        if request.reference:
            return self.client.v1.payment_intents.retrieve(request.reference)
        if not request.resent or request.gateway_customer is None:
            return None
        # A list, not a search: Stripe's search lags writes, a list does not.
        listed = self.client.v1.payment_intents.list(params={"customer": request.gateway_customer, "limit": 100})
        for payment_intent in listed.auto_paging_iter():
            if payment_intent.metadata.to_dict().get(ATTEMPT_KEY) == request.idempotency_key:
                return payment_intent
        return None

    def _confirm(self, request: ChargeRequest) -> stripe.PaymentIntent:
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": stripe_amount(request.amount, request.currency),
            "currency": request.currency.lower(),
            "payment_method": request.token,
            # Not payment_method_types: since API version 2026-09-30 Stripe refuses it (400).
            "allowed_payment_method_types": [_STRIPE_METHOD[request.method]],
            "confirm": True,
            "off_session": True,
            "metadata": _attempt_metadata(request),
        }
        if request.gateway_customer:
            params["customer"] = request.gateway_customer
        try:
            return self.client.v1.payment_intents.create(params, {"idempotency_key": request.idempotency_key})
        except stripe.CardError as declined:
            return self._declined(declined)

    def _declined(self, declined: stripe.CardError) -> stripe.PaymentIntent:
        """The PaymentIntent a decline at confirm left behind (requires_payment_method, with its error). Stripe's
        error holds it; localstripe's names only the charge, whose PaymentIntent it is."""
        error = declined.error
        if error is not None and error.payment_intent is not None:
            return error.payment_intent
        if error is not None and error.charge:
            charge = self.client.v1.charges.retrieve(error.charge)
            if charge.payment_intent is not None:
                return self.client.v1.payment_intents.retrieve(_id(charge.payment_intent))
        raise declined


class SetupIntents:
    """The card page's SetupIntents: made here for the order's Stripe Customer, confirmed by Stripe.js in the
    customer's browser (3-D Secure included), read back here before their PaymentMethod pays anything."""

    def __init__(self, client: stripe.StripeClient, script: BrowserScript) -> None:
        self.client, self.script = client, script

    def start_setup(self, kind: str, setup_for: SetupFor) -> str:
        if setup_for.customer is None:
            raise PaymentMethodRejected(f"Order {setup_for.order_id} has no Stripe Customer to set a method up for.")
        try:
            setup_intent = self.client.v1.setup_intents.create(
                {
                    "customer": setup_for.customer,
                    "usage": "off_session",
                    # As for PaymentIntents: since API version 2026-09-30 Stripe refuses payment_method_types.
                    "allowed_payment_method_types": [_STRIPE_METHOD[kind]],
                    "metadata": _metadata(setup_for.order_id, setup_for.installment),
                }
            )
        except stripe.InvalidRequestError as refused:
            raise PaymentMethodRejected(f"Stripe refused a SetupIntent: {_reason(refused)}") from None
        except UNANSWERED as fault:
            raise _unavailable(fault) from None
        return setup_intent.client_secret or ""

    def finish_setup(self, setup_id: str, kind: str, setup_for: SetupFor) -> PaymentMethod:
        if not SETUP_INTENT_ID.fullmatch(setup_id):
            raise PaymentMethodRejected(f"{setup_id!r} is no SetupIntent id.")
        try:
            setup_intent = self.client.v1.setup_intents.retrieve(setup_id, {"expand": ["payment_method"]})
        except stripe.InvalidRequestError:
            raise PaymentMethodRejected(f"Stripe has no SetupIntent {setup_id} for this account.") from None
        except UNANSWERED as fault:
            raise _unavailable(fault) from None
        if setup_intent.status != "succeeded":
            raise PaymentMethodRejected(f"SetupIntent {setup_id} is {setup_intent.status}, not succeeded.")
        expected = _metadata(setup_for.order_id, setup_for.installment)
        metadata = setup_intent.metadata.to_dict() if setup_intent.metadata else {}
        made_for = {key: metadata.get(key) for key in expected}
        if setup_intent.customer is None or _id(setup_intent.customer) != setup_for.customer:
            raise PaymentMethodRejected(f"SetupIntent {setup_id} is another customer's.")
        if made_for != expected:
            raise PaymentMethodRejected(f"SetupIntent {setup_id} was made for another installment ({made_for}).")
        payment_method = setup_intent.payment_method
        if not isinstance(payment_method, stripe.PaymentMethod) or payment_method.type != _STRIPE_METHOD[kind]:
            raise PaymentMethodRejected(f"SetupIntent {setup_id} set up no {kind} PaymentMethod.")
        return stored_method(payment_method)


def _metadata(order_id: int, installment: int) -> dict[str, str]:
    """What a PaymentIntent or SetupIntent says it is for: the webhook reads it back (webhooks.stripe_events)."""
    return {"tranche_order_id": str(order_id), "tranche_installment": str(installment)}


def stored_method(payment_method: stripe.PaymentMethod) -> PaymentMethod:
    """What Tranche keeps of a Stripe PaymentMethod (SPEC): its id, the card's brand, last 4 and expiry, or the
    account's masked IBAN; the id stands for the mandate, which Stripe keeps with it."""
    # A PaymentMethod carries the details of its own type only: the SDK raises AttributeError for the others.
    card = payment_method.card if payment_method.type == "card" else None
    sepa = payment_method.sepa_debit if payment_method.type == "sepa_debit" else None
    if card is not None:
        return PaymentMethod(
            "card",
            payment_method.id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )
    if sepa is not None:
        return PaymentMethod("sepa", payment_method.id, iban_masked=f"{sepa.country}** **** {sepa.last4}")
    raise PaymentMethodRejected(
        f"{payment_method.id} is a {payment_method.type} PaymentMethod: Tranche takes cards and SEPA."
    )


def _attempt_metadata(request: ChargeRequest) -> dict[str, str]:
    """SPEC's metadata of an attempt's PaymentIntent: its order, installment and idempotency key."""
    return {**_metadata(request.order_id, request.installment), ATTEMPT_KEY: request.idempotency_key}


def _unusable_method(refused: stripe.InvalidRequestError) -> bool:
    """Whether Stripe refused the charge for its payment method or customer (detached, deleted, not activated),
    which no retry changes; any other refusal may be Tranche's own mistake, and is left to an operator."""
    error = refused.error
    if error is None:
        return False
    # "resource_missing" names whatever is missing: only the payment method or customer is the customer's doing.
    return error.code in METHOD_GONE and (error.code != "resource_missing" or error.param in CHARGED_WITH)


def _refused_payment_intent(request: ChargeRequest, refused: stripe.InvalidRequestError) -> dict[str, Any]:
    """The failed PaymentIntent Stripe's refusal stands for (it made none): the attempt's, failed for good with
    Stripe's code and message, under the id of Stripe's request (its dashboard's logs find it)."""
    error = refused.error
    return {
        "id": refused.request_id or f"refused_{request.idempotency_key}",
        "object": "payment_intent",
        "amount": stripe_amount(request.amount, request.currency),
        "currency": request.currency.lower(),
        "status": "requires_payment_method",
        "metadata": _attempt_metadata(request),
        "last_payment_error": {
            "code": error.code if error else None,
            "message": _reason(refused),
            "advice_code": DO_NOT_TRY_AGAIN,
        },
    }


def _unavailable(fault: stripe.StripeError) -> GatewayUnavailable:
    return GatewayUnavailable(f"Stripe did not answer ({type(fault).__name__}).")


def _reason(error: stripe.StripeError) -> str:
    detail = getattr(error, "error", None)
    return (detail.message if detail is not None else None) or error.user_message or "no reason given"


def _id(field: str | stripe.PaymentIntent | stripe.Customer) -> str:
    return field if isinstance(field, str) else field.id
