"""What the web app writes to its logs: never a customer's link token (a token lets its reader act as the customer)."""

import datetime as dt
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from billing.links import card_update_link, plan_change_link
from config import Settings
from tests.conftest import ROOT, free_port


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


def test_the_procfiles_gunicorn_logs_card_and_confirm_requests_without_their_tokens(tmp_path: Path):
    """A real gunicorn from gunicorn.conf.py: the access log shows `/card/…` and `/confirm/…`, never the token."""
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
            requests.get(f"{url}/card/{card}?attempt=2", timeout=10)
            requests.post(f"{url}/confirm/{confirm}", headers={"Referer": f"{url}/confirm/{confirm}"}, timeout=10)
        finally:
            web.terminate()
            web.wait(timeout=30)
    written = log.read_text()

    assert "GET /card/…?attempt=2 HTTP/1.1" in written and "POST /confirm/… HTTP/1.1" in written, written
    assert f'"{url}/confirm/…"' in written  # the referer
    assert card not in written and confirm not in written


def test_an_error_the_app_logs_with_a_link_path_shows_no_token(app, caplog):
    """Flask's own line for an unexpected error ("Exception on /card/<token> [POST]") has the token masked."""
    card, _ = tokens()
    with caplog.at_level(logging.ERROR):
        app.logger.error("Exception on %s [%s]", f"/card/{card}", "POST")

    assert [r.getMessage() for r in caplog.records] == ["Exception on /card/… [POST]"]
