"""GET /api/v1/openapi.json: the OpenAPI 3.1 description of every route, its bodies and its errors.

Response schemas forbid undocumented fields, so the suite's check of real answers against them keeps this
document and api/serialize.py in step.
"""

from flask import jsonify

from api import bp
from billing.money import CURRENCIES, MAXIMUM_AMOUNT
from billing.plans import FIRST_DUE_AT_MOST_BACK, INTERVALS, MAX_INSTALLMENTS, PLANS
from billing.search import MAX_PAGE_SIZE, PAGE_SIZE
from billing.values import EARLIEST, LATEST
from models import ChargeAttempt, Installment, Order


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, optional: tuple[str, ...] = (), **extra) -> dict:
    """An object whose fields are all required but `optional`, and which has no other fields (the API refuses
    them: api.inputs.described)."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
        **extra,
    }


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _text(**extra) -> dict:
    return {"type": "string", **extra}


def _input_text(max_length: int, **extra) -> dict:
    """A text the API reads: stripped, non-empty, and refused with a control character (NUL, a line break…)."""
    return _text(maxLength=max_length, minLength=1, pattern=_NO_CONTROL_CHARACTERS, **extra)


def _list(name: str, item: str) -> dict:
    return _object({"timezone": _ref("TimeZone"), name: {"type": "array", "items": _ref(item)}})


# The control characters billing.values.control_character refuses that a pattern can name (C0, C1, surrogates,
# private use, line and paragraph separators); unassigned code points are refused too.
_NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\uf8ff]*$"
TIME = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601", "examples": ["2027-01-31T08:00:00Z"]}
ID = {"type": "integer", "minimum": 1}
ORDER_STATUSES = list(Order.STATUSES)
INSTALLMENT_STATUSES = [Installment.SCHEDULED, Installment.OPEN, Installment.PAID, Installment.HANDED_OFF]
ATTEMPT_KINDS = [ChargeAttempt.AUTOMATIC, ChargeAttempt.RENEWAL, ChargeAttempt.CUSTOMER]
ATTEMPT_STATUSES = [
    ChargeAttempt.SCHEDULED,
    ChargeAttempt.IN_FLIGHT,
    ChargeAttempt.SUCCEEDED,
    ChargeAttempt.FAILED,
    ChargeAttempt.CANCELLED,
]

_plan_change = {
    "id": ID,
    "order_id": ID,
    "status": {"enum": ["pending", "confirmed", "declined", "expired", "superseded"]},
    "old_amount": _ref("Money"),
    "new_amount": _ref("Money"),
    "proposed_at": _ref("Time"),
    "expires_at": _ref("Time"),
    "first_due_at": _nullable(_ref("Time")),
}
_order_summary = {
    "id": ID,
    "invoice_number": _text(),
    "status": {"enum": ORDER_STATUSES},
    "plan": {"enum": list(PLANS)},
    "installment_count": {"type": ["integer", "null"], "description": "null for a subscription"},
    "interval": {"enum": list(INTERVALS)},
    "amount": _ref("Money"),
    "currency": _ref("Currency"),
    "customer": _ref("Customer"),
    "created_at": _ref("Time"),
}
_attempt = {
    "number": {"type": "integer", "description": "automatic 1-3, renewal 4, customer charges counted apart"},
    "kind": {"enum": ATTEMPT_KINDS},
    "status": {"enum": ATTEMPT_STATUSES},
    "amount": _ref("Money"),
    "due_at": _ref("Time"),
    "settled_at": _nullable(_ref("Time")),
    "failure_code": {"type": ["string", "null"], "examples": ["insufficient_funds"]},
    "failure_message": {"type": ["string", "null"]},
}
_collection_entry = {"order": _ref("OrderSummary"), "collection": _ref("CollectionState")}

SCHEMAS = {
    "Money": _text(pattern=r"^[0-9]{1,9}\.[0-9]{2}$", examples=["30.00"]),
    "AmountInput": {
        "type": ["string", "number"],
        "pattern": r"^[0-9]{1,6}(\.[0-9]{1,2})?$",
        "maximum": int(MAXIMUM_AMOUNT),
        "description": f"More than 0 and at most {MAXIMUM_AMOUNT}, at most two decimal places, ASCII digits: '40', "
        "'40.5', '40.00' or the number "
        "40.00. Numbers are read as decimals, never as binary floats; '1,99', '1e3', -5, ' 40' or '３０' are refused.",
        "examples": ["40.00"],
    },
    "Currency": {
        "enum": sorted(CURRENCIES),
        "description": "An ISO 4217 code that is legal tender today (CLDR, through Babel)",
        "examples": ["EUR"],
    },
    "Time": TIME,
    "TimeZone": _text(description="The seller's IANA time zone, for showing the UTC times", examples=["Europe/Berlin"]),
    "Product": _object(
        {
            "id": ID,
            "name": _text(),
            "notification_email": _text(format="email"),
            "support_email": _nullable(_text(format="email")),
        }
    ),
    "NewProduct": _object(
        {
            "name": _input_text(200),
            "notification_email": _input_text(254, format="email"),
            "support_email": _input_text(
                254,
                format="email",
                description="Reply-To of the customers' emails and contact on their pages; default: the seller's email",
            ),
        },
        optional=("support_email",),
    ),
    "ProductList": _object({"products": {"type": "array", "items": _ref("Product")}}),
    "Customer": _object({"name": _text(), "email": _text(format="email"), "language": {"enum": ["fr", "de", "en"]}}),
    "NewCustomer": _object(
        {
            "name": _input_text(200),
            "email": _input_text(254, format="email"),
            "language": {"enum": ["fr", "de", "en"], "default": "en", "description": "of the customer's emails"},
        },
        optional=("language",),
    ),
    "CardInput": _object(
        {
            "type": {"const": "card"},
            "number": _input_text(30, description="tokenized by the gateway, never stored"),
            "exp_month": {"type": "integer", "minimum": 1, "maximum": 12},
            "exp_year": {"type": "integer", "minimum": 2000, "maximum": 2099},
        },
        description="A card past its expiry month (exp_month/exp_year before this month) is refused.",
    ),
    "SepaInput": _object({"type": {"const": "sepa"}, "iban": _input_text(42)}),
    "NewOrder": _object(
        {
            "product_id": ID,
            "customer": _ref("NewCustomer"),
            "invoice_number": _input_text(100, description="unique per seller"),
            "plan": {"enum": list(PLANS)},
            "installment_count": {
                "type": "integer",
                "minimum": 2,
                "maximum": MAX_INSTALLMENTS,
                "description": "required for an installment plan, left out for a subscription",
            },
            "interval": {"enum": list(INTERVALS)},
            "amount": _ref("AmountInput"),
            "currency": {**_ref("Currency"), "default": "EUR"},
            "first_due_at": {
                "type": "string",
                "format": "date-time",
                "description": "with its UTC offset; default now; at most "
                f"{FIRST_DUE_AT_MOST_BACK.total_seconds() / 3600:g} hours back, from {EARLIEST:%Y-%m-%d} to before "
                f"{LATEST:%Y-%m-%d}. Monthly plans keep its day of month in the seller's time zone (31 Jan, 28 Feb, "
                "31 Mar).",
            },
            "payment_method": {
                "oneOf": [_ref("CardInput"), _ref("SepaInput")],
                "discriminator": {"propertyName": "type"},
            },
        },
        optional=("installment_count", "currency", "first_due_at"),
    ),
    "CardSummary": _object(
        {
            "type": {"const": "card"},
            "brand": _text(),
            "last4": _text(pattern=r"^\d{4}$"),
            "exp_month": {"type": "integer"},
            "exp_year": {"type": "integer"},
        }
    ),
    "SepaSummary": _object(
        {"type": {"const": "sepa"}, "iban": _text(description="masked", examples=["DE89 **** 3000"])}
    ),
    "Attempt": _object(_attempt),
    "Installment": _object(
        {
            "number": {"type": "integer", "minimum": 1},
            "due_at": _ref("Time"),
            "amount": _ref("Money"),
            "status": {"enum": INSTALLMENT_STATUSES},
            "paid_at": _nullable(_ref("Time")),
            "attempts": {"type": "array", "items": _ref("Attempt")},
        }
    ),
    "NextAttempt": _object(
        {
            "installment": {"type": "integer"},
            "number": {"type": "integer"},
            "kind": {"enum": ATTEMPT_KINDS},
            "due_at": _ref("Time"),
        },
        description="The earliest scheduled attempt; while nothing is being charged, the first attempt of an "
        "active plan's next installment. null when nothing will be charged by itself.",
    ),
    "CollectionState": _object(
        {
            "state": {"enum": ["listed", "handed_off"]},
            "reason": _text(),
            "opened_at": _ref("Time"),
            "handed_off_at": _nullable(_ref("Time")),
            "installments": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "listed: the installment numbers due by now and unpaid; handed_off: those handed off",
            },
            "amount": _ref("Money"),
            "delivered_at": _nullable(_ref("Time")),
        },
        description="listed: an open debt Tranche will not recover by itself, with that debt as it stands now. "
        "handed_off: given to the collection partner (when, which installments, how much; delivered_at once the "
        "partner accepted).",
    ),
    "OrderSummary": _object(_order_summary),
    "Order": _object(
        {
            **_order_summary,
            "timezone": _ref("TimeZone"),
            "first_due_at": _ref("Time"),
            "product": _object({"id": ID, "name": _text()}),
            "payment_method": {
                "oneOf": [_ref("CardSummary"), _ref("SepaSummary")],
                "discriminator": {"propertyName": "type"},
            },
            "installments": {"type": "array", "items": _ref("Installment")},
            "next_attempt": _nullable(_ref("NextAttempt")),
            "pending_change": _nullable(_ref("PlanChange")),
            "collections": _nullable(_ref("CollectionState")),
            "coming_installments": {
                "type": ["array", "null"],
                "items": _object({"number": {"type": "integer"}, "due_at": _ref("Time")}),
                "description": "a subscription's next due dates (empty once it stopped); null for installment plans",
            },
        }
    ),
    "PlanChange": _object(
        _plan_change,
        description="A new amount for every installment not yet charged, waiting for the customer's consent "
        "within 240 hours (expires_at); first_due_at is the first installment it would apply to if confirmed now.",
    ),
    "NewPlanChange": _object(
        {
            "amount": _ref("Money"),
            "installment_count": {"type": "integer", "description": "refused if it differs: the count is fixed"},
            "interval": {"type": "string", "description": "refused if it differs: the interval is fixed"},
        },
        optional=("installment_count", "interval"),
    ),
    "ProposedPlanChange": _object({**_plan_change, "timezone": _ref("TimeZone")}),
    "OrderList": _object(
        {
            "timezone": _ref("TimeZone"),
            "orders": {"type": "array", "items": _ref("OrderSummary")},
            "has_more": {"type": "boolean", "description": "whether more orders follow this page"},
        }
    ),
    "CollectionEntry": _object(_collection_entry),
    "CollectionList": _list("collections", "CollectionEntry"),
    "HandOff": _object({**_collection_entry, "timezone": _ref("TimeZone")}),
    "Renewal": _object(
        {"order_id": ID, "installment": {"type": "integer"}, "attempt": _ref("Attempt"), "timezone": _ref("TimeZone")}
    ),
    "SlackInstallLink": _object(
        {"url": _text(format="uri"), "expires_at": TIME},
        description="Open it in a browser signed in to Slack: the workspace and channel chosen there are linked to "
        "you. It works once, within an hour.",
    ),
    "Error": _object({"error": _object({"code": _text(), "message": _text()})}),
    "InvalidInputError": _object(
        {
            "error": _object(
                {
                    "code": {"const": "invalid"},
                    "message": _text(),
                    "field": _text(description="the field at fault; nested ones by path", examples=["customer.email"]),
                }
            )
        }
    ),
}


def _answer(description: str, schema: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


RESPONSES = {
    "Malformed": _answer("The body is not a JSON object (code malformed_json).", "Error"),
    "Unauthorized": _answer("No API key, or not a valid one (code unauthorized).", "Error"),
    "NotFound": _answer(
        "No such order: also the answer for another seller's order, whose existence is never revealed "
        "(code not_found).",
        "Error",
    ),
    "Invalid": _answer("A field is missing or invalid; `field` names it.", "InvalidInputError"),
}


def _refs(*names: str) -> dict:
    codes = {"Malformed": "400", "Unauthorized": "401", "NotFound": "404", "Invalid": "422"}
    return {codes[name]: {"$ref": f"#/components/responses/{name}"} for name in names}


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


ORDER_ID = {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "order id"}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Tranche seller API",
        "version": "1",
        "description": "Installment plans and subscriptions of your orders, their schedule and attempts, "
        "renewals and collections. Amounts are decimal strings, times UTC ISO 8601; answers with times "
        "carry your time zone. Refusals answer 409 with a code saying why.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"apiKey": []}],
    "paths": {
        "/products": {
            "get": {
                "operationId": "listProducts",
                "summary": "Your products",
                "responses": {"200": _answer("Your products, oldest first.", "ProductList"), **_refs("Unauthorized")},
            },
            "post": {
                "operationId": "createProduct",
                "summary": "Add a product with the address that hears of its failed payments",
                "requestBody": _body("NewProduct"),
                "responses": {
                    "201": _answer("The product.", "Product"),
                    **_refs("Malformed", "Unauthorized", "Invalid"),
                },
            },
        },
        "/orders": {
            "get": {
                "operationId": "listOrders",
                "summary": "Your orders, newest first, a page at a time; with q, the ones it finds",
                "description": "q finds an order by its id (12 or #12), its customer's name (any part, any case, "
                "any accents: 'jurgen' finds Jürgen) or its invoice number (whole or its start). Page on with "
                "starting_after set to the last order's id while has_more is true.",
                "parameters": [
                    _query("q", _input_text(200), "an order id, part of a customer's name or an invoice number"),
                    _query("status", {"enum": ORDER_STATUSES}, "only the orders in this status"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": PAGE_SIZE},
                        "orders per page",
                    ),
                    _query("starting_after", ID, "the id of the last order of the page before: one of yours"),
                ],
                "responses": {
                    "200": _answer("A page of your orders, newest first.", "OrderList"),
                    **_refs("Unauthorized", "Invalid"),
                },
            },
            "post": {
                "operationId": "createOrder",
                "summary": "Create an order with its payment plan; the card or IBAN is handed to the gateway",
                "requestBody": _body("NewOrder"),
                "responses": {
                    "201": _answer("The order with its schedule.", "Order"),
                    **_refs("Malformed", "Unauthorized", "Invalid"),
                },
            },
        },
        "/orders/{order_id}": {
            "get": {
                "operationId": "showOrder",
                "summary": "An order: schedule, attempts, next attempt, pending change, collections state",
                "parameters": [ORDER_ID],
                "responses": {"200": _answer("The order.", "Order"), **_refs("Unauthorized", "NotFound")},
            },
        },
        "/orders/{order_id}/renew": {
            "post": {
                "operationId": "renewOrder",
                "summary": "The fourth and final attempt, after the third automatic one failed (card plans only)",
                "parameters": [ORDER_ID],
                "responses": {
                    "202": _answer("The renewal attempt, charged at once; its outcome shows in the order.", "Renewal"),
                    "409": _answer(
                        "Refused, with the reason: sepa, too_early (fewer than three failed attempts), "
                        "already_renewed, in_collections.",
                        "Error",
                    ),
                    **_refs("Unauthorized", "NotFound"),
                },
            },
        },
        "/orders/{order_id}/plan-change": {
            "post": {
                "operationId": "proposePlanChange",
                "summary": "A new amount for the remaining installments; the customer is emailed a link to confirm",
                "parameters": [ORDER_ID],
                "requestBody": _body("NewPlanChange"),
                "responses": {
                    "201": _answer("The pending change; a newer one replaces it.", "ProposedPlanChange"),
                    "409": _answer(
                        "Refused, with the reason: below_minimum (under 2.00), unchanged (same amount), count_fixed, "
                        "interval_fixed, closed (completed, in collections or handed off).",
                        "Error",
                    ),
                    **_refs("Malformed", "Unauthorized", "Invalid", "NotFound"),
                },
            },
        },
        "/orders/{order_id}/collection": {
            "post": {
                "operationId": "handOffOrder",
                "summary": "Hand the order's open debt to the collection partner: final",
                "parameters": [ORDER_ID],
                "responses": {
                    "201": _answer("The recorded hand-off, delivered to the partner in the background.", "HandOff"),
                    "409": _answer(
                        "Refused, with the reason: already_handed_off, not_in_collections, charge_in_flight.", "Error"
                    ),
                    **_refs("Unauthorized", "NotFound"),
                },
            },
        },
        "/collections": {
            "get": {
                "operationId": "listCollections",
                "summary": "Orders listed in collections or handed off, newest first",
                "responses": {"200": _answer("The collections list.", "CollectionList"), **_refs("Unauthorized")},
            },
        },
        "/slack/install-link": {
            "post": {
                "operationId": "createSlackInstallLink",
                "summary": "A one-time “Add to Slack” link that links a Slack workspace to you (OAuth install)",
                "responses": {
                    "201": _answer("The link and when it expires.", "SlackInstallLink"),
                    "409": _answer("Slack OAuth is not set up on this server (code slack_oauth_off).", "Error"),
                    **_refs("Unauthorized"),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapiDocument",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            },
        },
    },
    "components": {
        "securitySchemes": {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "The key `flask sellers create` printed: `Authorization: Bearer tr_…`",
            }
        },
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(DOCUMENT)
