"""A local HTTP server standing in for whoever Tranche POSTs signed events to (the collection partner, a seller's
endpoint): it verifies each POST as Standard Webhooks and answers from a script of statuses."""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


class Receiver:
    """`received` holds each verified POST's webhook-id and payload; `answers` the statuses to give, then 200."""

    def __init__(self, secret: Callable[[], str]):
        self.secret = secret
        self.answers: list[int] = []
        self.redirect_to: str | None = None  # sent as Location with each answer: a 307 then points there
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    status = receiver.handle(dict(self.headers), body)
                except Exception:  # noqa: BLE001 — a forged or garbled POST is refused, as a receiver would
                    status = 401
                self.send_response(status)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, headers: dict, body: bytes) -> int:
        Webhook(self.secret()).verify(body, headers)
        self.received.append({"webhook-id": headers["webhook-id"], "payload": json.loads(body), "headers": headers})
        return self.answers.pop(0) if self.answers else 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
