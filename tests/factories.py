"""Sellers, products, customers and orders as a test needs them, made through the rules."""

import datetime as dt
from decimal import Decimal

from billing.charging import Outcome, apply_outcome, claim_due_attempts
from billing.plans import PaymentMethod, create_order, start_due_installments
from billing.sellers import create_seller
from gateways.sandbox import SandboxGateway
from models import ChargeAttempt, Customer, Order, Product

SUCCEEDS = "4242424242424242"
INSUFFICIENT_FUNDS = "4000000000009995"
DECLINED = "4000000000000002"
LOST = "4000000000009987"
IBAN_OK = "DE89370400440532013000"
IBAN_FAILS = "DE62370400440532013001"
_gateway = SandboxGateway("http://unused", "whsec_dGVzdA==")


def seller(name="Alice Courses", now=None, **settings):
    """A seller; `settings` as `flask sellers create` takes them (language, timezone)."""
    made, key = create_seller(
        name, f"{name.split()[0].lower()}@example.com", now or dt.datetime(2026, 1, 1, tzinfo=dt.UTC), **settings
    )
    made.api_key = key
    return made


def card(number=SUCCEEDS, expires=(12, 2030)) -> PaymentMethod:
    """A sandbox card; `expires` is its (month, year)."""
    return _gateway.tokenize_card(number, *expires)


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
    support_email=None,
    sepa_retry=False,
    reminder_days=None,
):
    product = Product.create(
        seller=owner,
        name="Python course",
        notification_email=f"notify+{owner.id}@example.com",
        support_email=support_email,
        sepa_retry=sepa_retry,
        reminder_days=reminder_days,
    )
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


def stripe_order(gateway_customer: str, method: str = "card", token: str = "pm_Recorded0001", **options) -> Order:
    """A card (or SEPA) order whose customer is `gateway_customer` at Stripe, paying with the PaymentMethod `token`;
    `options` as `order` takes them (anchor, language)."""
    if method == "card":
        payment = PaymentMethod(method="card", token=token, brand="visa", last4="4242", exp_month=12, exp_year=2030)
    else:
        payment = PaymentMethod(method="sepa", token=token, iban_masked="DE89 **** 3000")
    made = order(seller(), payment=payment, **options)
    Customer.update(gateway_customer_id=gateway_customer).where(Customer.id == made.customer_id).execute()
    return made


def open_due(now) -> list[ChargeAttempt]:
    """What the tick opens by `now`: the first attempts of the installments it opened, oldest first."""
    opened = start_due_installments(now)
    first = ChargeAttempt.select().where(
        ChargeAttempt.kind == ChargeAttempt.AUTOMATIC, ChargeAttempt.number == 1, ChargeAttempt.status == "scheduled"
    )
    return list(first.order_by(ChargeAttempt.id.desc()).limit(opened))[::-1]


def charge_due(now):
    """What the tick and the charge jobs do by `now`, short of the gateway: the charge requests sent."""
    start_due_installments(now)
    sent = []
    while True:
        batch = claim_due_attempts(now)
        sent += batch.requests
        if not batch.full:
            return sent


def gateway_reports(request, at, failure_code=None, advice_code=None):
    """The gateway's answer to one charge request, applied as the event job applies it (same charge, same
    reference); returns what applying it did, in words."""
    return apply_outcome(
        Outcome(
            succeeded=failure_code is None,
            order_id=request.order_id,
            installment=request.installment,
            occurred_at=at,
            reference=f"ch_{request.idempotency_key}",
            failure_code=failure_code,
            failure_message=failure_code and f"The bank said {failure_code}.",
            advice_code=advice_code,
            amount=request.amount,
            currency=request.currency,
        ),
        at,
    ).note


def answer_due_charges(at, failure_code=None):
    """Every charge due by `at` is sent and the gateway answers at once: paid, or failed with `failure_code`."""
    for request in charge_due(at):
        gateway_reports(request, at, failure_code)


def decline_the_ladder(start, attempts=3):
    """Every charge due at T, T+7 d and T+14 d (the first `attempts` of them) declines."""
    for step in range(attempts):
        answer_due_charges(start + dt.timedelta(days=7 * step), "insufficient_funds")
