"""`flask demo`: a seller, two products and a dozen orders in every state, made by replaying the past.

No status is written by hand: each order is created with its start in the past, and the work due since
then is run moment by moment through the real rules, the sandbox gateway and its signed webhooks, as
the every-minute tick would have run it. Then the seller hands one interrupted order to collections.
"""

import datetime as dt
import threading
import unicodedata
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

import click
import requests
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Worker
from werkzeug.serving import WSGIRequestHandler, make_server

from billing.collections import hand_to_collections
from billing.endpoints import register_endpoint
from billing.plan_changes import propose_plan_change
from billing.plans import create_order
from billing.sellers import change_settings, create_seller
from gateways import get_gateway
from jobs.work import run_due_work
from models import ChargeAttempt, Customer, Installment, Order, Product, Seller
from progress import showing_progress, summary
from runtime import queue, redis_connection, settings, utcnow
from webhooks.inbox import PATH as INBOX_PATH

DEMO_EMAIL = "demo@example.com"
DAY = dt.timedelta(days=1)
COURSE, MEMBERSHIP = "Python for Data Analysis", "Academy Membership"
# Its SEPA debits lacking funds are retried once (R16); its customers hear of each installment 3 days ahead (R14).
BOOTCAMP = "Data Science Bootcamp"

# The SPEC's sandbox test cards and IBANs.
CARD_OK = "4242424242424242"
CARD_NO_FUNDS = "4000000000009995"
CARD_DECLINED = "4000000000000002"
CARD_EXPIRED = "4000000000000069"
IBAN_OK = "DE89370400440532013000"
IBAN_FAILS = "DE62370400440532013001"


@dataclass(frozen=True)
class DemoOrder:
    customer: str
    language: str
    count: int | None  # installments; None: a subscription to the membership
    interval: str
    amount: str
    starts: int  # days from now to the first due date: the days before now are replayed
    payment: str  # a sandbox test card number or IBAN
    story: str  # the state the replay leaves the order in, as printed
    hand_off: bool = False
    new_amount: str | None = None  # a plan change proposed 8 days ago, unanswered: reminded (R15)
    product: str | None = None  # default: the course for installments, the membership for a subscription
    card_expired: bool = False  # the card on file expired last month: its customer is told before the next (R14)


M, W = "monthly", "weekly"
# Month lengths vary: the starts keep each story true whatever today's date.
ORDERS = (
    DemoOrder(
        "Claire Dubois",
        "fr",
        6,
        M,
        "49.00",
        -65,
        CARD_OK,
        "active card plan, 3 of 6 paid; 59.00 proposed 8 days ago, unanswered: reminded",
        new_amount="59.00",
    ),
    DemoOrder("Jonas Weber", "de", 4, W, "25.00", -10, CARD_OK, "active weekly card plan, 2 of 4 paid"),
    DemoOrder("Emma Schmidt", "de", 3, M, "99.00", -20, IBAN_OK, "active SEPA plan, 1 of 3 paid"),
    DemoOrder(
        "Lucas Martin",
        "fr",
        3,
        M,
        "49.00",
        2,
        CARD_OK,
        "active card plan, first payment in 2 days: reminded",
        product=BOOTCAMP,
    ),
    DemoOrder(
        "Max Hoffmann",
        "de",
        6,
        M,
        "49.00",
        -25,
        CARD_OK,
        "card expired last month: told before the next payment",
        card_expired=True,
    ),
    DemoOrder("Olivia Brown", "en", 3, M, "49.00", -3, CARD_NO_FUNDS, "dunning: attempt 1 failed, 2 in 4 days"),
    DemoOrder("Hugo Bernard", "fr", 3, M, "49.00", -10, CARD_DECLINED, "dunning: attempt 2 failed, 3 in 4 days"),
    DemoOrder("Sophie Müller", "de", 3, M, "49.00", -20, CARD_EXPIRED, "interrupted: awaits renew after 3 failures"),
    DemoOrder("Noah Wilson", "en", None, M, "19.00", -16, CARD_NO_FUNDS, "subscription interrupted: awaits renew"),
    DemoOrder("Léa Petit", "fr", 3, M, "99.00", -5, IBAN_FAILS, "SEPA debit failed: in collections"),
    DemoOrder(
        "Paul Girard",
        "fr",
        3,
        M,
        "149.00",
        -3,
        IBAN_FAILS,
        "SEPA debit lacked funds: debited again in 4 days",
        product=BOOTCAMP,
    ),
    DemoOrder("Mia Fischer", "de", 3, M, "49.00", -25, CARD_DECLINED, "handed off to collections", hand_off=True),
    DemoOrder("Ethan Smith", "en", 3, W, "30.00", -30, CARD_OK, "completed weekly plan, 3 of 3 paid"),
    DemoOrder("Chloé Laurent", "fr", None, M, "19.00", -70, CARD_OK, "active subscription, 3 months paid"),
)


@dataclass(frozen=True)
class Demo:
    seller: Seller
    api_key: str
    endpoint_url: str | None
    orders: list[tuple[Order, str]]  # each order with its story

    def summary(self) -> str:
        lines = [f"Demo seller {self.seller.id} ({self.seller.email}), API key: {self.api_key}"]
        if self.endpoint_url:
            where = settings().webhook_inbox_dir
            lines.append(f"Its webhook endpoint: {self.endpoint_url}, which keeps what it hears in {where}")
        for order, story in self.orders:
            lines.append(f"  order {order.id:>4}  {order.invoice_number}  {order.customer.name:<14} {story}")
        return "\n".join(lines)


class DemoRefused(Exception):
    """The demo cannot be loaded here; the message says why."""


def load_demo(app: Flask, now: dt.datetime, on_job: Callable[[str, bool], None] | None = None) -> Demo:
    """Make the demo seller and its orders; refuses when the demo is already loaded or workers are running."""
    existing = Seller.get_or_none(Seller.email == DEMO_EMAIL)
    if existing is not None:
        raise DemoRefused(
            f"The demo is already loaded (seller {existing.id}, {DEMO_EMAIL}); "
            "start from an empty database to load it again."
        )
    if Worker.count(connection=redis_connection(), queue=queue()):
        # They would take the replayed work, and their own ticks would run it at today's time instead.
        raise DemoRefused("RQ workers are running: stop them (and the tick) before loading the demo.")
    seller, api_key = create_seller("Demo Academy", DEMO_EMAIL, now - 80 * DAY)
    change_settings(seller, now, digest=True)  # R17: read in Slack once a workspace is linked
    endpoint_url = None
    if not settings().production:  # where the inbox exists
        # The seller's own system stands in at this app's inbox, which keeps each event it hears.
        inbox = settings().public_url + INBOX_PATH
        endpoint_url = register_endpoint(seller, inbox, now - 80 * DAY, public_only=False).url
    products = {
        name: Product.create(
            seller=seller,
            name=name,
            notification_email="sales@demo-academy.example",
            sepa_retry=name == BOOTCAMP,
            reminder_days=3 if name == BOOTCAMP else None,
        )
        for name in (COURSE, MEMBERSHIP, BOOTCAMP)
    }
    gateway = get_gateway(settings())
    start = now.replace(minute=0, second=0, microsecond=0)
    orders = []
    for number, spec in enumerate(ORDERS, start=1001):
        customer = Customer.create(
            seller=seller, name=spec.customer, email=_email(spec.customer), language=spec.language
        )
        if spec.payment.startswith("DE"):
            payment = gateway.sepa_mandate(spec.payment)
        elif spec.card_expired:
            last_month = now.replace(day=1) - DAY
            payment = gateway.tokenize_card(spec.payment, last_month.month, last_month.year)
        else:
            payment = gateway.tokenize_card(spec.payment, 12, now.year + 3)
        anchor = start + spec.starts * DAY
        order = create_order(
            seller,
            product=products[spec.product or (COURSE if spec.count else MEMBERSHIP)],
            customer=customer,
            invoice_number=f"DEMO-{number}",
            plan="installments" if spec.count else "subscription",
            installment_count=spec.count,
            interval=spec.interval,
            amount=Decimal(spec.amount),
            currency="EUR",
            anchor_at=anchor,
            payment=payment,
            now=min(anchor, now) - DAY,
        )
        orders.append((order, spec))
    with _webhook_endpoint(app):
        _replay(seller, until=now, on_job=on_job)
        for order, spec in orders:
            if spec.hand_off:
                hand_to_collections(order, now)
            if spec.new_amount:
                propose_plan_change(order, spec.new_amount, now - 8 * DAY)
        run_due_work(now, on_job=on_job)
    return Demo(seller, api_key, endpoint_url, [(order, spec.story) for order, spec in orders])


def _email(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return f"{ascii_name.lower().replace(' ', '.')}@example.com"


def _replay(seller: Seller, until: dt.datetime, on_job: Callable[[str, bool], None] | None) -> None:
    """Run the work of each past moment of the seller's orders in turn, as the tick would have run it then.

    A moment is the due time of a scheduled installment or charge attempt; paying or failing one adds
    the next (a retry 7 days on, a subscription's next month), so the list is read again after each.
    """
    moment = None
    while (moment := _next_moment(seller, moment, until)) is not None:
        run_due_work(moment, on_job=on_job)


def _next_moment(seller: Seller, after: dt.datetime | None, until: dt.datetime) -> dt.datetime | None:
    installments = Installment.select(Installment.due_at).join(Order)
    attempts = ChargeAttempt.select(ChargeAttempt.due_at).join(Installment).join(Order)
    moments = []
    for model, query in ((Installment, installments), (ChargeAttempt, attempts)):
        query = query.where(Order.seller == seller, model.status == model.SCHEDULED, model.due_at <= until)
        if after is not None:
            query = query.where(model.due_at > after)
        first = query.order_by(model.due_at).first()
        if first is not None:
            moments.append(first.due_at)
    return min(moments, default=None)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        """The demo's own webhooks are not news."""


@contextmanager
def _webhook_endpoint(app: Flask):
    """The sandbox posts each outcome to PUBLIC_URL: serve the app there for the demo unless it already runs."""
    url = settings().public_url
    try:
        requests.get(f"{url}/healthz", timeout=5)
        running = True
    except requests.ConnectionError:
        running = False
    if running:
        yield
        return
    address = urlsplit(url)
    try:
        server = make_server(address.hostname, address.port or 80, app, threaded=True, request_handler=_Quiet)
    except OSError as error:
        raise DemoRefused(f"Nothing answers at PUBLIC_URL ({url}) and it cannot be served here: {error}") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@click.command("demo")
@with_appcontext
def demo_command():
    """Load demo data: a seller, two products and a dozen orders in every state (prints the API key)."""
    now = utcnow()
    try:
        with showing_progress("replaying the demo's weeks") as jobs:
            demo = load_demo(current_app._get_current_object(), now, on_job=jobs)
    except DemoRefused as refusal:
        raise click.ClickException(str(refusal)) from None
    click.echo(demo.summary())
    click.echo(summary(demo.seller.created_at, jobs))
