"""The sellers' webhook endpoints (SPEC): registered through the API, each event written to the outbox in the
transaction of its fact, POSTed signed per Standard Webhooks with the endpoint's secret, retried with backoff for
3 days under one webhook-id, then the endpoint disabled and the seller told."""

import base64
import datetime as dt
import json
import shutil
import socket
import ssl
import subprocess

import pytest
from openapi_schema_validator import OAS31Validator

from app import create_app
from billing.collections import hand_to_collections, list_in_collections
from billing.endpoints import DISABLED_AFTER, register_endpoint
from billing.notifications import EVENT_TYPES
from billing.plan_changes import confirm_plan_change, decline_plan_change, expire_plan_changes, propose_plan_change
from jobs.posting import signed_post
from jobs.work import run_due_work
from models import Order, Outbox, PlanChange, WebhookEndpoint, transaction
from runtime import set_clock, settings
from tests import factories
from tests.receivers import Receiver
from tests.test_api import Api
from webhooks.inbox import PATH as INBOX_PATH

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def seller():
    return factories.seller()


@pytest.fixture
def endpoint(seller):
    """A seller's system at a local address, verifying each POST with the endpoint's own secret."""
    secrets = {}
    receiver = Receiver(lambda: secrets["secret"])
    registered = register_endpoint(seller, f"{receiver.url}/tranche", T - DAY, public_only=False)
    secrets["secret"] = registered.secret
    receiver.row = registered
    yield receiver
    receiver.stop()


def tick_at(moment: dt.datetime) -> None:
    """The tick and the workers at `moment`, on the clock every process reads (a retry is dated by it)."""
    set_clock(moment)
    run_due_work(moment)


def types(receiver: Receiver) -> list[str]:
    return [r["payload"]["type"] for r in receiver.received]


def test_a_seller_registers_an_endpoint_reads_its_secret_once_lists_and_removes_it(client, seller):
    api = Api(client, seller.api_key)

    created = api.post("/webhook-endpoints", {"url": "https://erp.example/tranche"})

    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["url"] == "https://erp.example/tranche"
    [listed] = api.get("/webhook-endpoints").get_json()["webhook_endpoints"]
    assert "secret" not in listed and listed["id"] == body["id"] and listed["disabled_at"] is None
    assert api.post(f"/webhook-endpoints/{body['id']}", method="DELETE").status_code == 204
    assert api.get("/webhook-endpoints").get_json()["webhook_endpoints"] == []
    assert api.post(f"/webhook-endpoints/{body['id']}", method="DELETE").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "erp.example/tranche",
        "ftp://erp.example",
        "https://",
        "https://a b.example",
        "https://erp.example:0/tranche",
        "https://erp.example:65536/tranche",
        "https://erp.example:99999/tranche",
    ],
)
def test_an_endpoint_that_is_no_web_address_gets_422_naming_url(client, seller, url):
    response = Api(client, seller.api_key).post("/webhook-endpoints", {"url": url})

    assert (response.status_code, response.get_json()["error"]["field"]) == (422, "url")
    assert WebhookEndpoint.select().count() == 0


def test_three_failed_attempts_reach_the_endpoint_signed_then_the_interruption(seller, endpoint):
    """R5, R6: each failure is a payment.failed, the third interrupts the plan: plan.interrupted; each POST
    verifies against the endpoint's secret, each with a webhook-id of its own."""
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    for day in (0, 7, 14):
        run_due_work(T + day * DAY)

    assert types(endpoint) == ["payment.failed"] * 3 + ["plan.interrupted"]
    failed = [r["payload"]["data"] for r in endpoint.received[:3]]
    assert [(d["order_id"], d["installment"], d["attempt"], d["failure_code"]) for d in failed] == [
        (order.id, 1, n, "insufficient_funds") for n in (1, 2, 3)
    ]
    assert len({r["webhook-id"] for r in endpoint.received}) == 4


def test_another_sellers_facts_never_reach_the_endpoint(endpoint):
    factories.order(factories.seller("Bob Books"), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)

    run_due_work(T)

    assert endpoint.received == []


def test_an_event_is_written_with_its_fact_and_not_without_it(seller, endpoint):
    """A listing rolled back leaves no event; committed, it leaves one."""
    order = factories.order(seller, payment=factories.sepa(), anchor=T)
    with pytest.raises(RuntimeError), transaction():
        list_in_collections(order, "test", T)
        raise RuntimeError("the fact fails")
    assert Outbox.select().where(Outbox.channel == Outbox.WEBHOOK).count() == 0

    list_in_collections(Order.get_by_id(order.id), "test", T)

    assert [m.template for m in Outbox.select().where(Outbox.channel == Outbox.WEBHOOK)] == ["collections.listed"]


def test_a_failing_endpoint_is_retried_with_backoff_under_one_webhook_id_until_it_accepts(seller, endpoint):
    """500, 500, then 200: tried at once, 1 and 2 minutes later; delivered once, with the same webhook-id."""
    endpoint.answers = [500, 500]
    order = factories.order(seller, anchor=T + 30 * DAY)
    propose_plan_change(order, "40.00", T)
    decline_plan_change(order.plan_changes.get().id, T)

    for minutes in (0, 1, 3, 10):
        tick_at(T + minutes * MINUTE)

    assert types(endpoint) == ["plan_change.declined"] * 3
    assert len({r["webhook-id"] for r in endpoint.received}) == 1
    assert WebhookEndpoint.get_by_id(endpoint.row.id).failing_since is None
    assert Outbox.get(Outbox.channel == Outbox.WEBHOOK).sent_at is not None


def test_an_endpoint_failing_for_3_days_is_disabled_its_events_dropped_and_the_seller_told(seller, endpoint, inbox):
    endpoint.answers = [503] * 1000
    order = factories.order(seller, anchor=T + 30 * DAY)
    propose_plan_change(order, "40.00", T)
    decline_plan_change(order.plan_changes.get().id, T)

    moment = T
    while moment <= T + DISABLED_AFTER + DAY:
        tick_at(moment)
        moment += dt.timedelta(hours=1)

    row = WebhookEndpoint.get_by_id(endpoint.row.id)
    assert row.disabled_at is not None and T + DISABLED_AFTER <= row.disabled_at <= T + DISABLED_AFTER + DAY
    tries = len(endpoint.received)
    assert 10 <= tries <= 16  # backoff: 1, 2, 4 … minutes apart, at most 12 hours
    [told] = inbox.to(seller.email)
    assert "is disabled" in told["Subject"]
    assert "refused Tranche's events since 1 May 2026" in told.get_body(("plain",)).get_content()
    dropped = Outbox.get(Outbox.channel == Outbox.WEBHOOK)
    assert dropped.sent_at is not None and dropped.last_error.startswith("not sent: the endpoint was disabled")

    propose_plan_change(Order.get_by_id(order.id), "45.00", moment)
    decline_plan_change(order.plan_changes.order_by(PlanChange.id.desc()).first().id, moment)
    tick_at(moment)
    assert len(endpoint.received) == tries


def _recovered(seller):
    """Declined on 1 May, paid on its retry of 8 May (the customer's new card)."""
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    [retry] = factories.charge_due(T + 7 * DAY)
    factories.gateway_reports(retry, T + 7 * DAY)
    return order


def _completed(seller):
    order = factories.order(seller, count=2, anchor=T - 30 * DAY)
    for moment in (T - 30 * DAY, T):
        for request in factories.charge_due(moment):
            factories.gateway_reports(request, moment)
    return order


def _confirmed(seller):
    order = factories.order(seller, anchor=T + 30 * DAY)
    confirm_plan_change(propose_plan_change(order, "40.00", T).id, T + DAY)
    return order


def _expired(seller):
    order = factories.order(seller, anchor=T + 30 * DAY)
    propose_plan_change(order, "40.00", T)
    expire_plan_changes(T + 11 * DAY)
    return order


def _handed_off(seller):
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, "insufficient_funds")
    hand_to_collections(Order.get_by_id(order.id), T + DAY)
    return order


@pytest.mark.parametrize(
    ("story", "expected"),
    [
        (_recovered, ["payment.failed", "payment.recovered"]),
        (_completed, ["plan.completed"]),
        (_confirmed, ["plan_change.confirmed"]),
        (_expired, ["plan_change.expired"]),
        (_handed_off, ["payment.failed", "collections.listed", "collections.handed_off"]),
    ],
    ids=["recovered", "completed", "confirmed", "expired", "handed off"],
)
def test_each_fact_of_the_plan_reaches_the_endpoint_as_its_event(seller, endpoint, story, expected):
    order = story(seller)
    tick_at(T + 20 * DAY)  # before any further installment falls due

    assert types(endpoint) == expected
    assert {r["payload"]["data"]["order_id"] for r in endpoint.received} == {order.id}


def test_the_api_document_describes_every_event_and_each_body_delivered_fits_it(client, seller, endpoint):
    """OpenAPI 3.1's webhooks name each event type with its body; real deliveries of eight of them validate."""
    document = client.get("/api/v1/openapi.json").get_json()
    assert set(document["webhooks"]) == set(EVENT_TYPES)
    for story in (_recovered, _completed, _confirmed, _expired, _handed_off):
        story(seller)
    factories.order(seller, payment=factories.card(factories.LOST), anchor=T + DAY)  # a hard decline interrupts
    tick_at(T + 20 * DAY)

    assert len(set(types(endpoint))) == 8
    for delivered in endpoint.received:
        body = document["webhooks"][delivered["payload"]["type"]]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        OAS31Validator({**schema, "components": document["components"]}).validate(delivered["payload"])


def test_the_development_inbox_keeps_what_its_endpoint_signed_and_refuses_the_rest(client, seller):
    """Outside production, POST /dev/webhook-inbox (the demo seller's endpoint) verifies each delivery with the
    secret of an endpoint registered at its address; a forgery gets 401 and is not kept."""
    registered = register_endpoint(seller, f"{settings().public_url}{INBOX_PATH}", T, public_only=False)
    inbox = settings().webhook_inbox_dir
    shutil.rmtree(inbox, ignore_errors=True)
    payload = {"type": "plan.completed", "data": {"order_id": 7}}
    error = signed_post(f"{settings().public_url}{INBOX_PATH}", registered.secret, "msg_1", payload)

    assert error is None
    assert json.loads((inbox / "msg_1.json").read_text())["payload"] == payload
    forged = "whsec_" + base64.b64encode(b"x" * 32).decode()
    refused = signed_post(f"{settings().public_url}{INBOX_PATH}", forged, "msg_2", payload)
    assert refused.startswith("HTTP 401") and not (inbox / "msg_2.json").exists()
    climbing = signed_post(f"{settings().public_url}{INBOX_PATH}", registered.secret, "../escaped", payload)
    assert climbing.startswith("HTTP 400") and list(inbox.iterdir()) == [inbox / "msg_1.json"]
    assert not (inbox.parent / "escaped.json").exists()


def test_in_production_there_is_no_development_inbox(monkeypatch):
    """A production server keeps no deliveries of its own: the route is not there at all."""
    monkeypatch.setenv("TRANCHE_ENV", "production")

    response = create_app().test_client().post(INBOX_PATH, data="{}")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/tranche",
        "http://localhost/tranche",
        "http://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/tranche",
        "http://0.0.0.0:5000/tranche",
        "https://nowhere.invalid/tranche",
    ],
)
def test_in_production_an_endpoint_inside_a_private_network_is_refused_naming_url(client, seller, monkeypatch, url):
    """Tranche would otherwise POST, on a seller's word, to its own network (the cloud's metadata service)."""
    monkeypatch.setenv("TRANCHE_ENV", "production")

    response = Api(client, seller.api_key).post("/webhook-endpoints", {"url": url})

    assert (response.status_code, response.get_json()["error"]["field"]) == (409, "url"), response.get_json()
    assert "reachable on the internet" in response.get_json()["error"]["message"]
    assert WebhookEndpoint.select().count() == 0


def test_in_production_an_endpoint_on_a_public_address_is_registered(client, seller, monkeypatch):
    """An address on the internet, written as an IP literal so that no DNS is asked, passes the check."""
    monkeypatch.setenv("TRANCHE_ENV", "production")

    response = Api(client, seller.api_key).post("/webhook-endpoints", {"url": "https://93.184.215.14:65535/tranche"})

    assert response.status_code == 201, response.get_json()


def test_in_production_nothing_is_posted_to_an_endpoint_whose_name_now_resolves_inside(seller, endpoint, monkeypatch):
    """A name that resolved to a public address when registered may point inside later: each try asks again."""
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    monkeypatch.setenv("TRANCHE_ENV", "production")

    run_due_work(T)

    assert endpoint.received == []
    [waiting] = Outbox.select().where(Outbox.channel == Outbox.WEBHOOK)
    assert waiting.sent_at is None and "not sent: 127.0.0.1 is not a public address" in waiting.last_error


def test_an_endpoint_that_redirects_is_not_followed_and_counts_as_a_failed_try(seller, endpoint):
    """A 307 would resend the signed body wherever it points (inside Tranche's network too): only a 2xx delivers."""
    elsewhere = Receiver(lambda: endpoint.row.secret)
    endpoint.answers, endpoint.redirect_to = [307], f"{elsewhere.url}/inside"
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)

    run_due_work(T)

    elsewhere.stop()
    assert elsewhere.received == [] and len(endpoint.received) == 1
    [waiting] = Outbox.select().where(Outbox.channel == Outbox.WEBHOOK)
    assert waiting.sent_at is None and waiting.last_error.startswith("HTTP 307")


def test_a_delivery_goes_to_the_address_resolved_once_whatever_the_name_answers_after(seller, monkeypatch):
    """DNS rebinding: a name may answer a public address to the check and an inside one to the connection, so the
    POST goes to the address the check read. Here the name's second answer would reach nothing."""
    secrets = {}
    receiver = Receiver(lambda: secrets["secret"])
    port = receiver.url.rsplit(":", 1)[1]
    secrets["secret"] = register_endpoint(
        seller, f"http://erp.seller.example:{port}/tranche", T, public_only=False
    ).secret
    answers = iter(["127.0.0.1", "192.0.2.1"])  # the second: TEST-NET-1, where nothing answers

    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host != "erp.seller.example":
            return real(host, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)

    run_due_work(T)

    receiver.stop()
    assert types(receiver) == ["payment.failed"]
    assert receiver.received[0]["headers"]["Host"] == f"erp.seller.example:{port}"  # the name, not the address
    assert Outbox.get(Outbox.channel == Outbox.WEBHOOK).sent_at is not None


def test_over_https_the_pinned_address_still_has_its_certificate_checked_against_the_name(tmp_path, monkeypatch):
    """Connecting to the resolved address must not skip TLS: the certificate names the endpoint's host or nothing
    is sent."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: S603 (openssl, with this test's own arguments)
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"]
        + ["-subj", "/CN=erp.seller.example", "-addext", "subjectAltName=DNS:erp.seller.example"],
        check=True,
        capture_output=True,
    )
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    receiver = Receiver(lambda: secret)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    receiver.server.socket = tls.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_port
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the one authority that signed it

    named = signed_post(f"https://erp.seller.example:{port}/tranche", secret, "msg_1", {"n": 1}, "127.0.0.1")
    misnamed = signed_post(f"https://other.example:{port}/tranche", secret, "msg_2", {"n": 2}, "127.0.0.1")

    receiver.stop()
    assert named is None
    assert "doesn't match 'erp.seller.example'" in misnamed
    assert [r["webhook-id"] for r in receiver.received] == ["msg_1"]
