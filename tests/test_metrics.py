"""GET /metrics: counters of real requests and jobs, added up across processes, and gauges read from the database."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import requests
from playhouse.test_utils import count_queries
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rq import SimpleWorker

from billing.charging import store_event
from billing.collections import hand_to_collections
from jobs.work import run_due_work
from metrics import WEBHOOK_RESULTS, WEBHOOK_ROUTES, exposition
from models import GatewayEvent, Order
from runtime import queue, redis_connection, work_queues
from tests import factories
from tests import test_webhook_gateway as gateway
from tests import test_webhook_stripe as stripe
from tests.conftest import METRICS_DIR, ROOT, free_port, start_worker
from tests.test_web_logs import wait_for

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **headers) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return samples_of(response.get_data(as_text=True))


def scrape_at(now: dt.datetime) -> Samples:
    """What a scrape at `now` on the one clock shows."""
    body, _ = exposition(lambda: now, work_queues())
    return samples_of(body.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def webhooks_grown(before: Samples, after: Samples) -> dict[tuple[str, str], float]:
    """The webhook counters that moved, by (gateway, result)."""
    moved = {
        (dict(labels)["gateway"], dict(labels)["result"]): grown(before, after, name, **dict(labels))
        for name, labels in after
        if name == "tranche_webhooks_total"
    }
    return {key: count for key, count in moved.items() if count}


def a_failed_job() -> None:
    """A job that raised, as RQ keeps it: in the queue's failed job registry."""
    queue().enqueue("jobs.work.no_such_job")
    SimpleWorker([queue()], connection=redis_connection()).work(burst=True, logging_level="CRITICAL")


def test_gateway_webhooks_are_counted_by_gateway_and_result_as_they_are_answered(client):
    """A signed event stored, its repeat a duplicate, a forged one bad_signature, a signed malformed one."""
    order = gateway.charge_in_flight()
    body = gateway.event_body("payment_failed__card", order_id=order.id)
    headers = gateway.signed_headers(body)
    before = scrape(client)

    assert gateway.post(client, body, headers).status_code == 200
    assert gateway.post(client, body, headers).status_code == 200
    assert gateway.post(client, body, {**headers, "webhook-signature": "v1,Zm9yZ2Vk"}).status_code == 401
    malformed = (gateway.MALFORMED / "currency_unknown.json").read_text()
    assert gateway.post(client, malformed, gateway.signed_headers(malformed)).status_code == 400

    assert webhooks_grown(before, scrape(client)) == {
        ("gateway", "stored"): 1,
        ("gateway", "duplicate"): 1,
        ("gateway", "bad_signature"): 1,
        ("gateway", "malformed_event"): 1,
    }


def test_stripe_webhooks_are_counted_under_stripe(client, monkeypatch):
    """An event type Tranche does not use is ignored, a forged Stripe-Signature is bad_signature."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_metrics")
    body = stripe.event_body("payment_intent.created", None)
    before = scrape(client)

    assert stripe.post(client, body, stripe.signed(body)).status_code == 200
    assert stripe.post(client, body, stripe.signed(body, secret="whsec_forged")).status_code == 401

    assert webhooks_grown(before, scrape(client)) == {("stripe", "ignored"): 1, ("stripe", "bad_signature"): 1}


def test_charges_through_the_sandbox_are_counted_by_kind_and_outcome_once_applied(client):
    """Two orders charged by the tick through the sandbox and its webhook: one paid, one declined."""
    seller = factories.seller()
    factories.order(seller)
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS))
    before = scrape(client)

    run_due_work(T)

    after = scrape(client)
    assert grown(before, after, "tranche_charges_total", kind="automatic", outcome="succeeded") == 1
    assert grown(before, after, "tranche_charges_total", kind="automatic", outcome="failed") == 1
    assert webhooks_grown(before, after) == {("gateway", "stored"): 2}


def test_a_repeated_outcome_is_not_counted_again(client):
    """The gateway sends the same failure twice under two webhook ids: stored twice, applied and counted once."""
    order = gateway.charge_in_flight()
    body = gateway.event_body("payment_failed__card", order_id=order.id)
    gateway.post(client, body, gateway.signed_headers(body))
    gateway.post(client, body, gateway.signed_headers(body))
    before = scrape(client)

    run_due_work(T)

    assert [e.status for e in GatewayEvent.select().order_by(GatewayEvent.id)] == ["processed", "ignored"]
    assert grown(before, scrape(client), "tranche_charges_total", kind="automatic", outcome="failed") == 1


def test_an_event_left_waiting_shows_in_the_gauge_with_its_age_on_the_clock(client):
    """Stored by a real request and not applied yet (no worker ran): one waiting, as old as the clock says."""
    order = gateway.charge_in_flight()
    body = gateway.event_body("payment_succeeded__card", order_id=order.id)
    assert gateway.post(client, body, gateway.signed_headers(body)).status_code == 200
    received_at = GatewayEvent.get().received_at

    assert value(scrape(client), "tranche_gateway_events_waiting") == 1
    later = scrape_at(received_at + 90 * dt.timedelta(seconds=1))
    assert value(later, "tranche_gateway_events_waiting") == 1
    assert value(later, "tranche_gateway_events_oldest_waiting_age_seconds") == 90


def test_a_stuck_system_shows_in_every_gauge(client):
    """A failed job, an event waiting, a charge unanswered past its resend time, a hand-off the partner has not
    taken with its seller's email unsent, and a declined card's debt: each gauge says so at T + 20 minutes."""
    a_failed_job()
    seller = factories.seller()
    declined = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS))
    sepa = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS))
    run_due_work(T)  # the card goes into dunning (attempt 2 in 7 days), the SEPA order into collections
    hand_to_collections(Order.get_by_id(sepa.id), T + MINUTE)  # no worker runs: neither posted nor emailed
    store_event("msg_waiting", "payment.failed", "{}", T + 2 * MINUTE)
    factories.order(seller, anchor=T + 5 * MINUTE)
    assert len(factories.charge_due(T + 5 * MINUTE)) == 1  # sent, and the gateway never answers

    gauges = scrape_at(T + 20 * MINUTE)

    assert Order.get_by_id(declined.id).status == Order.ACTIVE
    assert {name: value(gauges, name, **labels) for name, labels in EVERY_GAUGE} == {
        "tranche_gateway_events_waiting": 1,
        "tranche_gateway_events_oldest_waiting_age_seconds": 18 * 60,
        "tranche_gateway_events_failed": 0,
        "tranche_charge_attempts_in_flight_past_resend": 1,
        "tranche_outbox_backlog": 1,
        "tranche_outbox_oldest_message_age_seconds": 19 * 60,
        "tranche_collection_handoffs_waiting": 1,
        "tranche_collection_handoffs_oldest_waiting_age_seconds": 19 * 60,
        "tranche_jobs_queued": queue().count,
        "tranche_jobs_failed": 1,
        "tranche_revenue_at_risk": 30,
    }
    assert value(gauges, "tranche_outbox_backlog", channel="slack") == 0
    assert value(gauges, "tranche_jobs_queued", queue="tranche-slack") == 0  # a queue of its own (bot/bolt.py)


EVERY_GAUGE = [
    ("tranche_gateway_events_waiting", {}),
    ("tranche_gateway_events_oldest_waiting_age_seconds", {}),
    ("tranche_gateway_events_failed", {}),
    ("tranche_charge_attempts_in_flight_past_resend", {}),
    ("tranche_outbox_backlog", {"channel": "email"}),
    ("tranche_outbox_oldest_message_age_seconds", {"channel": "email"}),
    ("tranche_collection_handoffs_waiting", {}),
    ("tranche_collection_handoffs_oldest_waiting_age_seconds", {}),
    ("tranche_jobs_queued", {"queue": "tranche"}),
    ("tranche_jobs_failed", {"queue": "tranche"}),
    ("tranche_revenue_at_risk", {"currency": "EUR"}),
]


def test_a_scrape_reads_the_database_in_one_query_per_gauge_family(client):
    """Events, attempts, outbox, hand-offs, revenue at risk: five queries, whatever the tables hold."""
    with count_queries() as queries:
        scrape_at(T)

    assert queries.count == 5


def test_with_metrics_token_set_only_a_scrape_bearing_it_is_answered(client, monkeypatch):
    """METRICS_TOKEN: 401 without it, with another token or scheme; 200 with `Authorization: Bearer <token>`."""
    monkeypatch.setenv("METRICS_TOKEN", "scrape-me")

    refused = [
        client.get("/metrics", headers=headers)
        for headers in ({}, {"Authorization": "Bearer scrape-you"}, {"Authorization": "Basic c2NyYXBlLW1l"})
    ]

    assert [r.status_code for r in refused] == [401, 401, 401]
    assert refused[0].headers["WWW-Authenticate"].startswith("Bearer")
    assert "tranche_" not in refused[0].get_data(as_text=True)
    assert value(scrape(client, Authorization="Bearer scrape-me"), "tranche_jobs_failed", queue="tranche") == 0


def test_an_rq_worker_processs_counts_add_up_with_the_web_apps_in_the_scrape(client):
    """The web app (this process) stores the event, the Procfile's RQ worker (another) applies it: one scrape here
    shows both counts, the charge read from the worker's own file."""
    order = gateway.charge_in_flight()
    body = gateway.event_body("payment_succeeded__card", order_id=order.id)
    before = scrape(client)
    assert gateway.post(client, body, gateway.signed_headers(body)).status_code == 200

    with start_worker("--burst", "--logging_level", "WARNING") as worker:
        assert worker.wait(timeout=60) == 0

    after = scrape(client)
    assert GatewayEvent.get().status == "processed"
    assert webhooks_grown(before, after) == {("gateway", "stored"): 1}
    assert grown(before, after, "tranche_charges_total", kind="automatic", outcome="succeeded") == 1
    workers_own = samples_of_files([Path(METRICS_DIR) / f"counter_{worker.pid}.db"])
    assert value(workers_own, "tranche_charges_total", kind="automatic", outcome="succeeded") == 1


def samples_of_files(paths: list[Path]) -> Samples:
    """The counts kept in these processes' files alone."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in MultiProcessCollector.merge([str(path) for path in paths])
        for sample in family.samples
    }


def test_the_procfiles_gunicorn_shows_every_counter_series_at_zero_from_its_start(tmp_path):
    """Before any webhook or charge: each gateway and result, each kind and outcome, at 0 (an alert on a rate needs
    its series to exist), from a folder of its own."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PORT": str(port), "PUBLIC_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with subprocess.Popen(  # noqa: S603 (the Procfile's web command, run by this virtualenv's Python)
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as web:
        try:
            wait_for(f"{url}/healthz", web)
            counters = {
                (name, labels): count
                for (name, labels), count in samples_of(requests.get(f"{url}/metrics", timeout=10).text).items()
                if name in ("tranche_webhooks_total", "tranche_charges_total")
            }
        finally:
            web.terminate()
            web.wait(timeout=30)

    webhooks = {(dict(labels)["gateway"], dict(labels)["result"]) for name, labels in counters if "webhooks" in name}
    charges = {(dict(labels)["kind"], dict(labels)["outcome"]) for name, labels in counters if "charges" in name}
    assert webhooks == {(route, result) for route in WEBHOOK_ROUTES for result in WEBHOOK_RESULTS}
    assert charges == {
        (kind, outcome) for kind in ("automatic", "customer", "renewal") for outcome in ("succeeded", "failed")
    }
    assert set(counters.values()) == {0}
    assert web.returncode == 0
