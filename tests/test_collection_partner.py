"""R9 hand-off delivery: a signed POST to COLLECTION_PARTNER_URL, retried with backoff until the partner accepts."""

import base64
import datetime as dt

import pytest
from rq import SimpleWorker

from billing.collections import hand_to_collections
from jobs.work import deliver_handoff, run_due_work, tick
from models import CollectionCase
from runtime import queue, redis_connection, settings
from tests import factories
from tests.conftest import at_once
from tests.receivers import Receiver

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
HANDED_OFF = T + dt.timedelta(days=35)  # installment 2 (1 June) has fallen due too by then
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def partner(monkeypatch):
    """The collection partner at COLLECTION_PARTNER_URL, verifying each POST with its secret."""
    stand_in = Receiver(lambda: settings().collection_partner_secret)
    monkeypatch.setenv("COLLECTION_PARTNER_URL", f"{stand_in.url}/handoffs")
    yield stand_in
    stand_in.stop()


def handed_off_sepa_order():
    """A failed SEPA debit at T, handed to the partner 35 days later: installments 1 and 2, 60.00 EUR."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), invoice="INV-2026-042")
    run_due_work(T)
    return order, hand_to_collections(order, HANDED_OFF)


def test_a_handoff_is_posted_signed_with_which_installments_and_how_much(partner):
    """The partner verifies the signature and learns the order, the installments and the amount."""
    order, case = handed_off_sepa_order()
    run_due_work(HANDED_OFF)

    (post,) = partner.received
    assert post["webhook-id"] == f"handoff_{case.id}"
    assert post["payload"] == {
        "case_id": case.id,
        "order_id": order.id,
        "invoice_number": "INV-2026-042",
        "seller": {"id": order.seller_id, "name": "Alice Courses", "email": "alice@example.com"},
        "customer": {"name": "Claire Dubois", "email": "claire@example.com"},
        "product": "Python course",
        "currency": "EUR",
        "amount": "60.00",
        "installments": [1, 2],
        "handed_off_at": HANDED_OFF.isoformat(),
    }
    assert CollectionCase.get_by_id(case.id).delivered_at == HANDED_OFF


def test_a_partner_answering_500_gets_the_handoff_again_with_backoff_until_it_accepts(partner):
    """500, then 500 a minute later, then accepted two minutes after that; no POST before its time or after."""
    partner.answers = [500, 500]
    _, case = handed_off_sepa_order()

    def deliveries_by(at):
        run_due_work(at)
        return len(partner.received)

    assert deliveries_by(HANDED_OFF) == 1
    case = CollectionCase.get_by_id(case.id)
    assert (case.delivered_at, case.next_delivery_at, case.delivery_attempts) == (None, HANDED_OFF + MINUTE, 1)
    assert case.last_delivery_error.startswith("HTTP 500")
    assert deliveries_by(HANDED_OFF + MINUTE - dt.timedelta(seconds=1)) == 1
    assert deliveries_by(HANDED_OFF + MINUTE) == 2
    assert deliveries_by(HANDED_OFF + 3 * MINUTE - dt.timedelta(seconds=1)) == 2
    assert deliveries_by(HANDED_OFF + 3 * MINUTE) == 3
    assert deliveries_by(HANDED_OFF + dt.timedelta(days=2)) == 3

    case = CollectionCase.get_by_id(case.id)
    assert (case.delivered_at, case.next_delivery_at, case.last_delivery_error) == (HANDED_OFF + 3 * MINUTE, None, None)
    assert {p["webhook-id"] for p in partner.received} == {f"handoff_{case.id}"}  # the partner can dedupe


def test_a_partner_that_is_down_gets_the_handoff_once_it_is_back(partner, monkeypatch):
    """A refused connection is retried like a 500: nothing is lost while the partner is unreachable."""
    partner_url = settings().collection_partner_url
    monkeypatch.setenv("COLLECTION_PARTNER_URL", "http://127.0.0.1:9/handoffs")
    _, case = handed_off_sepa_order()
    run_due_work(HANDED_OFF)
    assert "ConnectionError" in CollectionCase.get_by_id(case.id).last_delivery_error

    monkeypatch.setenv("COLLECTION_PARTNER_URL", partner_url)
    run_due_work(HANDED_OFF + MINUTE)

    assert len(partner.received) == 1
    assert CollectionCase.get_by_id(case.id).delivered_at == HANDED_OFF + MINUTE


def test_two_schedulers_and_racing_workers_post_a_handoff_once(partner):
    """A tick run twice queues the delivery twice, and four workers race on it: the partner gets one POST."""
    _, case = handed_off_sepa_order()
    tick(HANDED_OFF.isoformat())
    tick(HANDED_OFF.isoformat())
    at_once(4, lambda: deliver_handoff(case.id, HANDED_OFF.isoformat()))
    SimpleWorker([queue()], connection=redis_connection()).work(burst=True, logging_level="WARNING")

    assert len(partner.received) == 1


def test_a_partner_url_with_credentials_sends_them_as_basic_auth_never_in_the_host_header(partner, monkeypatch):
    """COLLECTION_PARTNER_URL may carry user:password: they authenticate the POST, and the Host names the server."""
    address = partner.url.removeprefix("http://")
    monkeypatch.setenv("COLLECTION_PARTNER_URL", f"http://tranche:s3cret@{address}/handoffs")
    handed_off_sepa_order()
    run_due_work(HANDED_OFF)

    (post,) = partner.received
    assert post["headers"]["Host"] == address
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(b"tranche:s3cret").decode()
