"""The routes of /api/v1: authenticate, read the input, call one rule, answer its result or its refusal."""

import datetime as dt
import hashlib

from flask import g, jsonify, request
from spectree import Response

from api import bp, schemas, serialize
from api.openapi import InvalidRequest, MalformedBody, spec
from billing import collections, dunning, endpoints, plan_changes, plans, search
from billing.customers import gateway_customer_of
from billing.errors import InvalidInput, NotFound, Refused
from billing.orders import find_order, order_view
from billing.sellers import change_settings, seller_by_api_key
from billing.workspaces import install_link
from gateways import Attached, GatewayUnavailable, Payer, PaymentMethodRejected, get_gateway
from models import Customer, Product, WebhookEndpoint, transaction
from runtime import settings, touched, utcnow

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


@bp.errorhandler(MalformedBody)
def malformed_body(error):
    return _error(400, "malformed_json", str(error))


@bp.errorhandler(InvalidRequest)
def invalid_request(error: InvalidRequest):
    return _error(422, error.code, error.message, field=error.field)


@bp.errorhandler(InvalidInput)
def refused_input(error: InvalidInput):
    # The request is one the document allows; the rules refuse it for what is stored or for the time it is.
    return _error(409, "refused", error.message, field=error.field)


@bp.errorhandler(Refused)
def refused(error: Refused):
    return _error(409, error.code, error.message)


@bp.errorhandler(GatewayUnavailable)
def gateway_unavailable(error: GatewayUnavailable):
    response, status = _error(503, "gateway_unavailable", f"{error} Nothing was created: send the request again.")
    response.headers["Retry-After"] = "5"
    return response, status


@bp.errorhandler(NotFound)
def not_found(error: NotFound):
    return _error(404, "not_found", error.message)


UNAUTHORIZED = (schemas.Error, "No API key, or not a valid one (code unauthorized).")
MALFORMED = (schemas.Error, "The body is not a JSON object (code malformed_json).")
INVALID = (
    schemas.InvalidInputError,
    "A field is missing, unknown or not as this document describes it; `field` names it.",
)
BODY_REFUSALS = {"HTTP_400": MALFORMED, "HTTP_422": INVALID}
NOT_FOUND = (
    schemas.Error,
    "No such order: also the answer for another seller's order, whose existence is never revealed (code not_found).",
)


def _answering(operation_id: str, path_parameter_descriptions: dict | None = None, **answers):
    """spec.validate for a route that takes an API key, with its `answers` (HTTP_201=(Model, "what it is"))."""
    return spec.validate(
        operation_id=operation_id,
        path_parameter_descriptions=path_parameter_descriptions,
        resp=Response(HTTP_401=UNAUTHORIZED, **answers),
    )


def _on_an_order(operation_id: str, **answers):
    """A route under /orders/<order_id>: any of them may find no such order of yours."""
    return _answering(operation_id, {"order_id": "order id"}, HTTP_404=NOT_FOUND, **answers)


@bp.get("/seller")
@_answering("showSeller", HTTP_200=(schemas.Seller, "Your settings."))
def show_seller():
    """Your settings: language, time zone, digest"""
    return jsonify(serialize.seller(g.seller))


@bp.patch("/seller")
@_answering("changeSeller", HTTP_200=(schemas.Seller, "Your settings, changed."), **BODY_REFUSALS)
def change_seller(json: schemas.SellerSettings):
    """Change your language, time zone or digest (R13, R17)"""
    return jsonify(serialize.seller(change_settings(g.seller, utcnow(), **json.model_dump(exclude_none=True))))


@bp.post("/webhook-endpoints")
@_answering(
    "createWebhookEndpoint",
    HTTP_201=(schemas.RegisteredWebhookEndpoint, "The endpoint, with its secret (shown this once)."),
    HTTP_409=(
        schemas.Error,
        "In production, a url whose host resolves to no address, or to a loopback, private or link-local one "
        "(code refused, field url).",
    ),
    **BODY_REFUSALS,
)
def create_webhook_endpoint(json: schemas.NewWebhookEndpoint):
    """Register an endpoint of yours that hears of Tranche's events"""
    endpoint = endpoints.register_endpoint(g.seller, json.url, utcnow(), public_only=settings().production)
    return jsonify({**serialize.webhook_endpoint(endpoint), "secret": endpoint.secret}), 201


@bp.get("/webhook-endpoints")
@_answering("listWebhookEndpoints", HTTP_200=(schemas.WebhookEndpointList, "Your endpoints, oldest first."))
def list_webhook_endpoints():
    """Your webhook endpoints"""
    rows = g.seller.webhook_endpoints.order_by(WebhookEndpoint.id)
    return jsonify(webhook_endpoints=[serialize.webhook_endpoint(row) for row in rows])


@bp.delete("/webhook-endpoints/<endpoint_id>")
@_answering(
    "deleteWebhookEndpoint",
    {"endpoint_id": "endpoint id"},
    HTTP_204=None,
    HTTP_404=(schemas.Error, "No such endpoint of yours (code not_found)."),
)
def delete_webhook_endpoint(endpoint_id):
    """Remove an endpoint: it hears of nothing more"""
    endpoints.remove_endpoint(g.seller, endpoint_id)
    return "", 204


@bp.get("/products")
@_answering("listProducts", HTTP_200=(schemas.ProductList, "Your products, oldest first."))
def list_products():
    """Your products"""
    products = g.seller.products.order_by(Product.id)
    return jsonify(products=[serialize.product(p) for p in products])


@bp.post("/products")
@_answering(
    "createProduct",
    HTTP_201=(schemas.Product, "The product."),
    **BODY_REFUSALS,
)
def create_product(json: schemas.NewProduct):
    """Add a product with the address that hears of its failed payments"""
    product = Product.create(seller=g.seller, **json.model_dump())
    return jsonify(serialize.product(product)), 201


def _own_product(product_id: int) -> Product:
    product = Product.get_or_none(Product.id == product_id, Product.seller == g.seller)
    if product is None:
        raise InvalidInput("product_id", f"There is no product {product_id}.")
    return product


def _payment_method(body: schemas.InstallmentPlan | schemas.Subscription, today: dt.date) -> Attached:
    """The gateway's token for the card or the SEPA mandate, and its customer; the card number goes no further."""
    gateway, method = get_gateway(settings()), body.payment_method
    try:
        if isinstance(method, schemas.PaymentMethodToken):
            customer = body.customer
            payer = Payer(
                name=customer.name,
                email=customer.email,
                known_as=gateway_customer_of(g.seller, customer.email),
                idempotency_key=_payer_key(customer),
            )
            attached = gateway.attach(method.type, method.token, payer)
            card = attached.payment_method
            if card.exp_month and card.exp_year:
                _refuse_expired(card.exp_month, card.exp_year, today)
            return attached
        if isinstance(method, schemas.SepaInput):
            return Attached(gateway.sepa_mandate(method.iban), None)
        _refuse_expired(method.exp_month, method.exp_year, today)
        return Attached(gateway.tokenize_card(method.number, method.exp_month, method.exp_year), None)
    except PaymentMethodRejected as error:
        raise InvalidInput("payment_method", str(error)) from None


def _refuse_expired(exp_month: int, exp_year: int, today: dt.date) -> None:
    if plans.card_expired(exp_month, exp_year, today):
        raise InvalidInput("payment_method", f"the card expired at the end of {exp_month:02d}/{exp_year}")


def _payer_key(customer: schemas.NewCustomer) -> str:
    # A request sent again makes one customer at the gateway; the key names no one.
    facts = f"{g.seller.id}\n{customer.email.lower()}\n{customer.name}".encode()
    return f"tranche-customer-{hashlib.sha256(facts).hexdigest()[:32]}"


REFUSED_ORDER = (
    schemas.Error,
    "Refused by what is stored or by the time it is, with the field: product_id (no product of yours), "
    "invoice_number (already used), first_due_at (too far back), payment_method (expired, or refused by the "
    "gateway) (code refused).",
)


@bp.post("/orders")
@_answering(
    "createOrder",
    HTTP_201=(schemas.Order, "The order with its schedule."),
    HTTP_409=REFUSED_ORDER,
    HTTP_503=(schemas.Error, "The gateway did not answer; nothing was created (code gateway_unavailable)."),
    **BODY_REFUSALS,
)
def create_order(json: schemas.NewOrder):
    """Create an order with its payment plan; the card or IBAN is handed to the gateway"""
    body, now = json.root, utcnow()
    product = _own_product(body.product_id)
    payment = _payment_method(body, now.date())
    # The customer exists only with its order: a refused order leaves no customer behind.
    with transaction():
        order = plans.create_order(
            g.seller,
            product=product,
            customer=Customer.create(
                seller=g.seller, gateway_customer_id=payment.customer, **body.customer.model_dump()
            ),
            invoice_number=body.invoice_number,
            plan=body.plan,
            installment_count=getattr(body, "installment_count", None),
            interval=body.interval,
            amount=body.amount,
            currency=body.currency,
            anchor_at=body.first_due_at or now,
            payment=payment.payment_method,
            now=now,
        )
    touched(order=order.id)
    return jsonify(serialize.order(order_view(order, now))), 201


@bp.get("/orders")
@_answering(
    "listOrders",
    HTTP_200=(schemas.OrderList, "A page of your orders, newest first."),
    HTTP_409=(schemas.Error, "starting_after is not one of your orders (code refused)."),
    HTTP_422=INVALID,
)
def list_orders(query: schemas.OrderQuery):
    """Your orders, newest first, a page at a time; with q, the ones it finds

    q finds an order by its id (12 or #12), its customer's name (any part, any case, any accents: 'jurgen' finds
    Jürgen) or its invoice number (whole or its start). Page on with starting_after set to the last order's id
    while has_more is true.
    """
    page = search.list_orders(
        g.seller, query=query.q, status=query.status, starting_after=query.starting_after, limit=query.limit
    )
    return jsonify(
        timezone=g.seller.timezone,
        orders=[serialize.order_summary(o) for o in page.orders],
        has_more=page.has_more,
    )


@bp.get("/orders/<order_id>")
@_on_an_order("showOrder", HTTP_200=(schemas.Order, "The order."))
def show_order(order_id):
    """An order: schedule, attempts, next attempt, pending change, collections state"""
    return jsonify(serialize.order(order_view(find_order(g.seller, order_id), utcnow())))


@bp.post("/orders/<order_id>/renew")
@_on_an_order(
    "renewOrder",
    HTTP_202=(schemas.Renewal, "The renewal attempt, charged at once; its outcome shows in the order."),
    HTTP_409=(
        schemas.Error,
        "Refused, with the reason: sepa, too_early (fewer than three failed attempts), already_renewed, "
        "in_collections, hard_decline (the bank refused the card for good).",
    ),
)
def renew_order(order_id):
    """The fourth and final attempt, after the third automatic one failed (card plans only)"""
    attempt = dunning.renew_plan(find_order(g.seller, order_id), utcnow())
    touched(attempt=attempt.id)
    return jsonify(serialize.renewal(attempt, g.seller.timezone)), 202


@bp.post("/orders/<order_id>/plan-change")
@_on_an_order(
    "proposePlanChange",
    HTTP_201=(schemas.ProposedPlanChange, "The pending change; a newer one replaces it."),
    HTTP_409=(
        schemas.Error,
        "Refused, with the reason: below_minimum (under 2.00), unchanged (same amount), count_fixed, "
        "interval_fixed, closed (completed, in collections or handed off).",
    ),
    **BODY_REFUSALS,
)
def propose_plan_change(order_id, json: schemas.NewPlanChange):
    """A new amount for the remaining installments; the customer is emailed a link to confirm"""
    change = plan_changes.propose_plan_change(
        find_order(g.seller, order_id),
        json.amount,
        utcnow(),
        installment_count=json.installment_count,
        interval=json.interval,
    )
    return jsonify(serialize.plan_change(change) | {"timezone": g.seller.timezone}), 201


@bp.get("/collections")
@_answering("listCollections", HTTP_200=(schemas.CollectionList, "The collections list."))
def list_collections():
    """Orders listed in collections or handed off, newest first"""
    cases, now = collections.collections_list(g.seller), utcnow()
    return jsonify(timezone=g.seller.timezone, collections=[serialize.collection_entry(c, now) for c in cases])


@bp.post("/orders/<order_id>/collection")
@_on_an_order(
    "handOffOrder",
    HTTP_201=(schemas.HandOff, "The recorded hand-off, delivered to the partner in the background."),
    HTTP_409=(
        schemas.Error,
        "Refused, with the reason: already_handed_off, not_in_collections, charge_in_flight, no_open_debt.",
    ),
)
def hand_off_order(order_id):
    """Hand the order's open debt to the collection partner: final"""
    now = utcnow()
    case = collections.hand_to_collections(find_order(g.seller, order_id), now)
    return jsonify(serialize.collection_entry(case, now) | {"timezone": g.seller.timezone}), 201


@bp.post("/slack/install-link")
@_answering(
    "createSlackInstallLink",
    HTTP_201=(schemas.SlackInstallLink, "The link and when it expires."),
    HTTP_409=(schemas.Error, "Slack OAuth is not set up on this server (code slack_oauth_off)."),
)
def slack_install_link():
    """A one-time “Add to Slack” link that links a Slack workspace to you (OAuth install)"""
    if not settings().slack_oauth:
        return _error(409, "slack_oauth_off", "Slack OAuth is not set up here: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET.")
    url, expires_at = install_link(settings().public_url, g.seller, utcnow())
    return jsonify(url=url, expires_at=serialize.utc(expires_at)), 201
