"""The seller API through the app: keys from `flask sellers create`, real gateway sandbox and workers.

Every answer checked here is also validated against the schema /api/v1/openapi.json gives for it.
"""

import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from jobs.work import run_due_work
from models import CollectionCase, Customer, Order, Product, Seller
from runtime import utcnow
from tests import factories

FIXTURES = Path(__file__).parent / "fixtures" / "api"
_DROP = object()
# Digits of other scripts: Python's int() reads "٣" as 3 and isdigit() takes "²", the API reads neither.
OTHER_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
TWO_YEARS_AGO = (dt.datetime.now(dt.UTC) - dt.timedelta(days=730)).isoformat()


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# The document /api/v1/openapi.json serves, read once.
DOCUMENT: dict = {}


@pytest.fixture(autouse=True)
def served_document(client):
    if not DOCUMENT:
        DOCUMENT.update(client.get("/api/v1/openapi.json").get_json())


def matches(body, schema: str):
    """`body` as the served OpenAPI document describes the schema named `schema`; returns it."""
    validator = OAS31Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": DOCUMENT["components"]},
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )
    validator.validate(body)
    return body


class Api:
    """The test client speaking as one seller."""

    def __init__(self, client, key: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **kwargs):
        return self.client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    def post(self, path: str, body=None, data: bytes | None = None, method: str = "POST"):
        if data is None:
            data = json.dumps(body if body is not None else {}).encode()
        return self.client.open(
            f"/api/v1{path}", method=method, data=data, headers={**self.headers, "Content-Type": "application/json"}
        )

    def patch(self, path: str, body: dict):
        return self.post(path, body, method="PATCH")

    def create_product(self) -> int:
        response = self.post("/products", fixture("product.json"))
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def order_body(self, name: str = "order_card_monthly.json") -> dict:
        return {"product_id": self.create_product(), **fixture(name)}


@pytest.fixture
def seller():
    return factories.seller()


@pytest.fixture
def api(client, seller):
    return Api(client, seller.api_key)


def changed(body: dict, path: str, value) -> dict:
    """A deep copy of `body` with the dotted `path` set to `value` (or removed, for _DROP)."""
    copy = json.loads(json.dumps(body))
    *parents, key = path.split(".")
    target = copy
    for part in parents:
        target = target[part]
    if value is _DROP:
        target.pop(key, None)
    else:
        target[key] = value
    return copy


def assert_refused(response, field: str):
    assert response.status_code == 409, response.get_json()
    error = matches(response.get_json(), "Error")["error"]
    assert (error["code"], error["field"]) == ("refused", field)
    assert Order.select().count() == 0
    assert Customer.select().count() == 0


def assert_invalid(response, field: str):
    assert response.status_code == 422, response.get_json()
    assert matches(response.get_json(), "InvalidInputError")["error"]["field"] == field
    # Bad input changes nothing: no order, and no customer left behind by a refused one.
    assert Order.select().count() == 0
    assert Customer.select().count() == 0


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer tr_not-a-key", "Bearer ", "Basic dHI6eA==", "tr_no-scheme"],
    ids=["missing", "wrong", "empty", "basic", "no-scheme"],
)
def test_a_request_without_a_valid_api_key_gets_401_json(client, seller, authorization):
    """No key, a wrong key or another scheme: 401 with a JSON error, for reads and writes alike."""
    headers = {"Authorization": authorization} if authorization else {}
    for response in (
        client.get("/api/v1/products", headers=headers),
        client.post("/api/v1/orders", data=b"{", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert matches(response.get_json(), "Error")["error"]["code"] == "unauthorized"


def test_the_key_printed_by_flask_sellers_create_opens_the_api(client, runner):
    """`flask sellers create` prints a key once; that key authenticates the new seller."""
    result = runner.invoke(args=["sellers", "create", "--name", "Bob Shop", "--email", "bob@example.com"])
    assert result.exit_code == 0, result.output
    key = re.search(r"API key: (\S+)", result.output).group(1)

    api = Api(client, key)
    assert api.get("/products").get_json() == {"products": []}
    assert api.create_product()
    seller = Seller.get()
    assert (seller.name, seller.email, seller.language, seller.timezone) == (
        "Bob Shop",
        "bob@example.com",
        "en",
        "Europe/Berlin",
    )


def test_flask_sellers_create_keeps_the_sellers_language_and_time_zone(runner):
    """--language and --timezone: the seller's emails speak it and show times there (R11, R13)."""
    result = runner.invoke(
        args=[
            "sellers",
            "create",
            "--name",
            "Zoë",
            "--email",
            "zoe@example.com",
            "--language",
            "fr",
            "--timezone",
            "America/New_York",
        ]
    )
    assert result.exit_code == 0, result.output
    assert (Seller.get().language, Seller.get().timezone) == ("fr", "America/New_York")


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--language", "es", "'es' is not one of 'fr', 'de', 'en'"),
        ("--timezone", "Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
        ("--timezone", "../../etc/passwd", "is not an IANA time zone"),
        ("--name", "Bob\nShop", "without control characters"),
        ("--email", "bob\x00@example.com", "without control characters"),
    ],
)
def test_flask_sellers_create_refuses_an_unknown_language_or_zone_and_creates_nothing(runner, option, value, says):
    """A clear click error (exit 2) naming the bad option; no seller is created."""
    options = {"--name": "Bob Shop", "--email": "bob@example.com", option: value}
    result = runner.invoke(args=["sellers", "create", *[part for pair in options.items() for part in pair]])
    assert result.exit_code == 2
    assert says in result.output and option in result.output
    assert Seller.select().count() == 0


# --- products -----------------------------------------------------------------------------------


def test_products_are_created_and_listed_per_seller(api, client):
    """A product is created with its notification address and only its seller lists it."""
    created = api.post("/products", fixture("product.json"))
    assert created.status_code == 201
    product = matches(created.get_json(), "Product")
    assert product["notification_email"] == "sales@example.com"

    assert matches(api.get("/products").get_json(), "ProductList") == {"products": [product]}
    other = Api(client, factories.seller("Bob Shop").api_key)
    assert other.get("/products").get_json() == {"products": []}


# --- the seller's own settings (R13, R17)


def test_a_seller_reads_and_changes_its_language_time_zone_and_digest(api, seller):
    """GET /seller shows the settings of `flask sellers create`; PATCH changes what it names and nothing else;
    the digest, once on, is due at the next 09:00 of the time zone."""
    shown = matches(api.get("/seller").get_json(), "Seller")
    assert (shown["language"], shown["timezone"], shown["digest"], shown["digest_due_at"]) == (
        "en",
        "Europe/Berlin",
        False,
        None,
    )

    changed = api.patch("/seller", {"timezone": "America/New_York", "digest": True})

    assert changed.status_code == 200, changed.get_json()
    body = matches(changed.get_json(), "Seller")
    assert (body["language"], body["timezone"], body["digest"]) == ("en", "America/New_York", True)
    due = dt.datetime.fromisoformat(body["digest_due_at"]).astimezone(ZoneInfo("America/New_York"))
    assert (due.hour, due.minute) == (9, 0) and dt.timedelta(0) < due - utcnow() <= dt.timedelta(days=1)
    assert api.patch("/seller", {"digest": False}).get_json()["digest_due_at"] is None
    assert api.patch("/seller", {"language": "de"}).get_json()["language"] == "de"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"language": "it"}, "language"),
        ({"digest": "yes"}, "digest"),
        ({"name": "Someone else"}, "name"),
    ],
)
def test_a_bad_setting_gets_422_naming_it_and_changes_nothing(api, body, field):
    response = api.patch("/seller", body)

    assert (response.status_code, response.get_json()["error"]["field"]) == (422, field)
    assert api.get("/seller").get_json()["timezone"] == "Europe/Berlin"


def test_a_product_keeps_its_optional_support_address_for_the_customers(api):
    """R11: support_email is shown as created and listed; a product without one says null."""
    created = matches(api.post("/products", fixture("product_with_support_email.json")).get_json(), "Product")
    without = matches(api.post("/products", fixture("product.json")).get_json(), "Product")

    assert (created["support_email"], without["support_email"]) == ("help@courses.example", None)
    assert [p["support_email"] for p in api.get("/products").get_json()["products"]] == ["help@courses.example", None]


def test_a_product_opts_in_to_the_sepa_retry_and_its_orders_sepa_debits_are_retried_once(api):
    """R16: sepa_retry is off unless asked for; a product with it retries a SEPA debit's lack of funds 7 days on."""
    retrying = matches(api.post("/products", {**fixture("product.json"), "sepa_retry": True}).get_json(), "Product")
    plain = matches(api.post("/products", fixture("product.json")).get_json(), "Product")
    assert (retrying["sepa_retry"], plain["sepa_retry"]) == (True, False)

    body = fixture("order_sepa_weekly.json")
    body["payment_method"]["iban"] = "DE62370400440532013001"  # the sandbox's IBAN without the funds
    order = api.post("/orders", {**body, "product_id": retrying["id"]}).get_json()
    first = dt.datetime.fromisoformat(order["installments"][0]["due_at"])
    run_due_work(first)

    shown = matches(api.get(f"/orders/{order['id']}").get_json(), "Order")
    assert (shown["status"], shown["collections"]) == ("active", None)
    attempts = shown["installments"][0]["attempts"]
    assert [(a["number"], a["status"]) for a in attempts] == [(1, "failed"), (2, "scheduled")]
    assert dt.datetime.fromisoformat(attempts[1]["due_at"]) == first + dt.timedelta(days=7)


def test_a_product_asks_for_a_reminder_days_before_each_installment(api, inbox):
    """R14: reminder_days is null unless given; with 3, the customer hears of each installment 3 days ahead."""
    # 3.0 is the integer 3 to JSON Schema, as to the document's readers (schemathesis sends it so).
    reminding = matches(api.post("/products", {**fixture("product.json"), "reminder_days": 3.0}).get_json(), "Product")
    assert (reminding["reminder_days"], api.get("/products").get_json()["products"][0]["reminder_days"]) == (3, 3)
    order = api.post("/orders", {**fixture("order_card_monthly.json"), "product_id": reminding["id"]}).get_json()
    first = dt.datetime.fromisoformat(order["installments"][0]["due_at"])

    run_due_work(first - dt.timedelta(days=3))

    (email,) = inbox.to("claire@example.com")
    assert email["Subject"].startswith("Votre échéance de 30,00")  # the reminder, not another email


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("sepa_retry", "yes", "sepa_retry"),
        ("reminder_days", 0, "reminder_days"),
        ("reminder_days", 29, "reminder_days"),
        ("reminder_days", "3", "reminder_days"),
        ("sepa_retry", 1, "sepa_retry"),
        ("name", _DROP, "name"),
        ("name", " ", "name"),
        ("notification_email", "sales", "notification_email"),
        ("name", "Python\x00course", "name"),
        ("name", "Python\ncourse", "name"),
        ("notification_email", "sales\x00@example.com", "notification_email"),
        ("colour", "red", "colour"),
        ("support_email", "help", "support_email"),
        ("support_email", 42, "support_email"),
    ],
)
def test_a_product_with_a_bad_field_gets_422_naming_it(api, path, value, field):
    """Missing or malformed product fields, and control characters such as NUL in them, are refused, named."""
    response = api.post("/products", changed(fixture("product.json"), path, value))
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field
    assert Product.select().count() == 0


# --- creating orders ----------------------------------------------------------------------------


def test_a_card_order_shows_its_monthly_schedule_keeping_the_anchor_day(api):
    """31 Jan → 28 Feb → 31 Mar (local time, Berlin), a card summary without its token, and what comes next."""
    created = api.post("/orders", api.order_body())
    assert created.status_code == 201, created.get_json()
    order = matches(created.get_json(), "Order")

    assert order["timezone"] == "Europe/Berlin"
    assert [(i["number"], i["due_at"], i["amount"], i["status"]) for i in order["installments"]] == [
        (1, "2027-01-31T08:00:00Z", "30.00", "scheduled"),
        (2, "2027-02-28T08:00:00Z", "30.00", "scheduled"),
        (3, "2027-03-31T07:00:00Z", "30.00", "scheduled"),  # 09:00 in Berlin, summer time
    ]
    assert order["payment_method"] == {
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    assert order["next_attempt"] == {
        "installment": 1,
        "number": 1,
        "kind": "automatic",
        "due_at": "2027-01-31T08:00:00Z",
    }
    assert order["customer"] == {"name": "Claire Dubois", "email": "claire@example.com", "language": "fr"}
    assert (order["pending_change"], order["collections"], order["coming_installments"]) == (None, None, None)
    assert "tok_" not in created.get_data(as_text=True)

    assert api.get(f"/orders/{order['id']}").get_json() == order


def test_a_sepa_order_shows_a_masked_iban_and_weekly_dates_in_local_time(api):
    """A JSON number amount stays a decimal; the IBAN is masked and the mandate never shown."""
    created = api.post("/orders", api.order_body("order_sepa_weekly.json"))
    assert created.status_code == 201, created.get_json()
    order = matches(created.get_json(), "Order")

    assert (order["amount"], order["currency"]) == ("12.50", "EUR")
    assert order["payment_method"] == {"type": "sepa", "iban": "DE89 **** 3000"}
    assert [i["due_at"] for i in order["installments"]] == [
        "2027-03-15T09:00:00Z",
        "2027-03-22T09:00:00Z",
        "2027-03-29T08:00:00Z",  # 10:00 in Berlin after the clocks moved
        "2027-04-05T08:00:00Z",
    ]
    assert "mdt_" not in created.get_data(as_text=True)


def test_a_subscription_shows_its_coming_installments(api):
    """An open-ended plan has one installment written and shows the next due dates on the anchor day."""
    body = changed(changed(api.order_body(), "plan", "subscription"), "installment_count", _DROP)
    order = matches(api.post("/orders", body).get_json(), "Order")

    assert [i["number"] for i in order["installments"]] == [1]
    assert order["coming_installments"] == [
        {"number": 2, "due_at": "2027-02-28T08:00:00Z"},
        {"number": 3, "due_at": "2027-03-31T07:00:00Z"},
        {"number": 4, "due_at": "2027-04-30T07:00:00Z"},
    ]


def test_an_order_without_first_due_at_starts_now_and_in_euros(api):
    """first_due_at defaults to the time of the request, currency to EUR."""
    body = changed(changed(api.order_body(), "first_due_at", _DROP), "currency", _DROP)
    before = utcnow()
    order = api.post("/orders", body).get_json()

    first_due = dt.datetime.fromisoformat(order["first_due_at"])
    assert before <= first_due <= utcnow()
    assert order["currency"] == "EUR"


@pytest.mark.parametrize(
    "raw",
    [
        '"1,99"',
        '"abc"',
        "-5",
        '"-5"',
        '"1e3"',
        "0",
        '"0.00"',
        "10.999",
        '"12.345"',
        "true",
        "[]",
        '""',
        "99999999999999999999",
        "null",
        '"30.00\\n"',
        '" 40"',
        '"\uff13\uff10.00"',
        '"\u0663\u0660"',
        '"30.\u0665"',
    ],
)
def test_an_amount_that_is_not_a_plain_positive_decimal_gets_422_naming_amount(api, raw):
    """Commas, words, negatives, exponents, three places, booleans, missing amounts, a trailing line break and
    digits of other scripts ("３０.00", "٣٠") are refused."""
    body = json.dumps({**api.order_body(), "amount": "__AMOUNT__"}).replace('"__AMOUNT__"', raw)
    assert_invalid(api.post("/orders", data=body.encode()), "amount")


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        ("40", "40.00"),
        ("40.5", "40.50"),
        ('"19.99"', "19.99"),
        ("0.1", "0.10"),
        ("1e3", "1000.00"),
        ("12.500", "12.50"),
    ],
)
def test_an_amount_as_string_or_json_number_is_read_as_a_decimal(api, raw, amount):
    """A JSON number is parsed as a decimal, never through a float, and counts by its value as in the document: the
    number 1e3 is 1000 (the string '1e3' is refused)."""
    body = json.dumps({**api.order_body(), "amount": "__AMOUNT__"}).replace('"__AMOUNT__"', raw)
    response = api.post("/orders", data=body.encode())
    assert response.status_code == 201, response.get_json()
    assert {i["amount"] for i in response.get_json()["installments"]} == {amount}


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("plan", "yearly", "plan"),
        ("plan", _DROP, "plan"),
        ("plan", "subscription", "installment_count"),
        ("interval", "daily", "interval"),
        ("interval", ["monthly"], "interval"),
        ("installment_count", 1, "installment_count"),
        ("installment_count", "3", "installment_count"),
        ("installment_count", 2.5, "installment_count"),
        ("installment_count", True, "installment_count"),
        ("installment_count", 10**30, "installment_count"),
        ("installment_count", _DROP, "installment_count"),
        ("currency", "eur", "currency"),
        ("currency", "XYZ", "currency"),
        ("currency", "DEM", "currency"),
        ("first_due_at", "0001-01-01T00:00:00+01:00", "first_due_at"),
        ("first_due_at", "2027-01-31T09:00:00", "first_due_at"),
        ("first_due_at", "tomorrow", "first_due_at"),
        ("first_due_at", 1801353600, "first_due_at"),
        ("first_due_at", "9999-12-31T23:00:00-05:00", "first_due_at"),
        ("invoice_number", "", "invoice_number"),
        ("invoice_number", 42, "invoice_number"),
        ("invoice_number", "INV\x00-1", "invoice_number"),
        ("invoice_number", "INV\n1", "invoice_number"),
        ("customer.name", "Claire\x00Dubois", "customer.name"),
        ("customer.name", "Claire\u2028Dubois", "customer.name"),
        ("customer.email", "claire\x00@example.com", "customer.email"),
        ("customer", "Claire", "customer"),
        ("customer.name", _DROP, "customer.name"),
        ("customer.email", "claire", "customer.email"),
        ("customer.language", "es", "customer.language"),
        ("payment_method", _DROP, "payment_method"),
        ("payment_method.type", "paypal", "payment_method.type"),
        ("payment_method.number", 4242424242424242, "payment_method.number"),
        ("payment_method.exp_month", 13, "payment_method.exp_month"),
        ("payment_method", {"type": "sepa"}, "payment_method.iban"),
        ("product_id", "1", "product_id"),
        ("product_id", 10**30, "product_id"),
        # Past what a 32-bit column of cents holds for a whole plan (a 500 on PostgreSQL before).
        ("amount", "30000000", "amount"),
        ("amount", "100000.01", "amount"),
        ("count", 3, "count"),
        ("customer.phone", "+49 30 1234", "customer.phone"),
        ("payment_method.cvc", "123", "payment_method.cvc"),
    ],
)
def test_a_bad_order_field_gets_422_naming_it_and_changes_nothing(api, path, value, field):
    """Wrong plans, intervals, counts, types, currencies, times, texts with control characters, customers, expired
    cards, payment methods and products are named."""
    assert_invalid(api.post("/orders", changed(api.order_body(), path, value)), field)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("first_due_at", TWO_YEARS_AGO, "first_due_at"),
        ("payment_method.number", "4111111111111111", "payment_method"),
        (
            "payment_method",
            {"type": "card", "number": "4242424242424242", "exp_month": 1, "exp_year": 2020},
            "payment_method",
        ),
        ("payment_method", {"type": "sepa", "iban": "FR7630006000011234567890189"}, "payment_method"),
        ("product_id", 999999, "product_id"),
    ],
)
def test_an_order_the_document_allows_but_the_rules_refuse_gets_409_naming_the_field(api, path, value, field):
    """A start long past, a card the gateway refuses or that has expired, a product that is not there: nothing the
    document can say, so no 422 (which says the document refuses it): 409 refused, named, and nothing changes."""
    assert_refused(api.post("/orders", changed(api.order_body(), path, value)), field)


def test_another_sellers_product_is_as_unknown_as_a_missing_one(api, client):
    """An order cannot be made on a product of someone else."""
    theirs = Api(client, factories.seller("Bob Shop").api_key).create_product()
    assert_refused(api.post("/orders", changed(api.order_body(), "product_id", theirs)), "product_id")


def test_an_invoice_number_is_used_once_per_seller(api):
    """The second order with the same invoice number is refused, and leaves no customer behind."""
    body = api.order_body()
    assert api.post("/orders", body).status_code == 201
    response = api.post("/orders", body)
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "invoice_number"
    assert (Order.select().count(), Customer.select().count()) == (1, 1)


@pytest.mark.parametrize(
    "data",
    [b"{", b"", b"[1, 2]", b'"an order"', b"null", b'{"amount": NaN}', b"\xff\xfe{}", b"[" * 100_000],
    ids=["truncated", "empty", "array", "string", "null", "nan", "not-utf8", "deep"],
)
def test_a_body_that_is_not_a_json_object_gets_400(api, data):
    """Malformed JSON, or JSON that is not an object, is a 400 with a JSON error, on every write."""
    for path in ("/orders", "/products"):
        response = api.post(path, data=data)
        assert response.status_code == 400
        assert matches(response.get_json(), "Error")["error"]["code"] == "malformed_json"
    assert Order.select().count() == 0


# --- reading orders -----------------------------------------------------------------------------


def test_another_sellers_order_gets_the_same_404_as_an_unknown_one(api, client):
    """Show, renew and hand-off answer alike for an order of someone else and one that does not exist."""
    theirs = factories.order(factories.seller("Bob Shop"))
    unknown = theirs.id + 1000

    for order_id in (theirs.id, unknown, "abc", "99999999999999999999999"):
        for response in (
            api.get(f"/orders/{order_id}"),
            api.post(f"/orders/{order_id}/renew"),
            api.post(f"/orders/{order_id}/collection"),
        ):
            assert response.status_code == 404
            assert matches(response.get_json(), "Error") == {
                "error": {"code": "not_found", "message": f"There is no order {order_id}."}
            }


def test_orders_are_found_by_id_partial_name_and_invoice_only_among_ones_own(client):
    """R12 through the API: id, any part of the name in any case and accents, the invoice number or its start."""
    owner = factories.seller("Carol Books")
    claire = factories.order(owner, customer_name="Claire Dubois", invoice="INV-A")
    jonas = factories.order(owner, customer_name="Jonas Weber", invoice="INV-B")
    jurgen = factories.order(owner, customer_name="Jürgen Müller", invoice="R-2026-0042")
    factories.order(factories.seller("Bob Shop"), customer_name="Claire Martin", invoice="INV-A")
    mine = Api(client, owner.api_key)

    def found(q):
        response = mine.get("/orders", query_string={"q": q})
        assert response.status_code == 200
        return [o["id"] for o in matches(response.get_json(), "OrderList")["orders"]]

    assert found(str(jonas.id)) == [jonas.id]
    assert found(f"#{claire.id}") == [claire.id]
    assert found("aire DUB") == [claire.id]
    assert found("CLAIRE") == [claire.id]
    assert found("INV-B") == [jonas.id]
    assert found("inv-") == [jonas.id, claire.id]
    assert found("R-2026-00") == [jurgen.id]
    assert found("JURGEN") == found("muller") == [jurgen.id]
    assert found("nobody") == []
    assert found("99999999999999999999999") == []
    assert found("²") == []
    assert found(str(claire.id).translate(OTHER_DIGITS)) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"q": " "}, "q"),
        ({"q": "#"}, "q"),
        ({"q": "Claire\x00"}, "q"),
        ({"q": "\n0"}, "q"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "\u0665"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"status": "paid"}, "status"),
        ({"status": ""}, "status"),
        ({"starting_after": "abc"}, "starting_after"),
        ({"starting_after": "²"}, "starting_after"),
    ],
)
def test_a_bad_search_or_page_parameter_gets_422_naming_it(api, query, field):
    """A blank query or one with a NUL, a limit outside 1-100 or not in ASCII digits, an unknown status, an order
    that is not one of yours to start after: each refused, named."""
    assert_invalid(api.get("/orders", query_string=query), field)


def test_starting_after_an_order_that_is_not_yours_gets_409(api):
    """The document cannot know your orders: a well-formed id of none of them is refused 409, named."""
    assert_refused(api.get("/orders", query_string={"starting_after": "999999"}), "starting_after")


def test_orders_are_listed_newest_first_a_page_at_a_time(client, seller):
    """Without q: 20 by default, `limit` per page, `starting_after` the last one seen, until has_more is false."""
    api = Api(client, seller.api_key)
    orders = [factories.order(seller, customer_name=f"Customer {n}") for n in range(23)]
    newest_first = [o.id for o in reversed(orders)]

    def page(**query):
        response = api.get("/orders", query_string=query)
        assert response.status_code == 200, response.get_json()
        body = matches(response.get_json(), "OrderList")
        return [o["id"] for o in body["orders"]], body["has_more"]

    assert page() == (newest_first[:20], True)
    assert page(limit=10) == (newest_first[:10], True)
    assert page(limit=10, starting_after=newest_first[9]) == (newest_first[10:20], True)
    assert page(limit=10, starting_after=newest_first[19]) == (newest_first[20:], False)
    assert page(limit=100) == (newest_first, False)
    assert page(q="customer 1", limit=2) == ([o.id for o in reversed(orders[10:20])][:2], True)
    assert Api(client, factories.seller("Bob Shop").api_key).get("/orders").get_json()["orders"] == []
    theirs = api.get("/orders", query_string={"starting_after": newest_first[0]})
    assert theirs.status_code == 200


def test_orders_are_listed_by_status(api, seller):
    """`status` keeps the orders in that status: an interrupted order apart from the active ones."""
    T = utcnow().replace(microsecond=0) - dt.timedelta(days=15)
    interrupted = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    active = factories.order(seller, anchor=T + dt.timedelta(days=60))
    for day in (0, 7, 14):
        run_due_work(T + dt.timedelta(days=day))

    def listed(status):
        body = matches(api.get("/orders", query_string={"status": status}).get_json(), "OrderList")
        return [o["id"] for o in body["orders"]]

    assert listed("interrupted") == [interrupted.id]
    assert listed("active") == [active.id]
    assert listed("completed") == []


def test_an_order_id_in_other_digits_is_no_order(api, seller):
    """`/orders/٣` and `/orders/²` are 404 (never order 3, never a 500), for show, renew and hand-off."""
    order = factories.order(seller)

    for order_id in (str(order.id).translate(OTHER_DIGITS), "²"):
        for response in (
            api.get(f"/orders/{order_id}"),
            api.post(f"/orders/{order_id}/renew"),
            api.post(f"/orders/{order_id}/collection"),
        ):
            assert response.status_code == 404, (order_id, response.status_code)
            assert matches(response.get_json(), "Error")["error"]["code"] == "not_found"


# --- renewing -----------------------------------------------------------------------------------


def test_renewing_before_the_third_failure_or_a_sepa_order_is_refused_with_the_reason(api, seller):
    """409 with the rule's reason: too early while attempt 2 is still to come; never for SEPA."""
    T = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    card = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    sepa = factories.order(seller, payment=factories.sepa())
    run_due_work(T)

    retry = (T + dt.timedelta(days=7)).isoformat().replace("+00:00", "Z")
    shown = api.get(f"/orders/{card.id}").get_json()
    assert shown["next_attempt"] == {"installment": 1, "number": 2, "kind": "automatic", "due_at": retry}
    response = api.post(f"/orders/{card.id}/renew")
    assert response.status_code == 409
    error = matches(response.get_json(), "Error")["error"]
    assert error["code"] == "too_early"
    assert "1 of 3" in error["message"]

    response = api.post(f"/orders/{sepa.id}/renew")
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "sepa")


def test_a_renewal_after_three_failures_is_charged_at_once_and_its_outcome_shows_in_the_order(api, seller):
    """Three failures over 14 days interrupt the plan; the renewal is accepted once, and its failure lists it."""
    T = utcnow().replace(microsecond=0) - dt.timedelta(days=15)
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    for day in (0, 7, 14):
        run_due_work(T + dt.timedelta(days=day))

    shown = matches(api.get(f"/orders/{order.id}").get_json(), "Order")
    assert shown["status"] == "interrupted"
    assert shown["next_attempt"] is None
    assert [(a["number"], a["status"], a["failure_code"]) for a in shown["installments"][0]["attempts"]] == [
        (1, "failed", "insufficient_funds"),
        (2, "failed", "insufficient_funds"),
        (3, "failed", "insufficient_funds"),
    ]

    accepted = api.post(f"/orders/{order.id}/renew")
    assert accepted.status_code == 202, accepted.get_json()
    renewal = matches(accepted.get_json(), "Renewal")
    assert (renewal["order_id"], renewal["installment"]) == (order.id, 1)
    assert (renewal["attempt"]["number"], renewal["attempt"]["kind"]) == (4, "renewal")
    again = api.post(f"/orders/{order.id}/renew")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "already_renewed")

    run_due_work(utcnow())

    shown = matches(api.get(f"/orders/{order.id}").get_json(), "Order")
    assert [(a["number"], a["kind"], a["status"]) for a in shown["installments"][0]["attempts"]][-1] == (
        4,
        "renewal",
        "failed",
    )
    assert shown["status"] == "collections"
    assert shown["collections"]["state"] == "listed"
    assert shown["collections"]["reason"] == "the fourth and final attempt failed"


# --- collections --------------------------------------------------------------------------------


def test_a_hand_off_is_recorded_listed_and_never_made_twice(api, seller):
    """A failed SEPA debit is listed; the hand-off records when, which installments and how much, once."""
    T = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    active = factories.order(seller, anchor=T + dt.timedelta(days=30))
    run_due_work(T)

    listed = matches(api.get("/collections").get_json(), "CollectionList")
    assert [(c["order"]["id"], c["collection"]["state"]) for c in listed["collections"]] == [(order.id, "listed")]
    assert listed["timezone"] == "Europe/Berlin"

    handed = api.post(f"/orders/{order.id}/collection")
    assert handed.status_code == 201, handed.get_json()
    collection = matches(handed.get_json(), "HandOff")["collection"]
    assert (collection["state"], collection["installments"], collection["amount"]) == ("handed_off", [1], "30.00")
    assert collection["delivered_at"] is None

    again = api.post(f"/orders/{order.id}/collection")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "already_handed_off")
    assert CollectionCase.select().count() == 1
    refused = api.post(f"/orders/{active.id}/collection")
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "not_in_collections")

    listed = api.get("/collections").get_json()
    assert [c["collection"] for c in listed["collections"]] == [collection]
    shown = api.get(f"/orders/{order.id}").get_json()
    assert (shown["status"], shown["collections"]) == ("handed_off", collection)
    assert {i["status"] for i in shown["installments"]} == {"handed_off"}


def test_the_collections_list_shows_each_listed_orders_open_debt_now(api, seller):
    """R9: a listed order shows the installments due by now and unpaid, and their sum, not null."""
    T = utcnow().replace(microsecond=0) - dt.timedelta(days=8)
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T, interval="weekly")
    run_due_work(T)

    [entry] = matches(api.get("/collections").get_json(), "CollectionList")["collections"]

    # Installment 2 fell due a day ago: it is part of the debt though it was never charged.
    assert (entry["order"]["id"], entry["collection"]["installments"]) == (order.id, [1, 2])
    assert entry["collection"]["amount"] == "60.00"
    assert matches(api.get(f"/orders/{order.id}").get_json(), "Order")["collections"] == entry["collection"]


# --- plan changes -------------------------------------------------------------------------------


def test_a_plan_change_is_pending_in_the_order_and_the_customer_is_emailed(api, inbox):
    """R3: the new amount waits for the customer, who gets a confirmation link at once."""
    order = api.post("/orders", api.order_body()).get_json()

    response = api.post(f"/orders/{order['id']}/plan-change", {"amount": "40.00"})
    run_due_work(utcnow())

    assert response.status_code == 201, response.get_json()
    change = matches(response.get_json(), "ProposedPlanChange")
    assert (change["status"], change["old_amount"], change["new_amount"]) == ("pending", "30.00", "40.00")
    assert change["first_due_at"] == "2027-01-31T08:00:00Z"
    shown = matches(api.get(f"/orders/{order['id']}").get_json(), "Order")
    assert shown["pending_change"] == {k: v for k, v in change.items() if k != "timezone"}
    (email,) = inbox.to("claire@example.com")
    assert "/confirm/" in email.get_body(("plain",)).get_content()


def test_the_order_shows_when_its_pending_change_was_recalled_to_the_customer(api):
    """R15: unanswered 168 hours after the proposal, the change is reminded; the order says when."""
    order = api.post("/orders", api.order_body()).get_json()
    change = api.post(f"/orders/{order['id']}/plan-change", {"amount": "40.00"}).get_json()
    assert change["reminded_at"] is None

    week_later = dt.datetime.fromisoformat(change["proposed_at"]) + dt.timedelta(hours=168)
    run_due_work(week_later)

    shown = matches(api.get(f"/orders/{order['id']}").get_json(), "Order")["pending_change"]
    assert (shown["status"], shown["reminded_at"]) == ("pending", week_later.isoformat().replace("+00:00", "Z"))


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"amount": "1.99"}, 409, "below_minimum"),
        ({"amount": "30.00"}, 409, "unchanged"),
        ({"amount": "40.00", "installment_count": 6}, 409, "count_fixed"),
        ({"amount": "40.00", "interval": "weekly"}, 409, "interval_fixed"),
        ({"amount": "1,99"}, 422, "invalid"),
        ({"amount": "abc"}, 422, "invalid"),
        ({"amount": "30000000"}, 422, "invalid"),
        ({"amount": "35.00", "count": 3}, 422, "invalid"),
        ({}, 422, "invalid"),
    ],
)
def test_a_plan_change_breaking_a_rule_is_refused_with_the_reason_and_changes_nothing(api, body, status, reason):
    """At least 2.00, a different amount, count and interval fixed, a well-formed amount."""
    order = api.post("/orders", api.order_body()).get_json()

    response = api.post(f"/orders/{order['id']}/plan-change", body)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == reason
    assert api.get(f"/orders/{order['id']}").get_json()["pending_change"] is None


def test_an_unknown_api_path_or_method_answers_json(api):
    """Clients never have to parse an HTML error page."""
    missing = api.get("/nothing-here")
    wrong_method = api.client.delete("/api/v1/products", headers=api.headers)

    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.get_json()["error"]["code"]) == (405, "method_not_allowed")


# --- the document -------------------------------------------------------------------------------


def test_the_openapi_document_is_served_without_a_key_valid_and_describes_every_route(client, app):
    """/api/v1/openapi.json is valid OpenAPI 3.1, and its paths are exactly the API's routes."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)

    routes = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1")), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == routes
