"""Payment gateways: the small interface Tranche charges through, and the one chosen by GATEWAY."""

from typing import Protocol

from billing.charging import ChargeRequest
from billing.plans import PaymentMethod
from config import Settings


class PaymentMethodRejected(Exception):
    """Card or account data the gateway will not accept; the message says why, for the customer."""


class Gateway(Protocol):
    def tokenize_card(self, number: str, exp_month: int, exp_year: int) -> PaymentMethod: ...

    def sepa_mandate(self, iban: str) -> PaymentMethod: ...

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
