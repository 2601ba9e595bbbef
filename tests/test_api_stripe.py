"""POST /api/v1/orders with GATEWAY=stripe: the customer's Stripe PaymentMethod, attached to their Stripe Customer,
through localstripe; where localstripe does not act as Stripe does, through recorded answers (tests/stripe_api.py)."""

import datetime as dt

import pytest

from gateways.stripe import CARD_DATA_REFUSED
from jobs.work import run_due_work
from models import ChargeAttempt, Customer, Installment, Order
from runtime import utcnow
from tests import factories
from tests.stripe_api import recorded
from tests.test_api import Api
from tests.test_gateway_stripe import ATTACHES_THEN_FAILS, CARD, sepa


@pytest.fixture
def api(client):
    return Api(client, factories.seller().api_key)


def with_payment_method(api: Api, payment_method: dict, **customer) -> dict:
    body = api.order_body()
    body["customer"].update(customer)
    return {**body, "first_due_at": utcnow().isoformat(), "payment_method": payment_method}


def nothing_created() -> bool:
    return Order.select().count() == 0 and Customer.select().count() == 0


# --- through localstripe ------------------------------------------------------------------------------------------


def test_an_order_with_a_stripe_card_attaches_it_to_a_new_stripe_customer_and_keeps_only_brand_last4_expiry(
    api, localstripe
):
    made = localstripe.client.v1.payment_methods.create(CARD)  # type: ignore[arg-type]

    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": made.id}))

    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["payment_method"] == {
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    customer = Customer.get()
    at_stripe = localstripe.client.v1.customers.retrieve(customer.gateway_customer_id)
    assert (at_stripe.email, at_stripe.name) == ("claire@example.com", "Claire Dubois")
    assert localstripe.client.v1.payment_methods.retrieve(made.id).customer == customer.gateway_customer_id
    order = Order.get()
    assert (order.card_token, order.card_brand, order.card_last4) == (made.id, "visa", "4242")


def test_a_second_order_of_the_same_email_reuses_the_stripe_customer_of_the_first(api, localstripe):
    """One person paying two orders is one Stripe Customer with both cards, whatever the case of the address."""
    first, second = (localstripe.client.v1.payment_methods.create(CARD) for _ in range(2))  # type: ignore[arg-type]
    assert api.post("/orders", with_payment_method(api, {"type": "card", "token": first.id})).status_code == 201

    body = with_payment_method(api, {"type": "card", "token": second.id}, email="Claire@Example.com")
    assert api.post("/orders", {**body, "invoice_number": "INV-2"}).status_code == 201

    one, two = (c.gateway_customer_id for c in Customer.select().order_by(Customer.id))
    assert one == two
    assert len(localstripe.client.v1.customers.list().data) == 1


def test_a_payment_method_the_sellers_checkout_attached_already_keeps_its_stripe_customer(api, localstripe):
    customer, attached = localstripe.customer_with(CARD)

    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": attached.id}))

    assert answer.status_code == 201, answer.get_json()
    assert Customer.get().gateway_customer_id == customer
    assert len(localstripe.client.v1.customers.list().data) == 1


def test_a_sepa_payment_method_keeps_the_masked_iban_and_its_id_for_the_mandate(api, localstripe):
    made = localstripe.client.v1.payment_methods.create(sepa("DE89370400440532013000"))  # type: ignore[arg-type]

    answer = api.post("/orders", with_payment_method(api, {"type": "sepa", "token": made.id}))

    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["payment_method"] == {"type": "sepa", "iban": "DE** **** 3000"}
    order = Order.get()
    assert (order.method, order.sepa_mandate, order.card_token) == ("sepa", made.id, None)


def test_a_card_stripe_refuses_to_attach_is_refused_naming_payment_method_with_stripes_reason_and_creates_nothing(
    api, localstripe
):
    """localstripe refuses 4000000000000002 at attach, as card_declined."""
    made = localstripe.client.v1.payment_methods.create(  # type: ignore[arg-type]
        {**CARD, "card": {**CARD["card"], "number": "4000000000000002"}}
    )

    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": made.id}))

    assert answer.status_code == 409
    assert answer.get_json()["error"] == {
        "code": "refused",
        "field": "payment_method",
        "message": f"Stripe refused {made.id}: Your card was declined.",
    }
    assert nothing_created()


@pytest.mark.parametrize(
    ("payment_method", "says"),
    [
        ({"type": "card", "token": "pm_NoSuchOne"}, "Stripe has no PaymentMethod pm_NoSuchOne for this account."),
        ({"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}, CARD_DATA_REFUSED),
        ({"type": "sepa", "iban": "DE89370400440532013000"}, CARD_DATA_REFUSED),
    ],
)
def test_a_payment_method_stripe_does_not_have_or_raw_card_data_is_refused_naming_payment_method(
    api, localstripe, payment_method, says
):
    answer = api.post("/orders", with_payment_method(api, payment_method))

    assert answer.status_code == 409
    assert answer.get_json()["error"] == {"code": "refused", "field": "payment_method", "message": says}
    assert nothing_created()


def test_a_sepa_payment_method_given_as_a_card_is_refused_and_attaches_nothing(api, localstripe):
    made = localstripe.client.v1.payment_methods.create(sepa("DE89370400440532013000"))  # type: ignore[arg-type]

    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": made.id}))

    assert answer.status_code == 409
    assert answer.get_json()["error"]["message"] == f"{made.id} is a sepa_debit PaymentMethod, not a card one."
    assert localstripe.client.v1.payment_methods.retrieve(made.id).customer is None
    assert nothing_created()


def test_an_order_made_through_the_api_on_a_card_that_declines_goes_through_three_attempts_and_the_renewal(
    api, client, localstripe
):
    """4000000000000341 attaches, then localstripe declines every charge: R5's ladder, R6 and R7 on Stripe."""
    made = localstripe.client.v1.payment_methods.create(ATTACHES_THEN_FAILS)  # type: ignore[arg-type]
    start = utcnow()
    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": made.id}))
    assert answer.status_code == 201, answer.get_json()
    order_id = answer.get_json()["id"]

    for day in (0, 7, 14):
        run_due_work(start + dt.timedelta(days=day, minutes=1))
    assert Order.get_by_id(order_id).status == Order.INTERRUPTED

    renewal = api.post(f"/orders/{order_id}/renew")
    assert renewal.status_code == 202, renewal.get_json()
    run_due_work(start + dt.timedelta(days=14, minutes=2))

    sent = localstripe.payment_intents()
    assert len(sent) == 4
    assert {(p.status, p.payment_method, p.customer) for p in sent} == {
        ("requires_payment_method", made.id, Customer.get().gateway_customer_id)
    }
    assert [
        (a.kind, a.number, a.status, a.failure_code) for a in ChargeAttempt.select().order_by(ChargeAttempt.id)
    ] == [
        ("automatic", 1, "failed", "card_declined"),
        ("automatic", 2, "failed", "card_declined"),
        ("automatic", 3, "failed", "card_declined"),
        ("renewal", 4, "failed", "card_declined"),
    ]
    assert Installment.get(Installment.order == order_id, Installment.number == 1).status == Installment.OPEN


def test_a_payment_method_token_with_the_sandbox_gateway_is_refused_naming_payment_method(api):
    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": "pm_1Abc"}))

    assert answer.status_code == 409
    assert answer.get_json()["error"]["field"] == "payment_method"
    assert "sandbox" in answer.get_json()["error"]["message"]
    assert nothing_created()


@pytest.mark.parametrize(
    ("payment_method", "field"),
    [
        ({"type": "card", "token": "tok_visa"}, "payment_method.token"),
        ({"type": "card", "token": "pm_"}, "payment_method.token"),
        ({"type": "card", "token": "pm_1Abc", "number": "4242424242424242"}, "payment_method.number"),
        ({"type": "paypal", "token": "pm_1Abc"}, "payment_method.type"),
        ({"type": "paypal"}, "payment_method.type"),
        ("pm_1Abc", "payment_method.type"),
    ],
)
def test_a_payment_method_the_document_does_not_allow_is_422_naming_the_field(api, payment_method, field):
    answer = api.post("/orders", with_payment_method(api, payment_method))

    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]["field"] == field
    assert nothing_created()


# --- recorded answers: what localstripe does not do as Stripe does ------------------------------------------------


def test_the_stripe_customer_is_made_with_an_idempotency_key_so_a_request_sent_again_makes_one(api, stripe_api):
    """localstripe ignores Idempotency-Key: the recorded server shows the key Tranche sends."""
    for _ in range(2):
        stripe_api.answer("GET", "/v1/payment_methods/pm_Recorded0002", recorded("payment_method__card"))
        stripe_api.answer("POST", "/v1/customers", recorded("customer"))
        stripe_api.answer(
            "POST", "/v1/payment_methods/pm_Recorded0002/attach", recorded("payment_method__card_attached")
        )
    body = with_payment_method(api, {"type": "card", "token": "pm_Recorded0002"})

    assert api.post("/orders", body).status_code == 201
    assert api.post("/orders", {**body, "invoice_number": "INV-2"}).status_code == 201

    made = stripe_api.sent("POST", "/v1/customers")
    assert len(made) == 1  # the second order found the first's customer in Tranche's own rows
    assert made[0].fields == {"name": "Claire Dubois", "email": "claire@example.com"}
    assert made[0].headers["Idempotency-Key"].startswith("tranche-customer-")
    assert "claire" not in made[0].headers["Idempotency-Key"].lower()
    assert stripe_api.sent("POST", "/v1/payment_methods/pm_Recorded0002/attach")[1].fields == {
        "customer": "cus_Recorded0002"
    }


def test_a_decline_at_attach_is_refused_with_stripes_message(api, stripe_api):
    """localstripe declines at attach without a decline code; Stripe's own answer carries generic_decline."""
    stripe_api.answer("GET", "/v1/payment_methods/pm_Recorded0002", recorded("payment_method__card"))
    stripe_api.answer("POST", "/v1/customers", recorded("customer"))
    stripe_api.answer(
        "POST", "/v1/payment_methods/pm_Recorded0002/attach", recorded("card_error__attach_generic_decline"), 402
    )

    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": "pm_Recorded0002"}))

    assert answer.status_code == 409
    assert answer.get_json()["error"]["message"] == "Stripe refused pm_Recorded0002: Your card was declined."
    assert nothing_created()


def test_stripe_not_answering_is_503_saying_nothing_was_created(api, stripe_api):
    """The SDK sends a 500 again three times; after the fourth Tranche says so and keeps nothing."""
    for _ in range(4):
        stripe_api.answer("GET", "/v1/payment_methods/pm_Recorded0002", recorded("api_error"), 500)

    answer = api.post("/orders", with_payment_method(api, {"type": "card", "token": "pm_Recorded0002"}))

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.get_json()["error"]["code"] == "gateway_unavailable"
    assert "Nothing was created" in answer.get_json()["error"]["message"]
    assert nothing_created()
