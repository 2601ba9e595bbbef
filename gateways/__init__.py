"""Payment gateways: the small interface Tranche charges through, and the one chosen by GATEWAY."""

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from billing.charging import ChargeRequest
from billing.plans import PaymentMethod
from config import Settings

# Charges a job has at the gateway at once: a gateway takes some hundreds of milliseconds to answer one (Stripe), so a
# batch sent one at a time would take most of a minute; four at a time stay far below a gateway's rate limit (Stripe's
# is 100 requests a second).
CHARGES_AT_ONCE = 4


class PaymentMethodRejected(Exception):
    """Card or account data the gateway will not accept; the message says why, for the customer."""


class GatewayUnavailable(Exception):
    """The gateway did not answer (a network fault, its 5xx or 429): nothing was decided, asking again may work."""


@dataclass(frozen=True)
class Payer:
    """The customer, as told to a gateway that keeps customers of its own (Stripe)."""

    name: str
    email: str
    # The gateway's id of this customer, when one of the seller's earlier orders made it.
    known_as: str | None
    # Makes asking twice make one customer at the gateway (a client sending its request again).
    idempotency_key: str


@dataclass(frozen=True)
class Attached:
    payment_method: PaymentMethod
    # The gateway's id of the customer; None for a gateway that keeps no customers (the sandbox).
    customer: str | None


@dataclass(frozen=True)
class SetupFor:
    """The installment a payment method is set up in the customer's browser to pay, and the customer at the gateway
    it is set up for: a setup made for anyone or anything else never pays it."""

    customer: str | None
    order_id: int
    installment: int


@dataclass(frozen=True)
class BrowserScript:
    """The gateway's own script on the card page, which takes card and bank details from the customer's browser
    straight to the gateway (Stripe.js): Tranche sees only the payment method it made."""

    url: str
    publishable_key: str
    # Content-Security-Policy directive → the sources the script needs the page to allow.
    sources: dict[str, tuple[str, ...]]


class BrowserSetup(Protocol):
    """A gateway whose card page sets payment methods up in the customer's browser, with its own script."""

    @property
    def script(self) -> BrowserScript: ...

    def start_setup(self, kind: str, setup_for: SetupFor) -> str:
        """Begin setting up a "card" or "sepa" payment method in the customer's browser; returns the secret the
        script completes the setup with."""
        ...

    def finish_setup(self, setup_id: str, kind: str, setup_for: SetupFor) -> PaymentMethod:
        """The `kind` payment method the browser's setup `setup_id` made, once that setup succeeded for `setup_for`;
        PaymentMethodRejected for any other (not finished, another customer's, another installment's)."""
        ...


class Gateway(Protocol):
    @property
    def browser_setup(self) -> BrowserSetup | None:
        """None when the card page takes the card number or IBAN itself, for tokenize_card and sepa_mandate."""
        ...

    def tokenize_card(self, number: str, exp_month: int, exp_year: int) -> PaymentMethod: ...

    def sepa_mandate(self, iban: str) -> PaymentMethod: ...

    def attach(self, kind: str, token: str, payer: Payer) -> Attached:
        """The gateway's own payment method `token` ("card" or "sepa"), attached to the payer's customer at the
        gateway (made if need be); PaymentMethodRejected saying why the gateway refuses it."""
        ...

    def charge(self, request: ChargeRequest) -> str | None:
        """Ask for one charge; returns the gateway's reference. The outcome arrives later as an event.

        The same idempotency key never charges twice. A request to look up only (`look_up_only`) sends nothing new:
        it returns None when the gateway holds no charge of that key."""
        ...

    def charge_all(self, requests: Sequence[ChargeRequest]) -> "list[Future[str | None]]":
        """charge() for each of `requests`, CHARGES_AT_ONCE at a time; returns once every one has ended, each future
        holding its answer or the exception its charge raised."""
        ...


def side_by_side(
    charge: Callable[[ChargeRequest], str | None], requests: Sequence[ChargeRequest]
) -> "list[Future[str | None]]":
    """`charge` for each of `requests`, CHARGES_AT_ONCE at a time, each in a thread of its own; returns once every one
    has ended. Interrupted (the job's timeout), it sends none of those not yet sent."""
    pool = ThreadPoolExecutor(CHARGES_AT_ONCE, thread_name_prefix="charge")
    try:
        sent = [pool.submit(charge, request) for request in requests]
        wait(sent)
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    pool.shutdown()
    return sent


def get_gateway(settings: Settings) -> Gateway:
    if settings.gateway == "sandbox":
        from gateways.sandbox import SandboxGateway

        return SandboxGateway(settings.public_url + "/webhooks/gateway", settings.gateway_webhook_secret)
    if settings.gateway == "stripe":
        from gateways.stripe import StripeGateway, stripe_js

        return StripeGateway(
            settings.stripe_secret_key,
            settings.stripe_api_base,
            stripe_js(settings.stripe_js_url, settings.stripe_publishable_key),
        )
    raise RuntimeError(f"GATEWAY={settings.gateway!r} is not supported (use 'sandbox' or 'stripe')")
