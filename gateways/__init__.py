"""Payment gateways: the small interface Tranche charges through, and the one chosen by GATEWAY."""

from dataclasses import dataclass
from typing import Protocol

from billing.charging import ChargeRequest
from billing.plans import PaymentMethod
from config import Settings


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


class Gateway(Protocol):
    def tokenize_card(self, number: str, exp_month: int, exp_year: int) -> PaymentMethod: ...

    def sepa_mandate(self, iban: str) -> PaymentMethod: ...

    def attach(self, kind: str, token: str, payer: Payer) -> Attached:
        """The gateway's own payment method `token` ("card" or "sepa"), attached to the payer's customer at the
        gateway (made if need be); PaymentMethodRejected saying why the gateway refuses it."""
        ...

    def charge(self, request: ChargeRequest) -> str:
        """Ask for one charge; returns the gateway's reference. The outcome arrives later as an event.

        The same idempotency key never charges twice."""
        ...


def get_gateway(settings: Settings) -> Gateway:
    if settings.gateway == "sandbox":
        from gateways.sandbox import SandboxGateway

        return SandboxGateway(settings.public_url + "/webhooks/gateway", settings.gateway_webhook_secret)
    if settings.gateway == "stripe":
        from gateways.stripe import StripeGateway

        return StripeGateway(settings.stripe_secret_key, settings.stripe_api_base)
    raise RuntimeError(f"GATEWAY={settings.gateway!r} is not supported (use 'sandbox' or 'stripe')")
