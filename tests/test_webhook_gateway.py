"""POST /webhooks/gateway: each fixture replayed, signed like the gateway signs it; the 400 and 401 paths."""

import datetime as dt
import json
import os
import threading
import uuid
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from billing import charging
from jobs.work import run_due_work
from models import ChargeAttempt, CollectionCase, GatewayEvent, Installment, Order, Outbox
from runtime import queue, settings
from tests import factories
from tests.outages import redis_unreachable

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "gateway"
MALFORMED = FIXTURES / "malformed"


def event_body(fixture: str, **data) -> str:
    """The fixture's JSON with `data` fields replaced (the order id differs from run to run)."""
    event = json.loads((FIXTURES / f"{fixture}.json").read_text())
    event["data"].update(data)
    return json.dumps(event)


def signed_headers(body: str, webhook_id: str | None = None, at: dt.datetime | None = None) -> dict:
    """The Standard Webhooks headers the gateway sends, signed with our webhook secret."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or dt.datetime.now(dt.UTC)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(settings().gateway_webhook_secret).sign(webhook_id, at, body),
    }


def post(client, body: str, headers: dict):
    return client.post("/webhooks/gateway", data=body.encode(), headers=headers)


def charge_in_flight(payment=None) -> Order:
    """An order whose first installment was sent to the gateway at T; the event is what the test posts."""
    order = factories.order(factories.seller(), payment=payment)
    (attempt,) = factories.open_due(T)
    assert charging.claim_attempt(attempt.id, T) is not None
    return order


def installment_state(order: Order):
    """What an event may change: the order status, its first installment's status and every attempt."""
    order = Order.get_by_id(order.id)
    installments = [i.status for i in order.installments.order_by(Installment.number)]
    attempts = [
        (a.number, a.status, a.due_at)
        for a in ChargeAttempt.select().join(Installment).where(Installment.order == order).order_by(ChargeAttempt.id)
    ]
    return order.status, installments[0], attempts


def database_state():
    """Every row an event could touch, to prove that one changed nothing."""
    return [
        list(model.select().order_by(model.id).dicts())
        for model in (Order, Installment, ChargeAttempt, CollectionCase, Outbox)
    ]


def assert_rejected(response, status: int, words: str, code: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert words in error["message"]
    assert error["code"] == (code or {400: "malformed_event", 401: "bad_signature"}[status])
    assert GatewayEvent.select().count() == 0
    assert queue().count == 0


EXPECTED_AFTER_FIXTURE = {
    "payment_failed__card": ("active", "open", [(1, "failed", T), (2, "scheduled", T + dt.timedelta(days=7))]),
    "payment_failed__card_without_reference": (
        "active",
        "open",
        [(1, "failed", T), (2, "scheduled", T + dt.timedelta(days=7))],
    ),
    "payment_succeeded__card": ("active", "paid", [(1, "succeeded", T)]),
    "payment_failed__sepa": ("collections", "open", [(1, "failed", T)]),
    "payment_succeeded__sepa": ("active", "paid", [(1, "succeeded", T)]),
}


def test_every_fixture_is_a_fixture_this_module_knows():
    """Each payload file beside these tests has its expected outcome below (no fixture goes untested)."""
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(EXPECTED_AFTER_FIXTURE)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_AFTER_FIXTURE))
def test_a_signed_fixture_is_stored_before_the_2xx_and_applied_by_the_job(client, fixture):
    """Each gateway event variant is answered 200 once stored, then its job applies it to the order."""
    payment = factories.sepa() if "sepa" in fixture else factories.card()
    order = charge_in_flight(payment)
    body = event_body(fixture, order_id=order.id)

    response = post(client, body, signed_headers(body, "msg_fixture"))

    assert response.status_code == 200
    assert response.get_json() == {"status": "stored", "webhook_id": "msg_fixture"}
    event = GatewayEvent.get()
    assert (event.webhook_id, event.status, event.body) == ("msg_fixture", "received", body)
    run_due_work(T)
    assert GatewayEvent.get().status == "processed"
    assert installment_state(order) == EXPECTED_AFTER_FIXTURE[fixture]


def test_a_duplicate_webhook_id_is_answered_2xx_and_stored_once(client):
    """The same delivery twice: both answered 200, one row, one retry, one customer email."""
    order = charge_in_flight()
    body = event_body("payment_failed__card", order_id=order.id)
    headers = signed_headers(body, "msg_twice")

    first, second = post(client, body, headers), post(client, body, headers)
    run_due_work(T)

    assert (first.status_code, first.get_json()["status"]) == (200, "stored")
    assert (second.status_code, second.get_json()["status"]) == (200, "duplicate")
    assert GatewayEvent.select().count() == 1
    assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
    assert Outbox.select().where(Outbox.template == "payment_failed").count() == 1


def test_the_same_outcome_under_a_new_webhook_id_is_stored_but_changes_nothing_more(client):
    """A gateway re-sending an outcome with a fresh id: kept for the record, ignored by the rules."""
    order = charge_in_flight()
    body = event_body("payment_failed__card", order_id=order.id)
    post(client, body, signed_headers(body))
    run_due_work(T)
    before = database_state()

    assert post(client, body, signed_headers(body)).status_code == 200
    run_due_work(T)

    assert database_state() == before
    assert [e.status for e in GatewayEvent.select().order_by(GatewayEvent.id)] == ["processed", "ignored"]


def test_many_concurrent_deliveries_of_one_event_to_the_live_server_store_one_row_with_one_effect():
    """Twenty threads post the same signed event at once over HTTP: all get 200, one is stored, one retry."""
    order = charge_in_flight()
    body = event_body("payment_failed__card", order_id=order.id)
    headers = signed_headers(body, "msg_concurrent")
    start = threading.Barrier(20)
    answers = []

    def deliver():
        start.wait()
        response = requests.post(f"{os.environ['PUBLIC_URL']}/webhooks/gateway", data=body, headers=headers, timeout=30)
        answers.append((response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_due_work(T)

    assert sorted(answers) == [(200, "duplicate")] * 19 + [(200, "stored")]
    assert GatewayEvent.select().count() == 1
    assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
    assert Outbox.select().where(Outbox.template == "payment_failed").count() == 1


def test_a_success_arriving_after_a_failure_of_the_same_attempt_pays_the_installment(client):
    """Failure then success for one charge: the success wins, the scheduled retry is cancelled."""
    order = charge_in_flight()
    failure = event_body("payment_failed__card", order_id=order.id)
    success = event_body("payment_succeeded__card", order_id=order.id)

    post(client, failure, signed_headers(failure))
    run_due_work(T)
    post(client, success, signed_headers(success))
    run_due_work(T)

    assert installment_state(order) == (
        "active",
        "paid",
        [(1, "succeeded", T), (2, "cancelled", T + dt.timedelta(days=7))],
    )
    assert [m.template for m in Outbox.select().order_by(Outbox.id)] == [
        "payment_failed",
        "seller_payment_failed",
        "payment_recovered",
        "seller_payment_recovered",
    ]


def test_a_failure_arriving_after_a_success_of_the_same_attempt_is_ignored(client):
    """Success then failure for one charge: the failure is kept as ignored and changes nothing."""
    order = charge_in_flight()
    success = event_body("payment_succeeded__card", order_id=order.id)
    failure = event_body("payment_failed__card", order_id=order.id)
    post(client, success, signed_headers(success))
    run_due_work(T)
    before = database_state()

    post(client, failure, signed_headers(failure))
    run_due_work(T)

    assert database_state() == before
    assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_succeeded__card"]
    ignored = GatewayEvent.get(GatewayEvent.type == "payment.failed")
    assert (ignored.status, ignored.note) == ("ignored", "ignored: charge already succeeded")


def test_a_failure_for_an_installment_already_paid_is_ignored_and_changes_nothing(client):
    """A failure naming another charge of a paid installment: ignored, no retry, no email."""
    order = charge_in_flight()
    success = event_body("payment_succeeded__card", order_id=order.id)
    post(client, success, signed_headers(success))
    run_due_work(T)
    before = database_state()

    stale = event_body("payment_failed__card", order_id=order.id, reference="ch_some_older_charge")
    assert post(client, stale, signed_headers(stale)).status_code == 200
    run_due_work(T)

    assert database_state() == before
    ignored = GatewayEvent.get(GatewayEvent.type == "payment.failed")
    assert (ignored.status, ignored.note) == ("ignored", "ignored: installment already paid")


@pytest.mark.parametrize(
    "names, note",
    [
        ({"order_id": 987654321}, "no installment 1 of order 987654321"),
        ({"installment": 9}, "no installment 9 of order"),
        ({"installment": 2}, "no charge in flight for installment 2 of order"),
        ({"amount": "31.00"}, "reports 31.00 EUR for a charge of 30.00 EUR"),
        ({"currency": "USD"}, "reports 30.00 USD for a charge of 30.00 EUR"),
    ],
    ids=["unknown order", "unknown installment", "installment never charged", "other amount", "other currency"],
)
def test_an_event_naming_what_we_do_not_know_is_kept_as_unmatched_and_listed_for_operators(client, runner, names, note):
    """Answered 200 (the gateway must stop re-sending), kept as unmatched, shown by `flask events unmatched`."""
    order = charge_in_flight()
    body = event_body("payment_failed__card", **{"order_id": order.id, **names})
    before = database_state()

    response = post(client, body, signed_headers(body, "msg_unmatched"))
    run_due_work(T)

    assert response.status_code == 200
    event = GatewayEvent.get()
    assert event.status == "unmatched" and note in event.note
    assert database_state() == before
    listed = runner.invoke(args=["events", "unmatched"])
    assert listed.exit_code == 0
    assert "msg_unmatched payment.failed" in listed.output and note in listed.output


def test_an_event_signed_four_minutes_ago_is_still_accepted(client):
    """The 5-minute tolerance admits a delivery that waited a little in the gateway's queue."""
    body = event_body("payment_failed__card")
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)
    assert post(client, body, signed_headers(body, at=at)).status_code == 200


@pytest.mark.parametrize(
    "age, words", [(dt.timedelta(minutes=6), "too old"), (-dt.timedelta(minutes=6), "too new")], ids=["stale", "future"]
)
def test_a_timestamp_more_than_five_minutes_away_is_refused_with_401(client, age, words):
    """A replay of an old delivery, or one stamped in the future, is refused and not stored."""
    body = event_body("payment_failed__card")
    response = post(client, body, signed_headers(body, at=dt.datetime.now(dt.UTC) - age))
    assert_rejected(response, 401, words)


def test_a_tampered_body_is_refused_with_401(client):
    """Changing a signed body (here the amount) breaks the signature: refused, not stored."""
    body = event_body("payment_failed__card")
    headers = signed_headers(body)
    response = post(client, body.replace('"30.00"', '"3000.00"'), headers)
    assert_rejected(response, 401, "No matching signature")


@pytest.mark.parametrize(
    "header, value",
    [
        ("webhook-signature", "v1,!!!"),
        ("webhook-signature", "nocomma"),
        ("webhook-signature", ""),
        ("webhook-signature", "v1,abc"),
        ("webhook-signature", "v1,a,b"),
        ("webhook-signature", "v1,é"),
        ("webhook-signature", "v2,{valid}"),
        ("webhook-signature", None),
        ("webhook-timestamp", ""),
        ("webhook-timestamp", "yesterday"),
        ("webhook-timestamp", "nan"),
        ("webhook-timestamp", "inf"),
        ("webhook-timestamp", "1e400"),
        ("webhook-timestamp", "-1"),
        ("webhook-timestamp", None),
        ("webhook-id", ""),
        ("webhook-id", "msg_another_id"),
        ("webhook-id", None),
    ],
)
def test_a_missing_or_garbled_signature_header_is_refused_with_401_never_500(client, header, value):
    """Every malformed Standard Webhooks header is a refused signature, and nothing is stored."""
    body = event_body("payment_failed__card")
    headers = signed_headers(body)
    if value is None:
        del headers[header]
    else:
        headers[header] = value.format(valid=headers["webhook-signature"].split(",", 1)[1])
    assert_rejected(post(client, body, headers), 401, "signature rejected")


def test_an_event_signed_with_another_secret_is_refused_with_401(client):
    """Only the gateway holding our secret can deliver events."""
    body = event_body("payment_failed__card")
    at = dt.datetime.now(dt.UTC)
    headers = signed_headers(body, "msg_forged", at)
    headers["webhook-signature"] = Webhook("whsec_Zm9yZ2VkLXNlY3JldA==").sign("msg_forged", at, body)
    assert_rejected(post(client, body, headers), 401, "No matching signature")


def _with(**data):
    return lambda event: {**event, "data": {**event["data"], **data}}


def _without(name):
    return lambda event: {**event, "data": {k: v for k, v in event["data"].items() if k != name}}


@pytest.mark.parametrize(
    "change, words",
    [
        pytest.param(lambda event: "{", "not JSON", id="not JSON"),
        pytest.param(lambda event: "", "not JSON", id="empty body"),
        pytest.param(lambda event: "[" * 100_000 + "]" * 100_000, "not JSON", id="nested too deep"),
        pytest.param(lambda event: [event], "must be an object", id="a list"),
        pytest.param(lambda event: {**event, "data": [event["data"]]}, "must be an object", id="data a list"),
        pytest.param(lambda event: {"type": event["type"]}, "must be an object", id="no data"),
        pytest.param(_with(order_id="abc"), "data.order_id", id="order_id text"),
        pytest.param(_with(order_id=True), "data.order_id", id="order_id boolean"),
        pytest.param(_with(order_id=0), "data.order_id", id="order_id zero"),
        pytest.param(_with(order_id=2**70), "data.order_id", id="order_id too big"),
        pytest.param(_with(installment=1.5), "data.installment", id="installment fraction"),
        pytest.param(_without("installment"), "data.installment", id="no installment"),
        pytest.param(_with(amount="1,99"), "data.amount", id="amount comma"),
        pytest.param(_with(amount="abc"), "data.amount", id="amount text"),
        pytest.param(_with(amount=30.5), "data.amount", id="amount float"),
        pytest.param(_with(amount="-30.00"), "data.amount", id="amount negative"),
        pytest.param(_with(amount="30.00\n"), "data.amount", id="amount with a final line break"),
        pytest.param(_with(amount="٣٠.00"), "data.amount", id="amount in Arabic-Indic digits"),
        pytest.param(_without("amount"), "data.amount", id="no amount"),
        pytest.param(_with(currency="eur"), "data.currency", id="currency lowercase"),
        pytest.param(_with(currency=978), "data.currency", id="currency number"),
        pytest.param(_with(method="paypal"), "data.method", id="unknown method"),
        pytest.param(_with(occurred_at="yesterday"), "data.occurred_at", id="occurred_at text"),
        pytest.param(
            _with(occurred_at="2026-05-01T08:00:00"),
            "data.occurred_at must carry its UTC offset",
            id="occurred_at naive",
        ),
        pytest.param(_with(occurred_at=1777622400), "data.occurred_at", id="occurred_at number"),
        pytest.param(_with(reference=42), "data.reference", id="reference number"),
        pytest.param(_with(reference="ch_\u0000"), "data.reference", id="reference with NUL"),
        pytest.param(_with(failure_code=""), "data.failure_code", id="failure_code empty"),
        pytest.param(_with(failure_message=["no"]), "data.failure_message", id="failure_message list"),
    ],
)
def test_a_signed_body_that_is_not_a_valid_event_is_refused_with_400_naming_the_problem(client, change, words):
    """Malformed JSON, wrong types and unknown event types: 400 with a clear error, nothing stored."""
    changed = change(json.loads(event_body("payment_failed__card")))
    body = changed if isinstance(changed, str) else json.dumps(changed)
    assert_rejected(post(client, body, signed_headers(body)), 400, words)


@pytest.mark.parametrize(
    "change, words",
    [
        pytest.param(lambda event: {**event, "type": "payment.refunded"}, "'payment.refunded'", id="unknown type"),
        pytest.param(lambda event: {"data": event["data"]}, "unsupported event type None", id="no type"),
    ],
)
def test_an_event_of_a_type_we_do_not_handle_is_refused_with_400_unsupported_event_type(client, change, words):
    """The code says the event is well formed but not one Tranche handles; nothing is stored."""
    body = json.dumps(change(json.loads(event_body("payment_failed__card"))))
    response = post(client, body, signed_headers(body))
    assert_rejected(response, 400, words, code="unsupported_event_type")


MALFORMED_FIXTURES = {
    "order_id_superscript_digit": "data.order_id must be a positive whole number of ASCII digits",
    "order_id_arabic_indic_digit": "data.order_id must be a positive whole number of ASCII digits",
    "installment_superscript_digit": "data.installment must be a positive whole number of ASCII digits",
    "occurred_at_year_1": "data.occurred_at must lie from 2000",
    "occurred_at_year_9999": "data.occurred_at must lie from 2000",
    "failure_code_300_characters": "data.failure_code must be a non-empty string of at most 255 characters",
    "reference_300_characters": "data.reference must be a non-empty string of at most 255 characters",
    "currency_fullwidth": "data.currency must be the ISO 4217 code of a currency in use",
    "currency_unknown": "data.currency must be the ISO 4217 code of a currency in use",
    "amount_past_the_largest_installment": "data.amount must be a decimal with at most two places",
    "failure_message_line_break": "data.failure_message must not contain the control character '\\n'",
    "utf16_with_bom": "the body must be JSON encoded as UTF-8",
    "utf16le_without_bom": "the body must not contain NUL characters",
}


def test_every_malformed_fixture_has_its_expected_refusal():
    """Each refused body beside these tests is checked below."""
    assert sorted(p.stem for p in MALFORMED.glob("*.json")) == sorted(MALFORMED_FIXTURES)


@pytest.mark.parametrize("fixture", sorted(MALFORMED_FIXTURES))
def test_a_signed_body_the_database_or_the_rules_could_not_take_is_refused_with_400_naming_the_field(client, fixture):
    """Non-ASCII digits, times out of range, texts longer than their column, UTF-16: 400, nothing stored."""
    raw = (MALFORMED / f"{fixture}.json").read_bytes()
    # A body that is not UTF-8 cannot be signed by the library; it is refused before its signature is read.
    text = raw.decode("utf-8", errors="replace")
    response = client.post("/webhooks/gateway", data=raw, headers=signed_headers(text))
    assert_rejected(response, 400, MALFORMED_FIXTURES[fixture])


@pytest.mark.parametrize(
    "webhook_id, words",
    [
        ("msg_" + "x" * 300, "the webhook-id header must be a non-empty string of at most 255 characters"),
        ("msg_\x01", "the webhook-id header must not contain the control character"),
    ],
    ids=["over-long", "control character"],
)
def test_a_webhook_id_the_database_could_not_store_whole_is_refused_with_400(client, webhook_id, words):
    """An over-long webhook-id is refused, not truncated (two ids sharing a prefix would be taken as one)."""
    body = event_body("payment_failed__card")
    response = post(client, body, signed_headers(body, webhook_id))
    assert_rejected(response, 400, words)


def test_an_event_stored_while_redis_is_unreachable_is_answered_2xx_and_applied_by_a_later_tick(client, caplog):
    """The event is safe in the database: the failed wake-up is logged, not a 500, and the tick wakes the job."""
    order = charge_in_flight()
    body = event_body("payment_failed__card", order_id=order.id)

    with redis_unreachable():
        response = post(client, body, signed_headers(body, "msg_no_redis"))

    assert (response.status_code, response.get_json()["status"]) == (200, "stored")
    assert GatewayEvent.get().status == "received"
    assert "committed, not started (the tick will)" in caplog.text
    run_due_work(T)
    assert GatewayEvent.get().status == "processed"
    assert installment_state(order) == EXPECTED_AFTER_FIXTURE["payment_failed__card"]
