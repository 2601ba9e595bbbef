"""POST /webhooks/stripe: Stripe-shaped events signed with stripe.WebhookSignature, each saying why it stands in
for localstripe; duplicates, either order of Stripe's answer and its webhook; the 400 and 401 paths."""

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from stripe import WebhookSignature

from billing import charging
from gateways import get_gateway
from jobs.work import run_due_work
from models import ChargeAttempt, GatewayEvent, Installment, Order
from runtime import settings
from tests import factories
from tests.stripe_api import recorded

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
# The recorded events' time (created): a minute after the charge.
REPORTED = T + dt.timedelta(minutes=1)
FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
PAYMENT_INTENT = "pi_3QfRecorded0001"

# Why each recorded event stands in for one of localstripe's own.
WHY = {
    "payment_intent.succeeded__card": "localstripe's event bodies lack Stripe's fields (amount_received, livemode)",
    "payment_intent.succeeded__sepa": "localstripe settles SEPA in a second, never after days of `processing`",
    "payment_intent.payment_failed__insufficient_funds": "localstripe declines every card as card_declined",
    "payment_intent.payment_failed__do_not_try_again": "localstripe gives no advice_code",
    "payment_intent.payment_failed__lost_card": "localstripe refuses 9987 at attach: no lost_card reaches a charge",
    "payment_intent.payment_failed__sepa": "localstripe fails SEPA as card_declined, not insufficient_funds",
    "payment_intent.created": "localstripe sends only the events it is told to: this is one Tranche does not use",
}
# What the first attempt and the order look like once the event is applied: (status, failure code), order status.
EXPECTED = {
    "payment_intent.succeeded__card": (("succeeded", None), "active"),
    "payment_intent.succeeded__sepa": (("succeeded", None), "active"),
    "payment_intent.payment_failed__insufficient_funds": (("failed", "insufficient_funds"), "active"),
    # Hard declines (SPEC "Declines"): the plan is interrupted at once.
    "payment_intent.payment_failed__do_not_try_again": (("failed", "generic_decline"), "interrupted"),
    "payment_intent.payment_failed__lost_card": (("failed", "lost_card"), "interrupted"),
    "payment_intent.payment_failed__sepa": (("failed", "insufficient_funds"), "collections"),
}


def event_body(fixture: str, order: Order | None, **payment_intent) -> str:
    """The recorded event, its PaymentIntent naming `order`'s first attempt (or no Tranche attempt at all)."""
    event = json.loads((FIXTURES / f"{fixture}.json").read_text())
    event["data"]["object"].update(payment_intent)
    if order is None:
        event["data"]["object"]["metadata"] = {}
    else:
        event["data"]["object"]["metadata"].update(
            tranche_order_id=str(order.id), tranche_attempt=f"tranche-{order.id}-1-automatic-1"
        )
    return json.dumps(event)


def signed(body: str, secret: str | None = None, timestamp: int | None = None) -> dict:
    header = WebhookSignature.generate_signature_header(body, secret or settings().stripe_webhook_secret, timestamp)
    return {"Content-Type": "application/json", "Stripe-Signature": header}


def post(client, body: str | bytes, headers: dict):
    return client.post("/webhooks/stripe", data=body if isinstance(body, bytes) else body.encode(), headers=headers)


def in_flight(method: str = "card") -> tuple[Order, charging.ChargeRequest]:
    """A Stripe order whose first installment was sent at T: the webhook is what the test posts."""
    order = factories.stripe_order("cus_Recorded0001", method)
    (attempt,) = factories.open_due(T)
    request = charging.claim_attempt(attempt.id, T)
    assert request is not None
    return order, request


def first_attempt(order: Order) -> ChargeAttempt:
    return ChargeAttempt.select().join(Installment).where(Installment.order == order, ChargeAttempt.number == 1).get()


def test_every_recorded_event_says_why_it_stands_in_for_localstripe():
    """No fixture beside these tests goes without its reason, nor untested."""
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(WHY)
    assert sorted(EXPECTED) == sorted(set(WHY) - {"payment_intent.created"})


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_a_signed_event_is_stored_before_the_2xx_and_applied_by_the_job(client, stripe_api, fixture):
    """Each PaymentIntent outcome is answered 200 once stored, under its PaymentIntent's id, then applied."""
    order, _ = in_flight("sepa" if "sepa" in fixture else "card")
    body = event_body(fixture, order)

    response = post(client, body, signed(body))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "stored"
    event = GatewayEvent.get()
    assert (event.webhook_id, event.status) == (f"{PAYMENT_INTENT}:{json.loads(body)['type']}", "received")
    run_due_work(T)
    attempt, order = first_attempt(order), Order.get_by_id(order.id)
    assert ((attempt.status, attempt.failure_code), order.status) == EXPECTED[fixture]
    assert (attempt.reference, attempt.settled_at) == (PAYMENT_INTENT, REPORTED)
    assert GatewayEvent.get().status == "processed"
    assert stripe_api.sent() == []  # the webhook asks Stripe nothing


def test_the_failure_reason_is_stripes_message_and_the_retry_counts_from_stripes_time(client, stripe_api):
    """insufficient_funds: the customer reads Stripe's words, and attempt 2 is due 7 days after the reported failure."""
    order, _ = in_flight()
    body = event_body("payment_intent.payment_failed__insufficient_funds", order)
    post(client, body, signed(body))
    run_due_work(T)

    attempts = [
        (a.number, a.status, a.due_at, a.failure_message) for a in ChargeAttempt.select().order_by(ChargeAttempt.id)
    ]
    assert attempts == [
        (1, "failed", T, "Your card has insufficient funds."),
        (2, "scheduled", REPORTED + dt.timedelta(days=7), None),
    ]


def test_stripe_sending_an_event_twice_stores_and_applies_it_once(client, stripe_api):
    """Stripe retries a delivery it thinks failed: the second is a duplicate and changes nothing."""
    order, _ = in_flight()
    body = event_body("payment_intent.payment_failed__insufficient_funds", order)

    answers = [post(client, body, signed(body)).get_json()["status"] for _ in range(2)]
    run_due_work(T)
    again = post(client, body, signed(body)).get_json()["status"]
    run_due_work(T)

    assert answers + [again] == ["stored", "duplicate", "duplicate"]
    assert GatewayEvent.select().count() == 1
    assert [a.status for a in ChargeAttempt.select().order_by(ChargeAttempt.id)] == ["failed", "scheduled"]


@pytest.mark.parametrize(
    ("answer", "fixture"),
    [
        ("payment_intent__succeeded", "payment_intent.succeeded__card"),
        ("card_error__insufficient_funds", "payment_intent.payment_failed__insufficient_funds"),
    ],
)
@pytest.mark.parametrize("first", ["Stripe's answer", "the webhook"])
def test_stripes_answer_and_its_webhook_are_one_outcome_applied_once_in_either_order(
    client, stripe_api, answer, fixture, first
):
    """Whichever tells the outcome first is applied; the other is a duplicate (one event row, one retry, one email)."""
    order, request = in_flight()
    declined = answer.startswith("card_error")
    recorded_answer = recorded(answer)
    if declined:
        recorded_answer["error"]["payment_intent"]["metadata"]["tranche_order_id"] = str(order.id)
    else:
        recorded_answer["metadata"]["tranche_order_id"] = str(order.id)
    stripe_api.answer("POST", "/v1/payment_intents", recorded_answer, 402 if declined else 200)
    body = event_body(fixture, order)
    gateway = get_gateway(settings())

    if first == "the webhook":
        assert post(client, body, signed(body)).get_json()["status"] == "stored"
        run_due_work(T)
        assert gateway.charge(request) == PAYMENT_INTENT
    else:
        assert gateway.charge(request) == PAYMENT_INTENT
        run_due_work(T)
        assert post(client, body, signed(body)).get_json()["status"] == "duplicate"
    run_due_work(T)

    assert GatewayEvent.select().count() == 1
    assert GatewayEvent.get().status == "processed"
    statuses = [a.status for a in ChargeAttempt.select().order_by(ChargeAttempt.id)]
    assert statuses == (["failed", "scheduled"] if declined else ["succeeded"])


def test_an_event_type_tranche_does_not_use_is_answered_200_and_not_stored(client, stripe_api):
    """Only a widened subscription sends one: Stripe must not retry it for days, and no row waits for it."""
    order, _ = in_flight()
    body = event_body("payment_intent.created", order)

    response = post(client, body, signed(body))

    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored", "event_id": "evt_3QfRecordedCreated"}
    assert GatewayEvent.select().count() == 0


def test_a_payment_intent_that_names_no_tranche_attempt_is_kept_as_unmatched(client, stripe_api):
    """A charge the seller made elsewhere on the same Stripe account: 200, stored, shown to operators."""
    in_flight()
    body = event_body("payment_intent.succeeded__card", None)

    assert post(client, body, signed(body)).get_json()["status"] == "stored"
    run_due_work(T)

    event = GatewayEvent.get()
    assert event.status == "unmatched"
    assert "names no Tranche attempt" in event.note
    assert [a.status for a in ChargeAttempt.select()] == ["in_flight"]


def _body() -> str:
    return event_body("payment_intent.succeeded__card", None)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        (lambda: signed(_body(), secret="whsec_someone_else"), "No signatures found matching"),
        (lambda: signed(_body(), timestamp=int(time.time()) - 301), "outside the tolerance zone"),
        (lambda: {"Content-Type": "application/json"}, "No Stripe-Signature header"),
        (lambda: {"Stripe-Signature": "t=abc,v1=00"}, "Unable to extract timestamp"),
        (lambda: {"Stripe-Signature": "v1=00"}, "Unable to extract timestamp"),
    ],
    ids=["other secret", "301 s old", "no header", "garbled time", "no time"],
)
def test_an_event_not_signed_by_stripe_within_five_minutes_is_401_and_not_stored(client, stripe_api, headers, words):
    response = post(client, _body(), headers())

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "bad_signature"
    assert words in response.get_json()["error"]["message"]
    assert GatewayEvent.select().count() == 0


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '"an event"',
        '{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1777622460}',
        '{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1777622460, "data": {"object": []}}',
        '{"id": "evt_1", "type": "payment_intent.succeeded", "created": "soon", "data": {"object": {}}}',
        '{"id": "evt_1", "type": "payment_intent.succeeded", "created": 99999999999999, "data": {"object": {}}}',
        '{"type": "payment_intent.succeeded", "created": 1777622460, "data": {"object": {"id": "pi_1"}}}',
        '{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1777622460, "data": {"object": {}}}',
        json.dumps({"id": "evt\n1", "type": "payment_intent.succeeded", "created": 1777622460, "data": {"object": {}}}),
        "[" * 100000,
    ],
    ids=lambda body: body[:40],
)
def test_a_signed_body_that_is_no_stripe_event_is_400_and_not_stored(client, stripe_api, body):
    response = post(client, body, signed(body))

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "malformed_event"
    assert GatewayEvent.select().count() == 0


@pytest.mark.parametrize(
    "payment_intent",
    [
        {"amount": None},
        {"amount": 0},
        {"amount": 10**40},
        {"amount": True},
        {"currency": "xyz"},
        {"currency": None},
        {"last_payment_error": {"code": "card\x00declined"}},
        # Its id fits a column, but not with the event type it is stored under.
        {"id": "pi_" + "x" * 240},
    ],
    ids=str,
)
def test_a_tranche_payment_intent_with_malformed_fields_is_400_and_not_stored(client, stripe_api, payment_intent):
    """What passes is applied as it is: an amount, a currency and codes as Tranche keeps them."""
    order, _ = in_flight()
    body = event_body("payment_intent.payment_failed__insufficient_funds", order, **payment_intent)

    response = post(client, body, signed(body))

    assert response.status_code == 400, response.get_json()
    assert GatewayEvent.select().count() == 0


def test_a_body_that_is_not_utf8_is_400(client, stripe_api):
    body = b'{"id": "\xff"}'
    response = post(client, body, {"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 400
    assert GatewayEvent.select().count() == 0
