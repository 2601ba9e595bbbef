"""Sellers, products, customers and orders as a test needs them, made through the rules."""

import datetime as dt
from decimal import Decimal

from billing.plans import PaymentMethod, create_order
from cli import create_seller
from gateways.sandbox import SandboxGateway
from models import Customer, Product

SUCCEEDS = "4242424242424242"
INSUFFICIENT_FUNDS = "4000000000009995"
DECLINED = "4000000000000002"
IBAN_OK = "DE89370400440532013000"
IBAN_FAILS = "DE62370400440532013001"
_gateway = SandboxGateway("http://unused", "whsec_dGVzdA==")


def seller(name="Alice Courses", now=None):
    made, key = create_seller(
        name, f"{name.split()[0].lower()}@example.com", now or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    made.api_key = key
    return made


def card(number=SUCCEEDS) -> PaymentMethod:
    return _gateway.tokenize_card(number, 12, 2030)


def sepa(iban=IBAN_OK) -> PaymentMethod:
    return _gateway.sepa_mandate(iban)


def order(
    owner,
    *,
    payment=None,
    plan="installments",
    count=3,
    interval="monthly",
    amount="30.00",
    anchor=dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC),
    customer_name="Claire Dubois",
    language="fr",
    invoice=None,
):
    product = Product.create(seller=owner, name="Python course", notification_email=f"notify+{owner.id}@example.com")
    customer = Customer.create(
        seller=owner, name=customer_name, email=f"{customer_name.split()[0].lower()}@example.com", language=language
    )
    return create_order(
        owner,
        product=product,
        customer=customer,
        invoice_number=invoice or f"INV-{owner.id}-{Customer.select().count()}",
        plan=plan,
        installment_count=count if plan == "installments" else None,
        interval=interval,
        amount=Decimal(amount),
        currency="EUR",
        anchor_at=anchor,
        payment=payment or card(),
        now=anchor - dt.timedelta(days=1),
    )
