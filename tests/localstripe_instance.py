"""localstripe, a stateful Stripe stand-in, run for one test on a free port of 127.0.0.1 with a state file of its
own, and stopped by its pid. Its own start listens on every interface and pickles its state to one
/tmp/localstripe.pickle that every run on the machine shares; tests/localstripe_server.py does neither.

Its webhooks (`POST /_config/webhooks/<id>`, it has no /v1/webhook_endpoints) go to this run's app, signed with
WEBHOOK_SECRET, for the events Tranche uses; it logs each delivery, which `delivered` reads.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import stripe

from gateways.stripe import EVENT_TYPES

SECRET_KEY = "sk_test_tranche"
PUBLISHABLE_KEY = "pk_test_tranche"
WEBHOOK_SECRET = "whsec_localstripe_tranche"
SERVER = Path(__file__).with_name("localstripe_server.py")
ROOT = SERVER.parents[1]


class Localstripe:
    def __init__(self, tmp_path: Path):
        with socket.socket() as probe:  # a free port (tests.conftest's free_port: conftest imports this module)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp_path / "localstripe.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                [sys.executable, str(SERVER), str(port), str(tmp_path / "localstripe.pickle")],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": self.url})
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{self.url}/js.stripe.com/v3/", timeout=1)
                break
            except requests.ConnectionError:
                assert self.process.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "localstripe did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def send_webhooks_to(self, url: str) -> None:
        requests.post(
            f"{self.url}/_config/webhooks/tranche",
            data={"url": url, "secret": WEBHOOK_SECRET, "events[]": list(EVENT_TYPES)},
            timeout=5,
        ).raise_for_status()

    def customer_with(self, payment_method: dict) -> tuple[str, stripe.PaymentMethod]:
        """A Stripe Customer with one PaymentMethod attached, made from `payment_method` (type, card or sepa_debit)."""
        customer = self.client.v1.customers.create({"email": "claire@example.com"})
        made = self.client.v1.payment_methods.create(payment_method)  # type: ignore[arg-type]
        return customer.id, self.client.v1.payment_methods.attach(made.id, {"customer": customer.id})

    def payment_intents(self) -> list[stripe.PaymentIntent]:
        return list(self.client.v1.payment_intents.list().auto_paging_iter())

    def setup_intents(self) -> list[stripe.SetupIntent]:
        return list(self.client.v1.setup_intents.list().auto_paging_iter())

    def delivered(self, event_type: str, count: int = 1, timeout: float = 15) -> None:
        """Wait until localstripe logged `count` deliveries of `event_type` that the app answered 2xx."""
        line = f'webhook "{event_type}" successfully delivered'
        deadline = time.monotonic() + timeout
        while self.log.read_text().count(line) < count:
            assert time.monotonic() < deadline, f"no {line!r} in:\n{self.log.read_text()}"
            time.sleep(0.05)


@pytest.fixture
def localstripe(tmp_path, app, monkeypatch):
    """localstripe for this test, with GATEWAY=stripe pointing at it and its webhooks sent to the app."""
    server = Localstripe(tmp_path)
    server.send_webhooks_to(f"{os.environ['PUBLIC_URL']}/webhooks/stripe")
    monkeypatch.setenv("GATEWAY", "stripe")
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_API_BASE", server.url)
    monkeypatch.setenv("STRIPE_JS_URL", f"{server.url}/js.stripe.com/v3/")
    yield server
    server.stop()
