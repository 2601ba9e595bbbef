"""The routes of /api/v1: authenticate, read the input, call one rule, answer its result or its refusal."""

import datetime as dt

from flask import g, jsonify, request

from api import bp, inputs, serialize
from billing import collections, dunning, plan_changes, plans, search
from billing.errors import InvalidInput, NotYourOrder, OrderNotFound, Refused
from billing.sellers import seller_by_api_key
from bot.linking import install_link, oauth_enabled
from gateways import PaymentMethodRejected, get_gateway
from models import Customer, Product, transaction
from runtime import settings, utcnow

LANGUAGES = ("fr", "de", "en")
PUBLIC_ENDPOINTS = {"api.openapi_document"}


def _error(status: int, code: str, message: str, **extra):
    return jsonify(error={"code": code, "message": message, **extra}), status


@bp.before_request
def authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    seller = None
    if scheme.lower() == "bearer" and key.strip():
        seller = seller_by_api_key(key.strip())
    if seller is None:
        response, status = _error(401, "unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="tranche"'
        return response, status
    g.seller = seller
    return None


@bp.errorhandler(inputs.MalformedBody)
def malformed_body(error):
    return _error(400, "malformed_json", str(error))


@bp.errorhandler(InvalidInput)
def invalid_input(error: InvalidInput):
    return _error(422, error.code, error.message, field=error.field)


@bp.errorhandler(Refused)
def refused(error: Refused):
    return _error(409, error.code, error.message)


@bp.errorhandler(OrderNotFound)
@bp.errorhandler(NotYourOrder)
def order_not_found(_error_):
    # Another seller's order gets exactly the answer of an unknown one: its existence is not ours to reveal.
    return _error(404, "not_found", f"There is no order {request.view_args.get('order_id')}.")


@bp.get("/products")
def list_products():
    products = g.seller.products.order_by(Product.id)
    return jsonify(products=[serialize.product(p) for p in products])


@bp.post("/products")
def create_product():
    body = inputs.json_object("NewProduct")
    product = Product.create(
        seller=g.seller,
        name=inputs.text(body, "name"),
        notification_email=inputs.email(body, "notification_email"),
        support_email=inputs.email(body, "support_email") if body.get("support_email") is not None else None,
    )
    return jsonify(serialize.product(product)), 201


def _own_product(product_id: int) -> Product:
    product = Product.get_or_none(Product.id == product_id, Product.seller == g.seller)
    if product is None:
        raise InvalidInput("product_id", f"There is no product {product_id}.")
    return product


def _payment_method(body: dict, today: dt.date) -> plans.PaymentMethod:
    """The gateway's token for the card or the SEPA mandate; the card number goes no further."""
    data = inputs.section(body, "payment_method")
    kind = inputs.choice(data, "payment_method.type", plans.METHODS)
    inputs.described(data, "payment_method", "SepaInput" if kind == "sepa" else "CardInput")
    gateway = get_gateway(settings())
    try:
        if kind == "sepa":
            return gateway.sepa_mandate(inputs.text(data, "payment_method.iban", max_length=42))
        number = inputs.text(data, "payment_method.number", max_length=30)
        exp_month = inputs.whole(data, "payment_method.exp_month", 1, 12)
        exp_year = inputs.whole(data, "payment_method.exp_year", 2000, 2099)
        if plans.card_expired(exp_month, exp_year, today):
            raise InvalidInput("payment_method", f"the card expired at the end of {exp_month:02d}/{exp_year}")
        return gateway.tokenize_card(number, exp_month, exp_year)
    except PaymentMethodRejected as error:
        raise InvalidInput("payment_method", str(error)) from None


@bp.post("/orders")
def create_order():
    body = inputs.json_object("NewOrder")
    now = utcnow()
    product = _own_product(inputs.identifier(body, "product_id"))
    about = inputs.section(body, "customer", "NewCustomer")
    customer = {
        "name": inputs.text(about, "customer.name"),
        "email": inputs.email(about, "customer.email"),
        "language": inputs.choice(about, "customer.language", LANGUAGES, default="en"),
    }
    invoice_number = inputs.text(body, "invoice_number", max_length=100)
    amount = inputs.amount(body, "amount")
    currency = inputs.currency(body, "currency")
    anchor_at = inputs.time(body, "first_due_at", default=now)
    payment = _payment_method(body, now.date())
    # The customer exists only with its order: a refused order leaves no customer behind.
    with transaction():
        order = plans.create_order(
            g.seller,
            product=product,
            customer=Customer.create(seller=g.seller, **customer),
            invoice_number=invoice_number,
            plan=body.get("plan"),
            installment_count=body.get("installment_count"),
            interval=body.get("interval"),
            amount=amount,
            currency=currency,
            anchor_at=anchor_at,
            payment=payment,
            now=now,
        )
    return jsonify(serialize.order(order, now)), 201


@bp.get("/orders")
def list_orders():
    page = search.list_orders(
        g.seller,
        query=inputs.text(request.args, "q", default=None),
        status=request.args.get("status"),
        starting_after=inputs.identifier_in_text(request.args, "starting_after"),
        limit=inputs.number_in_text(request.args, "limit", default=search.PAGE_SIZE),
    )
    return jsonify(
        timezone=g.seller.timezone,
        orders=[serialize.order_summary(o) for o in page.orders],
        has_more=page.has_more,
    )


@bp.get("/orders/<order_id>")
def show_order(order_id):
    return jsonify(serialize.order(plans.seller_order(g.seller, order_id), utcnow()))


@bp.post("/orders/<order_id>/renew")
def renew_order(order_id):
    attempt = dunning.renew_plan(g.seller, order_id, utcnow())
    return jsonify(serialize.renewal(attempt, g.seller.timezone)), 202


@bp.post("/orders/<order_id>/plan-change")
def propose_plan_change(order_id):
    body = inputs.json_object("NewPlanChange")
    change = plan_changes.propose_plan_change(
        g.seller,
        order_id,
        body.get("amount"),
        utcnow(),
        installment_count=body.get("installment_count"),
        interval=body.get("interval"),
    )
    return jsonify(serialize.plan_change(change) | {"timezone": g.seller.timezone}), 201


@bp.get("/collections")
def list_collections():
    cases, now = collections.collections_list(g.seller), utcnow()
    return jsonify(timezone=g.seller.timezone, collections=[serialize.collection_entry(c, now) for c in cases])


@bp.post("/orders/<order_id>/collection")
def hand_off_order(order_id):
    now = utcnow()
    case = collections.hand_to_collections(g.seller, order_id, now)
    return jsonify(serialize.collection_entry(case, now) | {"timezone": g.seller.timezone}), 201


@bp.post("/slack/install-link")
def slack_install_link():
    if not oauth_enabled(settings()):
        return _error(409, "slack_oauth_off", "Slack OAuth is not set up here: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET.")
    url, expires_at = install_link(settings(), g.seller, utcnow())
    return jsonify(url=url, expires_at=serialize.utc(expires_at)), 201
