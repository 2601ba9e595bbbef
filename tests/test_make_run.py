import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from models import Seller
from tests.conftest import ROOT, free_port

READY = "Ctrl-C stops everything."


def test_run_py_loads_the_demo_serves_the_app_and_stops_everything_on_ctrl_c():
    """`make run`'s launcher: first start loads the demo, the Procfile's processes serve, Ctrl-C stops them all."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # This suite's database and Redis, and a port of its own for the launched web app.
    env = {**os.environ, "PORT": str(port), "PUBLIC_URL": url}
    lines = []
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
            health = requests.get(f"{url}/healthz", timeout=5)
        finally:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=30)
            reader.join(timeout=10)
    output = "".join(lines)

    assert health.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert Seller.select().where(Seller.email == "demo@example.com").exists()
    assert "API key: tr_" in output
    for process in ("web", "worker", "tick"):
        assert f"{process} started" in output and f"{process} stopped" in output, output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=2)
