"""Stripe's API on 127.0.0.1 answering with recorded answers, for what localstripe does not do as Stripe does:
Idempotency-Key (localstripe ignores it), decline and advice codes (it declines every card as card_declined),
a PaymentIntent `processing` for days (its SEPA debits settle in a second), 5xx and 429, lists by customer and
/v1/webhook_endpoints (it has neither). Every request is kept, with its form fields and headers."""

import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ANSWERS = Path(__file__).parent / "fixtures" / "stripe" / "answers"


@dataclass
class Request:
    method: str
    path: str
    fields: dict[str, str]
    headers: dict[str, str]


def recorded(name: str, **changes) -> dict:
    """A recorded answer of Stripe's from tests/fixtures/stripe/answers/, with `changes` to its top-level fields."""
    return {**json.loads((ANSWERS / f"{name}.json").read_text()), **changes}


class StripeAPI:
    def __init__(self):
        self.requests: list[Request] = []
        self._answers: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, body: dict, status: int = 200) -> None:
        """Answer the next `method` request to `path` with `body` and `status` (answers queue up, in order)."""
        with self._lock:
            self._answers.setdefault((method, path), []).append((status, body))

    def sent(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (method, path) in ((None, None), (r.method, r.path))]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                path, _, query = self.path.partition("?")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fields = dict(urllib.parse.parse_qsl(raw or query))
                with api._lock:
                    api.requests.append(Request(self.command, path, fields, dict(self.headers)))
                    queued = api._answers.get((self.command, path))
                    status, body = (
                        queued.pop(0)
                        if queued
                        else (404, {"error": {"type": "invalid_request_error", "message": f"nothing recorded: {path}"}})
                    )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        return Handler


@pytest.fixture
def stripe_api(monkeypatch):
    """GATEWAY=stripe, its API answered by a StripeAPI of this test's."""
    api = StripeAPI()
    monkeypatch.setenv("GATEWAY", "stripe")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_recorded")
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_recorded")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_recorded")
    monkeypatch.setenv("STRIPE_API_BASE", api.url)
    yield api
    api.server.shutdown()
    api.server.server_close()
