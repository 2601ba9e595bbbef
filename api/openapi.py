"""GET /api/v1/openapi.json: the OpenAPI 3.1 document spectree produces from the routes and api/schemas.py,
and the reading of requests by those same models (`spec.validate` on each route).

A request that does not match its model is refused 422 naming the field; spectree checks every answer against
its model too, so api/serialize.py cannot drift from the document.
"""

import json
from decimal import Decimal
from functools import cache

from flask import jsonify, request
from pydantic import ValidationError
from spectree import Response, SpecTree
from spectree.models import SecurityScheme, SecuritySchemeData, Server
from spectree.plugins.flask_plugin import FlaskPlugin

from api import bp, schemas
from billing.errors import InvalidInput
from billing.notifications import EVENT_TYPES

PREFIX = "/api/v1"


class MalformedBody(Exception):
    """The body is not a JSON object (answered 400)."""


class InvalidRequest(InvalidInput):
    """The request is not one the document describes (answered 422)."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def json_object() -> dict:
    """The request body as a dict, whatever its Content-Type says. Numbers with a fraction become Decimal, so
    money never passes through float."""
    try:
        body = json.loads(request.get_data(), parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:  # ValueError covers bad UTF-8 and ints past Python's digit limit
        raise MalformedBody(f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise MalformedBody("the body must be a JSON object")
    return body


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, reading the body with json_object rather than Flask's float-reading get_json."""

    def request_validation(self, request, query, json, form, headers, cookies):
        super().request_validation(request, query, None, form, headers, cookies)
        if json is not None:
            request.context = request.context._replace(json=self.model_adapter.validate_obj(json, json_object()))


def _field(error: dict) -> str:
    """The path of the field at fault (`customer.email`), without the union members pydantic names on its way."""
    path: list[str] = []
    tagged: set[tuple[str, ...]] = set()
    for part in error["loc"]:
        here = tuple(path)
        if part in schemas.UNION_TAGS.get(here, ()) and here not in tagged:
            tagged.add(here)
            continue
        path.append(str(part))
    if error["type"] in ("union_tag_invalid", "union_tag_not_found", "payment_method_type"):
        path.append(error["ctx"]["discriminator"].strip("'"))
    return ".".join(path)


def _message(error: dict, field: str) -> str:
    if error["type"] == "missing":
        return f"{field} is required"
    if error["type"] == "extra_forbidden":
        return f"{field} is not a field of this request"
    if error["type"] == "invalid":
        return f"{field} {error['msg']}"
    return f"{field}: {error['msg']}"


def refuse_invalid(_request, _response, error: ValidationError | None, _instance, _adapter) -> None:
    """spectree's hook before each view: a request its model refused is refused in the API's error shape."""
    if error is not None:
        first = error.errors(include_url=False)[0]
        field = _field(first)
        raise InvalidRequest(field, _message(first, field))


spec = SpecTree(
    "flask",
    backend=_Plugin,
    mode="strict",
    before=refuse_invalid,
    validation_error_model=schemas.InvalidInputError,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    title="Tranche seller API",
    version="1",
    description="Installment plans and subscriptions of your orders, their schedule and attempts, renewals and "
    "collections. Amounts are decimal strings, times UTC ISO 8601; answers with times carry your time zone. A "
    "request the document does not allow answers 422 naming the field; refusals answer 409 with a code saying why.",
    servers=[Server(url=PREFIX)],
    security_schemes=[
        SecurityScheme(
            name="apiKey",
            data=SecuritySchemeData(
                type="http", scheme="bearer", description="The key `flask sellers create` printed: `Bearer tr_…`"
            ),
        )
    ],
    security={"apiKey": []},
)

# What a client can do next with the order it created (schemathesis follows them in its stateful phase).
ORDER_LINKS = {
    name: {"operationId": name, "parameters": {"order_id": "$response.body#/id"}}
    for name in ("showOrder", "renewOrder", "proposePlanChange", "handOffOrder")
}


def _texts_referred(node):
    """`node` with each schema marked as a text (schemas.TEXT_MARK) referring to the Text schema."""
    if isinstance(node, list):
        return [_texts_referred(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _texts_referred(value) for key, value in node.items()}
    if node.pop(schemas.TEXT_MARK, False):
        node["allOf"] = [{"$ref": "#/components/schemas/Text"}]
    return node


def _operations(paths: dict) -> dict:
    """The paths without their prefix, and without the 422 spectree gives every operation: only those with a body
    or a query can be refused it."""
    kept = {}
    for path, item in paths.items():
        for operation in item.values():
            if "requestBody" not in operation and not any(p["in"] == "query" for p in operation["parameters"]):
                operation["responses"].pop("422")
        kept[path.removeprefix(PREFIX)] = item
    return kept


def _webhooks() -> tuple[dict, dict]:
    """OpenAPI 3.1's webhooks: each event a seller's endpoint receives (billing.notifications.EVENT_TYPES), with
    its body; and the schemas they refer to."""
    webhooks, found = {}, {}
    for event_type in EVENT_TYPES:
        model = schemas.event_model(event_type)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found |= schema.pop("$defs", {})
        found[model.__name__] = schema
        webhooks[event_type] = {
            "post": {
                "operationId": f"on_{event_type.replace('.', '_')}",
                "summary": f"{event_type}, POSTed to your endpoints signed per Standard Webhooks",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
                },
                "responses": {"2XX": {"description": "Received: any other answer is retried with backoff for 3 days"}},
            }
        }
    return webhooks, found


@cache
def document() -> dict:
    """The served document: spectree's, with the links, the Text schema and the webhooks it cannot produce itself."""
    produced = _texts_referred(spec.spec)
    paths = _operations(produced["paths"])
    paths["/orders"]["post"]["responses"]["201"]["links"] = ORDER_LINKS
    webhooks, events = _webhooks()
    components = produced["components"]["schemas"] | {"Text": schemas.text_schema()} | events
    # The query's parameters stand in its operation, each with its schema: the model itself is referred to nowhere.
    del components["OrderQuery"]
    schemas_ = {**produced["components"], "schemas": components}
    return {**produced, "paths": paths, "webhooks": webhooks, "components": schemas_}


@bp.get("/openapi.json")
@spec.validate(operation_id="openapiDocument", security={}, resp=Response(HTTP_200=(None, "OpenAPI 3.1")))
def openapi_document():
    """This document"""
    return jsonify(document())
