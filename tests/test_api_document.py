"""The OpenAPI document is produced from the API's models, and the document and the API agree: what one refuses
the other refuses, down to the patterns written for billing's rules."""

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from api import schemas
from api.openapi import _texts_referred
from billing.errors import InvalidInput
from billing.money import parse_amount
from billing.values import control_character
from tests import factories
from tests.fuzzing import FUZZ
from tests.test_api import Api, fixture

REF = "#/components/schemas/{model}"


@pytest.fixture
def document(client):
    return client.get("/api/v1/openapi.json").get_json()


def schema_of(document: dict, name: str) -> OAS31Validator:
    return OAS31Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]},
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )


def test_the_served_document_is_valid_openapi_produced_from_the_models(document):
    """Each model's schema stands in the document as pydantic writes it: the models are its only source."""
    validate(document)
    for model in (schemas.NewProduct, schemas.NewCustomer, schemas.CardInput, schemas.NewPlanChange, schemas.Order):
        produced = _texts_referred(model.model_json_schema(ref_template=REF, mode="validation"))
        produced.pop("$defs", None)
        assert document["components"]["schemas"][model.__name__] == json.loads(json.dumps(produced))
    bodies = {
        operation["operationId"]: operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        for item in document["paths"].values()
        for operation in item.values()
        if "requestBody" in operation
    }
    assert bodies == {
        "createProduct": "#/components/schemas/NewProduct",
        "createOrder": "#/components/schemas/NewOrder",
        "proposePlanChange": "#/components/schemas/NewPlanChange",
        "changeSeller": "#/components/schemas/SellerSettings",
        "createWebhookEndpoint": "#/components/schemas/NewWebhookEndpoint",
    }


def test_the_discriminators_map_each_type_to_its_schema(document):
    """type card is a CardSummary in answers, sepa a SepaSummary; plan picks the order's. A request's payment
    method is one of card data, an IBAN or a Stripe PaymentMethod: exactly one of them (oneOf)."""
    found = document["components"]["schemas"]

    def mapping(name: str, field: str | None = None) -> dict:
        schema = found[name]["properties"][field] if field else found[name]
        return schema["discriminator"]["mapping"]

    ref = "#/components/schemas/"
    assert mapping("Order", "payment_method") == {"card": f"{ref}CardSummary", "sepa": f"{ref}SepaSummary"}
    assert mapping("NewOrder") == {"installments": f"{ref}InstallmentPlan", "subscription": f"{ref}Subscription"}
    for plan in ("InstallmentPlan", "Subscription"):
        members = [m["$ref"] for m in found[plan]["properties"]["payment_method"]["oneOf"]]
        assert members == [f"{ref}CardInput", f"{ref}SepaInput", f"{ref}PaymentMethodToken"]


def test_each_payment_method_of_a_request_fits_exactly_one_member_of_its_one_of(document):
    """oneOf holds only if the members exclude each other: a token is no card data, card data no token."""
    found = document["components"]["schemas"]
    members = {
        name: {**found[name], "components": document["components"]}
        for name in ("CardInput", "SepaInput", "PaymentMethodToken")
    }
    examples = [
        {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030},
        {"type": "sepa", "iban": "DE89370400440532013000"},
        {"type": "card", "token": "pm_1Abc"},
        {"type": "sepa", "token": "pm_1Abc"},
    ]
    for example in examples:
        fitting = [name for name, schema in members.items() if OAS31Validator(schema).is_valid(example)]
        assert len(fitting) == 1, (example, fitting)


@pytest.fixture
def api(client):
    return Api(client, factories.seller().api_key)


def test_an_unknown_field_gets_422_naming_it_on_every_operation_that_takes_a_body(api, document):
    """As Stripe does: a field the document does not name is refused, never ignored ({"count": 3} changes nothing)."""
    order = api.post("/orders", api.order_body()).get_json()
    bodies = {
        "createProduct": ("/products", fixture("product.json")),
        "createOrder": ("/orders", {**api.order_body(), "invoice_number": "INV-2"}),
        "proposePlanChange": (f"/orders/{order['id']}/plan-change", {"amount": "40.00"}),
        "changeSeller": ("/seller", {"digest": True}),
        "createWebhookEndpoint": ("/webhook-endpoints", {"url": "https://erp.example/tranche"}),
    }
    taking_a_body = {
        op["operationId"] for item in document["paths"].values() for op in item.values() if "requestBody" in op
    }
    assert taking_a_body == set(bodies)

    for operation, (path, body) in bodies.items():
        response = api.post(path, {**body, "count": 3}, method="PATCH" if operation == "changeSeller" else "POST")
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["error"] == {
            "code": "invalid",
            "field": "count",
            "message": "count is not a field of this request",
        }
    assert api.get(f"/orders/{order['id']}").get_json()["pending_change"] is None


def test_an_unknown_query_parameter_gets_422_naming_it(api):
    response = api.get("/orders", query_string={"colour": "red"})
    assert (response.status_code, response.get_json()["error"]["field"]) == (422, "colour")


def test_a_method_a_path_does_not_take_gets_405_with_allow(api):
    """405 says which methods the path takes (Allow), in the API's JSON error shape."""
    response = api.client.delete("/api/v1/products", headers=api.headers)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_an_empty_search_is_taken_as_the_document_allows_it(api, document):
    """q="" is no search: every order, a page at a time (a 422 before, though the document allowed it)."""
    factories.order(factories.seller("Other"))
    mine = api.post("/orders", api.order_body()).get_json()
    q = next(p for p in document["paths"]["/orders"]["get"]["parameters"] if p["name"] == "q")
    assert re.fullmatch(q["schema"]["pattern"], "")

    response = api.get("/orders", query_string={"q": ""})

    assert response.status_code == 200, response.get_json()
    assert [o["id"] for o in response.get_json()["orders"]] == [mine["id"]]


@pytest.mark.parametrize("name", ["", " ", "\u3000"])
def test_a_blank_customer_name_is_refused_by_document_and_api_alike(api, document, name):
    body = api.order_body()
    body["customer"]["name"] = name
    assert not schema_of(document, "NewCustomer").is_valid(body["customer"])
    response = api.post("/orders", body)
    assert (response.status_code, response.get_json()["error"]["field"]) == (422, "customer.name")


# --- the patterns and the rules they are written for ------------------------------------------------------


def stored_and_not_blank(text: str) -> bool:
    return control_character(text) is None and bool(text.strip())


BMP_TEXT = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=12)
SPACES_AND_HASHES = st.text(st.sampled_from([" ", "#", "\u3000", "\n", "a", "\u0378"]), max_size=6)


@FUZZ
@given(BMP_TEXT | SPACES_AND_HASHES)
def test_the_text_pattern_takes_exactly_the_texts_the_rule_stores(text):
    """Within the BMP: no control or unassigned character, not blank (billing.values)."""
    assert bool(re.fullmatch(schemas.text_pattern(), text)) == stored_and_not_blank(text)


@FUZZ
@given(BMP_TEXT | SPACES_AND_HASHES)
def test_the_search_pattern_takes_exactly_the_searches_billing_runs(text):
    """billing.search strips spaces, then a leading '#': a search with nothing left is refused."""
    expected = text == "" or (control_character(text) is None and bool(text.strip().lstrip("#")))
    assert bool(re.fullmatch(schemas.search_pattern(), text)) == expected


def amount_taken(text: str) -> bool:
    try:
        parse_amount(text)
    except InvalidInput:
        return False
    return True


@FUZZ
@given(st.from_regex(r"\A[0-9]{0,8}(\.[0-9]{0,3})?\Z") | st.from_regex(schemas.AMOUNT_PATTERN, fullmatch=True))
def test_the_amount_pattern_takes_exactly_the_amounts_the_rule_takes(text):
    assert bool(re.fullmatch(schemas.AMOUNT_PATTERN, text)) == amount_taken(text)


@pytest.mark.parametrize("text", ["100000", "100000.00", "100000.01", "0.01", "000001", "0000001", "0.00", "99999.99"])
def test_the_amount_pattern_agrees_at_its_edges(text):
    assert bool(re.fullmatch(schemas.AMOUNT_PATTERN, text)) == amount_taken(text)


@pytest.mark.parametrize(
    ("number", "taken"),
    [("40", True), ("40.50", True), ("1e3", True), ("1E-5", False), ("100000.001", False), ("0", False)],
)
def test_an_amount_number_is_taken_by_its_value_as_the_document_says(number, taken):
    """The document's number (multipleOf 0.01, more than 0, at most 100000) and the API read 1e3 as 1000."""
    validator = OAS31Validator({"type": "number", "exclusiveMinimum": 0, "maximum": 100000, "multipleOf": 0.01})
    assert validator.is_valid(float(number)) == taken
    try:
        schemas.NewPlanChange.model_validate({"amount": Decimal(number)})
    except ValueError:
        assert not taken
    else:
        assert taken
