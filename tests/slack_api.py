"""A local HTTP server that answers like Slack's Web API (SLACK_API_URL) and takes response_url posts, recording
every call; it can be told to answer a method with 429 and Retry-After, or with a 5xx. Also the fixtures and the
signed requests the Slack tests share."""

import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from slack_sdk.signature import SignatureVerifier

from runtime import JobWorker, redis_connection, slack_queue

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-single-workspace"
TEAM = "T0TRANCHE"
CHANNEL = "C0BILLING"
USER = "U0ALICE"


class SlackAPI:
    """Slack's Web API on 127.0.0.1: `calls` holds (method, body, token, HTTP status) in the order received."""

    def __init__(self):
        self.calls: list[tuple[str, dict, str | None, int]] = []
        self.failures: dict[str, list[tuple[int, dict]]] = {}
        self.delays: dict[str, float] = {}
        self.installed_team = "T0OAUTH"
        self._changed = threading.Condition()
        self._messages = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.base}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self._changed:
            self.calls.clear()
            self.failures.clear()
            self.delays.clear()

    def response_url(self, name: str = "1") -> str:
        return f"{self.base}/response/{name}"

    def fail(self, method: str, status: int, retry_after: int | None = None, times: int = 1) -> None:
        """The next `times` calls of `method` answer `status` (with Retry-After when given)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.failures.setdefault(method, []).extend([(status, headers)] * times)

    def slow(self, method: str, seconds: float) -> None:
        """Answer `method` only after `seconds`, as a slow Slack would."""
        self.delays[method] = seconds

    def received(self, method: str) -> list[dict]:
        """The bodies of the calls of `method` that were answered 200."""
        with self._changed:
            return [body for name, body, _, status in self.calls if name == method and status == 200]

    def tokens(self, method: str) -> list[str | None]:
        with self._changed:
            return [token for name, _, token, _ in self.calls if name == method]

    def statuses(self, method: str) -> list[int]:
        with self._changed:
            return [status for name, _, _, status in self.calls if name == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10) -> list[dict]:
        """The bodies of `method`'s calls once there are `count` of them, once a worker ran the lazy work."""
        run_slack_work()
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received(method)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{method}: {len(self.received(method))} calls, expected {count}: {self.calls}"
                    )
                self._changed.wait(left)
            return self.received(method)

    def _answer(self, method: str, body: dict) -> dict:
        with self._changed:
            self._messages += 1
            ts = f"1790000000.{self._messages:06d}"
        if method == "chat.postMessage":
            return {"ok": True, "channel": body["channel"], "ts": ts, "message": {"text": body.get("text")}}
        if method == "chat.update":
            return {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method == "views.open":
            view = json.loads(body["view"]) if isinstance(body["view"], str) else body["view"]
            return {"ok": True, "view": {**view, "id": f"V{self._messages:06d}"}}
        if method == "views.publish":
            view = json.loads(body["view"]) if isinstance(body["view"], str) else body["view"]
            return {"ok": True, "view": {**view, "id": f"V{self._messages:06d}"}}
        if method == "auth.test":
            return {"ok": True, "user_id": "U0BOT", "bot_id": "B0BOT", "team_id": TEAM, "url": "https://t.slack.com/"}
        if method == "oauth.v2.access":
            return {
                "ok": True,
                "app_id": "A0TRANCHE",
                "access_token": "xoxb-installed-by-oauth",
                "token_type": "bot",
                "scope": "commands,chat:write,chat:write.public,incoming-webhook",
                "bot_user_id": "U0BOT",
                "team": {"id": self.installed_team, "name": "Alice's workspace"},
                "authed_user": {"id": USER},
                "incoming_webhook": {"channel": "#billing", "channel_id": "C0OAUTH", "url": "https://hooks.example"},
            }
        return {"ok": False, "error": "unknown_method"}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw or "{}")
                else:
                    body = dict(urllib.parse.parse_qsl(raw))
                is_response_url = self.path.startswith("/response/")
                method = "response_url" if is_response_url else self.path.removeprefix("/api/")
                if is_response_url:
                    body["path"] = self.path
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
                time.sleep(api.delays.get(method, 0))
                with api._changed:
                    failure = api.failures[method].pop(0) if api.failures.get(method) else None
                    answer = None if failure or is_response_url else api._answer(method, body)
                    if method == "chat.postMessage" and answer:
                        body["ts"] = answer["ts"]  # the message as posted: tests click on it by its ts
                    api.calls.append((method, body, token, failure[0] if failure else 200))
                    api._changed.notify_all()
                if failure:
                    status, headers = failure
                    error = "ratelimited" if status == 429 else "fatal_error"
                    self._send(status, {"ok": False, "error": error}, headers)
                else:
                    self._send(200, answer)

            def _send(self, status: int, answer: dict | None, headers: dict | None = None):
                data = b"ok" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if answer is None else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture(scope="session")
def slack_api_server():
    api = SlackAPI()
    yield api
    api.server.shutdown()
    api.server.server_close()


@pytest.fixture
def slack(slack_api_server, monkeypatch):
    """Slack on, for one workspace with SLACK_BOT_TOKEN, answered by the local Slack Web API."""
    slack_api_server.reset()
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack_api_server.url)
    monkeypatch.delenv("SLACK_CLIENT_ID", raising=False)
    monkeypatch.delenv("SLACK_CLIENT_SECRET", raising=False)
    return slack_api_server


def fixture(name: str, **changes) -> dict:
    """A request body from tests/fixtures/slack/, with `changes` to its top-level fields."""
    return {**json.loads((FIXTURES / name).read_text()), **changes}


def signed_post(client, body: dict, secret: str = SIGNING_SECRET, timestamp: int | None = None, headers=None):
    """POST a body to /slack/events as Slack signs it: an event as JSON, an interaction's fields in a form's
    `payload`, a command's as the form."""
    content_type = "application/x-www-form-urlencoded"
    if body.get("type") == "event_callback":
        raw, content_type = json.dumps(body), "application/json"
    elif body.get("type") in ("block_actions", "view_submission"):
        raw = urllib.parse.urlencode({"payload": json.dumps(body)})
    else:
        raw = urllib.parse.urlencode(body)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=raw)
    return client.post(
        "/slack/events",
        data=raw,
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
            **(headers or {}),
        },
    )


def command(client, slack: SlackAPI, name: str, text: str = "", **changes):
    """A slash command as Slack sends it, each with its own trigger; its response_url is the local server's."""
    body = fixture(
        "command.json",
        command=name,
        text=text,
        response_url=slack.response_url(),
        trigger_id=f"trigger-{uuid.uuid4().hex}",
        **changes,
    )
    return signed_post(client, body)


def click(client, slack: SlackAPI, action_id: str, order_id: int, message: dict | None = None, **changes):
    """A click on a button of `message` (a chat.postMessage body, or an ephemeral answer when it has no ts)."""
    body = fixture("block_actions.json", trigger_id=f"trigger-{uuid.uuid4().hex}", response_url=slack.response_url())
    body["actions"][0].update(action_id=action_id, value=str(order_id))
    if message is not None:
        body["message"]["blocks"] = message["blocks"]
        if "ts" in message:
            body["container"].update(message_ts=message["ts"], channel_id=message["channel"])
        else:
            body["container"] = {"type": "message", "is_ephemeral": True, "channel_id": CHANNEL}
    body.update(changes)
    return signed_post(client, body)


def run_slack_work() -> None:
    """What the Procfile's workers do meanwhile: run the lazy work that commands, clicks and forms queued."""
    JobWorker([slack_queue()], connection=redis_connection()).work(burst=True, logging_level="WARNING")


def wait_until(predicate, timeout: float = 10):
    """Wait for what a listener's lazy work does last (queue a job, write a row), once a worker ran it."""
    run_slack_work()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
