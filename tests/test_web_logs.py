"""What the web app writes to its logs: never a customer's link token (a token lets its reader act as the customer)."""

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from billing.links import card_update_link, plan_change_link
from config import Settings
from jobs.work import run_due_work
from models import Order
from runtime import JsonLines, hide_secrets, queue, settings, utcnow
from tests import factories
from tests.conftest import ROOT, free_port
from tests.test_api import Api
from tests.test_pages_card import pay
from tests.test_pages_confirm import answer
from tests.test_pages_links import card_link, path_of


def tokens() -> list[str]:
    """A card link's token and a plan change link's, as the emails carry them."""
    now = dt.datetime.now(dt.UTC)
    links = [card_update_link(Settings(), 12, 1, now), plan_change_link(Settings(), 3, 12, "40.00", now)]
    return [link.rsplit("/", 1)[1] for link in links]


def wait_for(url: str, web: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while web.poll() is None and time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:  # not listening yet, or its first request still loads the app
            time.sleep(0.2)
    raise AssertionError("gunicorn did not answer")


def test_the_procfiles_gunicorn_writes_json_lines_one_per_request_without_link_tokens(tmp_path: Path):
    """A real gunicorn from gunicorn.conf.py: every line is JSON; a request's line says /card/…, never the token."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    card, confirm = tokens()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1", "PUBLIC_URL": url}
    with (
        log.open("w") as out,
        # The Procfile's web command, run by this virtualenv's Python.
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        ) as web,
    ):
        try:
            wait_for(f"{url}/healthz", web)
            requests.get(f"{url}/card/{card}?attempt=2", headers={"X-Request-Id": "req-from-the-proxy"}, timeout=10)
            requests.post(f"{url}/confirm/{confirm}", timeout=10)
        finally:
            web.terminate()
            web.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]

    asked = [(line["method"], line["path"], line["status"]) for line in lines if line["message"] == "request"]
    assert asked[-2:] == [("GET", "/card/…", 404), ("POST", "/confirm/…", 404)]
    card_line = next(line for line in lines if line.get("path") == "/card/…")
    assert (card_line["request_id"], card_line["level"], card_line["process"]) == ("req-from-the-proxy", "INFO", "web")
    assert card_line["duration_ms"] > 0
    assert card not in log.read_text() and confirm not in log.read_text()


SECRETS = {
    "a link token": (f"GET /card/{tokens()[0]} failed", "GET /card/… failed"),
    "a card number": ("card 4242 4242 4242 4242 refused", "card [card number] refused"),
    "a card number unspaced": ("number=4000000000009995", "number=[card number]"),
    "a card number opening the line": ("4242424242424242 refused", "[card number] refused"),
    "an IBAN": ("iban DE89370400440532013000 and DE89 3704 0044 0532 0130 00", "iban [IBAN] and [IBAN]"),
    "an IBAN opening the line": ("DE89370400440532013000 refused", "[IBAN] refused"),
    "an email address": ("to claire.dubois+shop@example.com", "to c…@example.com"),
    "an API key": ("key tr_Zq3-hY8dkw0_Lm2pQx9sVbN4 used", "key tr_… used"),
    "a bearer token": ("Authorization: Bearer abc.def", "Authorization: Bearer …"),
    "a signing secret": ("secret whsec_dGVzdA== set", "secret whsec_… set"),
}


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_log_line_never_shows_a_secret(secret):
    written, shown = SECRETS[secret]
    assert hide_secrets(written) == shown


def test_times_amounts_and_ids_are_left_as_they_are():
    text = (
        "2026-12-01T09:00:00+00:00 order 12 attempt tranche-12-1-automatic-1 30.00 EUR pi_3QfRecorded0001 "
        "request 6662d999193d4e0a8842301234567890 ch_DE89370400440532013000 ref.4242424242424242 pi_4242424242424242"
    )
    assert hide_secrets(text) == text


def test_an_exception_is_one_json_line_with_its_traceback_and_no_secret():
    try:
        raise ValueError("claire@example.com paid with 4242424242424242")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = json.loads(JsonLines().format(record))

    assert (line["level"], line["message"]) == ("ERROR", "failed")
    assert "ValueError: c…@example.com paid with [card number]" in line["exc_info"]


def test_a_line_holding_a_number_past_64_bits_is_written_all_the_same():
    """orjson refuses an integer past 64 bits: the line would be lost, and logging's own error printed instead."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "request", None, None)
    record.order_ids = [10**30]

    line = json.loads(JsonLines().format(record))

    assert (line["message"], line["order_ids"]) == ("request", [10**30])


@pytest.fixture
def log_lines():
    """What this process logs, as the Procfile's processes write it (runtime.JsonLines), for one test."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield written
    root.removeHandler(handler)
    root.setLevel(level)


def test_the_logs_of_a_whole_story_hold_no_secret_and_a_line_per_request_and_job(client, log_lines):
    """Ordered by card and by IBAN, declined, paid on the card page with a new card, a plan change confirmed: every
    line is JSON with a level and a duration, requests carry their id and jobs theirs, with the order they
    touched, and no card number, IBAN, API key, email address or link token appears anywhere."""
    seller = factories.seller()
    api = Api(client, seller.api_key)
    body = api.order_body()
    body["first_due_at"] = utcnow().isoformat()
    body["payment_method"]["number"] = factories.INSUFFICIENT_FUNDS
    order_id = api.post("/orders", body).get_json()["id"]
    sepa = {**api.order_body("order_sepa_weekly.json"), "invoice_number": "INV-SEPA"}
    assert api.post("/orders", sepa).status_code == 201
    run_due_work(utcnow())
    card = card_link(Order.get_by_id(order_id))
    assert pay(client, card, number=factories.SUCCEEDS).status_code == 303
    run_due_work(utcnow())
    change = api.post(f"/orders/{order_id}/plan-change", {"amount": "40.00"}).get_json()
    assert change["status"] == "pending", change
    confirm = path_of(plan_change_link(settings(), change["id"], order_id, "40.00"))
    assert answer(client, confirm, "confirm").status_code == 200
    run_due_work(utcnow())

    written = log_lines.getvalue()
    lines = [json.loads(line) for line in written.splitlines()]
    requests_logged = [line for line in lines if line["message"] == "request"]
    jobs_logged = [line for line in lines if line["message"] == "job"]
    assert len(requests_logged) >= 8 and len(jobs_logged) >= 5
    assert all({"time", "level", "duration_ms"} <= line.keys() for line in requests_logged + jobs_logged)
    ids = [line["request_id"] for line in requests_logged]
    assert all(len(request_id) == 32 for request_id in ids), ids
    assert {"request_id", "order_ids"} <= next(line for line in requests_logged if line["path"] == "/card/…").keys()
    charges = [line for line in jobs_logged if line["job"] == "jobs.work.charge"]
    assert charges and all(line["order_ids"] and line["attempt_ids"] and line["status"] == "ok" for line in charges)
    for secret in (
        factories.INSUFFICIENT_FUNDS,
        factories.SUCCEEDS,
        "4242 4242 4242 4242",
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        seller.api_key,
        "claire@example.com",
        card.rsplit("/", 1)[1],
        confirm.rsplit("/", 1)[1],
    ):
        assert secret not in written, secret


def test_the_procfiles_worker_writes_one_json_line_per_job_with_the_order_and_attempt_it_charged():
    """RQ's own lines per job are left out: the job's one line says which job, how it ended and what it touched."""
    order = factories.order(factories.seller(), anchor=utcnow() - dt.timedelta(hours=1))
    (attempt,) = factories.open_due(utcnow())
    queue().enqueue("jobs.work.charge", attempt.id, job_id=f"charge-{attempt.id}")
    worker = subprocess.run(  # noqa: S603 (the Procfile's worker command, burst)
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--worker-class", "runtime.Worker"]
        + ["--url", os.environ["REDIS_URL"], "tranche"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(line) for line in worker.stderr.splitlines()]

    charged = [line for line in lines if line["message"] == "job" and line["job"] == "jobs.work.charge"]
    assert len(charged) == 1, worker.stderr
    assert (charged[0]["job_id"], charged[0]["status"], charged[0]["process"]) == (
        f"charge-{attempt.id}",
        "ok",
        "worker",
    )
    assert (charged[0]["order_ids"], charged[0]["attempt_ids"]) == ([order.id], [attempt.id])
    assert not [line for line in lines if line["logger"].startswith("rq.") and line["level"] == "INFO"]
