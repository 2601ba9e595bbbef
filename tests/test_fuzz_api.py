"""The seller API under Hypothesis: bodies shaped like its OpenAPI document's, with junk in every field.

Never a 5xx; a value the document or SPEC refuses (a control character, a superscript digit, an expired card,
an unknown field) gets a 4xx; a 4xx changes no row of any table.
"""

import datetime as dt
from decimal import Decimal
from urllib.parse import quote, urlencode

from hypothesis import example, given
from hypothesis import strategies as st

from billing.plans import MAX_INSTALLMENTS
from runtime import utcnow
from tests import factories
from tests.fuzzing import (
    BAD_AMOUNTS,
    BAD_CURRENCIES,
    BAD_IDS,
    BAD_TIMES,
    CONTROL,
    FUZZ,
    MISSING,
    NON_ASCII_DIGITS,
    UNKNOWN_FIELDS,
    Draft,
    check_answer,
    fresh_example,
    texts,
    with_control,
    with_odd_digit,
)
from tests.test_pages_links import snapshot

AMOUNT_PATTERN = r"\A[0-9]{1,9}(\.[0-9]{1,2})?\Z"
# A JSON number with a fraction is read as a Decimal; zero and fractions of a cent are refused.
BAD_ORDER_AMOUNTS = BAD_AMOUNTS | st.sampled_from(["0", "0.00", 0, "0.001"])
NOT_TEXT = st.sampled_from([5, True, [], {}, 1.5])


class TheProduct:
    """Stands for the id of the product each example makes."""

    def __repr__(self):
        return "TheProduct()"


class TheirProduct:
    """Stands for the id of another seller's product."""

    def __repr__(self):
        return "TheirProduct()"


def text_field(draft, target, name, good, max_length):
    draft.put(
        target,
        name,
        good,
        odd=texts(max_length),
        bad=with_control()
        | NOT_TEXT
        | st.sampled_from(["", "   ", MISSING])
        | st.text(min_size=max_length + 1, max_size=max_length + 5).filter(lambda t: len(t.strip()) > max_length),
    )


def email_field(draft, target, name, good, required=True):
    draft.put(
        target,
        name,
        good,
        odd=st.emails(),
        bad=st.one_of(
            st.sampled_from(["no-at-sign", "", "@", "a@", "a b@example.com"]),
            st.builds(lambda local, c: f"{local}{c}@example.com", st.just("sales"), CONTROL),
            NOT_TEXT,
            *([st.just(MISSING)] if required else []),
        ),
    )


def unknown_fields(draft, target: dict):
    """SPEC: a body field the API does not know is refused (422 naming it)."""
    extra = draft.pick("unknown fields", st.just({}), bad=UNKNOWN_FIELDS.filter(lambda e: not e.keys() & target.keys()))
    target |= extra


@st.composite
def products(draw):
    draft = Draft(draw)
    body = {}
    text_field(draft, body, "name", st.just("Python course"), 200)
    email_field(draft, body, "notification_email", st.just("sales@example.com"))
    email_field(draft, body, "support_email", st.just(MISSING), required=False)
    draft.put(body, "sepa_retry", st.just(MISSING), odd=st.booleans(), bad=st.sampled_from(["yes", 1, "true", []]))
    draft.put(
        body, "reminder_days", st.just(MISSING), odd=st.integers(1, 14), bad=st.sampled_from(["3", -1, True, 1.5, "²"])
    )
    unknown_fields(draft, body)
    return body, draft.refused


def expiry(draft, card: dict):
    """A card's expiry: one that ended before this month is refused, as the card page refuses it."""
    today = utcnow()
    month = draft.put(
        card,
        "payment_method.exp_month",
        st.just(12),
        odd=st.integers(1, 12),
        bad=st.sampled_from([0, 13, "12", True, 1.5, MISSING]),
    )
    year = draft.put(
        card,
        "payment_method.exp_year",
        st.just(today.year + 3),
        odd=st.integers(2000, 2099),
        bad=st.sampled_from([1999, 2100, "2030", True, MISSING]),
    )
    if isinstance(month, int) and isinstance(year, int) and (year, month) < (today.year, today.month):
        draft.refuse(f"expired card {month:02d}/{year}")


def payment_method(draft):
    kind = draft.pick(
        "payment_method.type", st.sampled_from(["card", "sepa"]), bad=st.sampled_from(["paypal", "", 5, MISSING])
    )
    method = {} if kind is MISSING else {"type": kind}
    if kind == "sepa":
        draft.put(
            method,
            "payment_method.iban",
            st.sampled_from([factories.IBAN_OK, "DE89 3704 0044 0532 0130 00"]),
            odd=texts(42),
            bad=with_control(st.just("DE89")) | NOT_TEXT | st.just(MISSING),
        )
    else:
        draft.put(
            method,
            "payment_method.number",
            st.sampled_from([factories.SUCCEEDS, "4242 4242 4242 4242"]),
            odd=st.sampled_from([factories.DECLINED, factories.INSUFFICIENT_FUNDS])
            | st.from_regex(r"\A[0-9]{12,19}\Z"),
            bad=with_odd_digit(factories.SUCCEEDS)
            | with_control(st.just("4242"))
            | st.sampled_from([4242424242424242, "", MISSING]),
        )
        expiry(draft, method)
    unknown_fields(draft, method)
    return method


@st.composite
def orders(draw):
    draft = Draft(draw)
    now = utcnow().replace(tzinfo=None)
    customer = {}
    text_field(draft, customer, "customer.name", st.sampled_from(["Claire Dubois", "Jürgen Zoë"]), 200)
    email_field(draft, customer, "customer.email", st.just("claire@example.com"))
    draft.put(
        customer,
        "customer.language",
        st.sampled_from(["fr", "de", "en"]),
        odd=st.just(MISSING),
        bad=st.sampled_from(["es", "FR", 5, ""]),
    )
    unknown_fields(draft, customer)
    body = {}
    draft.put(body, "product_id", st.builds(TheProduct), bad=BAD_IDS | st.builds(TheirProduct) | st.just(MISSING))
    draft.put(body, "customer", st.just(customer), bad=st.sampled_from([MISSING, "Claire", []]))
    text_field(draft, body, "invoice_number", st.just("INV-2027-001"), 100)
    plan = draft.put(
        body,
        "plan",
        st.just("installments"),
        odd=st.just("subscription"),
        bad=st.sampled_from(["lifetime", "", 5, MISSING]),
    )
    draft.put(
        body,
        "installment_count",
        st.just(3) if plan == "installments" else st.just(MISSING),
        odd=st.integers(2, MAX_INSTALLMENTS) if plan == "installments" else st.integers(2, 5),
        bad=st.sampled_from([1, 0, -1, "3", True, 3.5, MAX_INSTALLMENTS + 1, "²"])
        | (st.just(MISSING) if plan == "installments" else st.nothing()),
    )
    draft.put(
        body,
        "interval",
        st.sampled_from(["monthly", "weekly"]),
        bad=st.sampled_from(["daily", "MONTHLY", "", 5, MISSING]),
    )
    draft.put(
        body,
        "amount",
        st.just("30.00"),
        odd=st.from_regex(AMOUNT_PATTERN).filter(lambda a: Decimal(a) > 0),
        bad=BAD_ORDER_AMOUNTS | st.just(MISSING),
    )
    draft.put(body, "currency", st.just(MISSING), odd=st.sampled_from(["EUR", "USD", "GBP", "CHF"]), bad=BAD_CURRENCIES)
    draft.put(
        body,
        "first_due_at",
        st.just(MISSING),
        odd=st.builds(
            lambda ahead, zone: (now + ahead).replace(tzinfo=dt.UTC).astimezone(zone).isoformat(),
            st.timedeltas(dt.timedelta(hours=-23), dt.timedelta(days=3650)),
            st.sampled_from(
                [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-9, minutes=-30))]
            ),
        ),
        bad=BAD_TIMES
        | st.builds(
            lambda back: (now - back).replace(tzinfo=dt.UTC).isoformat(),
            st.timedeltas(dt.timedelta(hours=25), dt.timedelta(days=3650)),
        ),
    )
    body["payment_method"] = payment_method(draft)
    unknown_fields(draft, body)
    return body, draft.refused


def resolved(value, product_id: int, their_product_id: int):
    if isinstance(value, TheProduct):
        return product_id
    if isinstance(value, TheirProduct):
        return their_product_id
    if isinstance(value, dict):
        return {k: resolved(v, product_id, their_product_id) for k, v in value.items()}
    return value


def authorised(seller) -> dict:
    return {"Authorization": f"Bearer {seller.api_key}"}


def two_sellers():
    """A fresh seller with a product and an active order, and another seller's order beside it."""
    with fresh_example():
        owner = factories.seller()
        order = factories.order(owner, anchor=utcnow() + dt.timedelta(days=2))
        other = factories.seller("Bob Lessons")
        theirs = factories.order(other, anchor=utcnow() + dt.timedelta(days=2))
    return owner, order, theirs


def post(client, seller, path, body):
    return client.post(f"/api/v1{path}", json=body, headers=authorised(seller))


def good_order(**fields):
    base = {
        "product_id": TheProduct(),
        "customer": {"name": "Claire Dubois", "email": "claire@example.com", "language": "fr"},
        "invoice_number": "INV-2027-001",
        "plan": "installments",
        "installment_count": 3,
        "interval": "monthly",
        "amount": "30.00",
        "payment_method": {"type": "card", "number": factories.SUCCEEDS, "exp_month": 12, "exp_year": 2030},
    }
    return base | fields


def refused(body, *reasons):
    return body, list(reasons)


@FUZZ
@given(products())
@example(refused({"name": "Python\x00course", "notification_email": "sales@example.com"}, "NUL in name"))
@example(refused({"name": "Python course", "notification_email": "sales\x00@example.com"}, "NUL in email"))
@example(
    refused({"name": "Python course", "notification_email": "sales@example.com", "colour": "red"}, "unknown field")
)
def test_a_product_body_of_any_shape_gets_no_5xx_and_a_refusal_changes_nothing(client, drawn):
    """POST /products: control characters, wrong types and unknown fields get a 4xx that changes nothing."""
    body, reasons = drawn
    owner, _order, _theirs = two_sellers()
    before = snapshot()

    check_answer(post(client, owner, "/products", body), before, reasons)


@FUZZ
@given(orders())
@example(refused(good_order(customer={"name": "Claire\x00", "email": "claire@example.com"}), "NUL in customer.name"))
@example(refused(good_order(customer={"name": "Claire", "email": "cl\x00aire@example.com"}), "NUL in customer.email"))
@example(refused(good_order(invoice_number="INV\x00001"), "NUL in invoice_number"))
@example(refused(good_order(currency="XYZ"), "currency XYZ"))
@example(refused(good_order(amount="30.00\n"), "amount with a newline"))
@example(refused(good_order(amount="٣٠.٠٠"), "Arabic-Indic digits"))
@example(refused(good_order(amount="３０"), "full-width digits"))
@example(refused(good_order(product_id="²"), "superscript product_id"))
@example(
    refused(
        good_order(payment_method={"type": "card", "number": factories.SUCCEEDS, "exp_month": 1, "exp_year": 2020}),
        "card expired 01/2020",
    )
)
@example(
    refused(
        good_order(payment_method={"type": "card", "number": "4242 4242 4242 424²", "exp_month": 12, "exp_year": 2030}),
        "superscript card number",
    )
)
@example(
    refused(
        good_order(first_due_at=(dt.datetime.now(dt.UTC) - dt.timedelta(days=730)).isoformat()),
        "first_due_at 2 years back",
    )
)
@example(refused(good_order(first_due_at="0001-01-01T00:00:00+01:00"), "first_due_at year 1"))
@example(refused(good_order(first_due_at="9999-12-31T23:59:59-01:00"), "first_due_at year 9999"))
def test_an_order_body_of_any_shape_gets_no_5xx_and_a_refusal_changes_nothing(client, drawn):
    """POST /orders: each refused value (NUL, odd digits, XYZ, an expired card, a start long past): a 4xx, no row."""
    body, reasons = drawn
    owner, order, theirs = two_sellers()
    before = snapshot()

    response = post(client, owner, "/orders", resolved(body, order.product_id, theirs.product_id))

    check_answer(response, before, reasons)


@st.composite
def plan_changes(draw):
    draft = Draft(draw)
    body = {}
    draft.put(
        body,
        "amount",
        st.just("40.00"),
        # 2.00 is the least a plan change may set (R3): "2" is allowed, "1.99" is not.
        odd=st.from_regex(AMOUNT_PATTERN).filter(lambda a: Decimal(a) >= 2 and Decimal(a) != 30) | st.just(40),
        bad=BAD_ORDER_AMOUNTS | st.sampled_from(["30.00", "30", "1.99", "1", MISSING]),
    )
    # The order has 3 monthly installments: the same values are odd, other ones are refused saying so.
    draft.put(
        body, "installment_count", st.just(MISSING), odd=st.just(3), bad=st.sampled_from([4, 2, "3", True, 0, "²"])
    )
    draft.put(
        body, "interval", st.just(MISSING), odd=st.just("monthly"), bad=st.sampled_from(["weekly", 5, "", "daily"])
    )
    unknown_fields(draft, body)
    return body, draft.refused


@FUZZ
@given(plan_changes())
@example(refused({"amount": "40.00\n"}, "amount with a newline"))
@example(refused({"amount": "٤٠.٠٠"}, "Arabic-Indic digits"))
@example(refused({"amount": "4²"}, "superscript digit"))
def test_a_plan_change_body_of_any_shape_gets_no_5xx_and_a_refusal_changes_nothing(client, drawn):
    """POST /orders/<id>/plan-change: odd amounts, a new count or interval, unknown fields: a 4xx, nothing changed."""
    body, reasons = drawn
    owner, order, _theirs = two_sellers()
    before = snapshot()

    check_answer(post(client, owner, f"/orders/{order.id}/plan-change", body), before, reasons)


PATHS = ["GET /orders/{}", "POST /orders/{}/renew", "POST /orders/{}/collection", "POST /orders/{}/plan-change"]


@st.composite
def order_paths(draw):
    draft = Draft(draw)
    order_id = draft.pick(
        "order id",
        st.just("mine"),
        odd=st.integers(1, 2**63 - 1).map(str),
        bad=BAD_IDS.map(str) | st.just("theirs") | st.sampled_from(["%C2%B2", "1%00", "..", "1;2", "%2F"]),
    )
    return draw(st.sampled_from(PATHS), label="route"), order_id, draft.refused


@FUZZ
@given(order_paths())
@example(("GET /orders/{}", "²", ["superscript id"]))
@example(("POST /orders/{}/renew", "²", ["superscript id"]))
@example(("POST /orders/{}/plan-change", "٣", ["Arabic-Indic digit"]))
@example(("GET /orders/{}", str(2**64), ["id past 64 bits"]))
def test_an_order_path_with_any_id_gets_no_5xx_and_a_refusal_changes_nothing(client, drawn):
    """Odd ids in the order routes (superscripts, past 64 bits, another seller's): a 4xx, nothing changed."""
    route, order_id, reasons = drawn
    owner, order, theirs = two_sellers()
    segment = {"mine": str(order.id), "theirs": str(theirs.id)}.get(order_id, order_id)
    method, _, path = route.partition(" ")
    before = snapshot()

    response = client.open(
        "/api/v1" + path.format(quote(segment, safe="%")),
        method=method,
        json={"amount": "40.00"} if method == "POST" else None,
        headers=authorised(owner),
    )

    check_answer(response, before, reasons)


@st.composite
def order_queries(draw):
    draft = Draft(draw)
    params = {}
    draft.put(params, "q", st.sampled_from(["Claire", "jurgen", "INV-", MISSING]), odd=texts(100), bad=with_control())
    draft.put(
        params,
        "limit",
        st.just(MISSING),
        odd=st.integers(1, 100).map(str),
        bad=st.sampled_from(["0", "-1", "abc", "", "99999999999999999999999"]) | NON_ASCII_DIGITS,
    )
    draft.put(params, "starting_after", st.just(MISSING), odd=st.integers(1, 2**63 - 1).map(str), bad=BAD_IDS.map(str))
    draft.put(
        params,
        "status",
        st.just(MISSING),
        odd=st.sampled_from(["active", "interrupted", "collections", "handed_off", "completed"]),
        bad=st.sampled_from(["bogus", "", "ACTIVE"]),
    )
    return params, draft.refused


@FUZZ
@given(order_queries())
@example(({"q": "Claire\x00"}, ["NUL in q"]))
@example(({"q": "²"}, []))
@example(({"limit": "²"}, ["superscript limit"]))
def test_an_order_search_or_listing_with_any_query_gets_no_5xx_and_changes_nothing(client, drawn):
    """GET /orders?q=…&limit=…&starting_after=…&status=…: no 5xx, a refused value a 4xx; a GET changes nothing."""
    params, reasons = drawn
    owner, _order, _theirs = two_sellers()
    before = snapshot()

    response = client.get(f"/api/v1/orders?{urlencode(params)}", headers=authorised(owner))

    check_answer(response, before, reasons)
    assert snapshot() == before
