"""Gunicorn settings for the Procfile's `web`. GUNICORN_CMD_ARGS overrides them (e.g. --bind 0.0.0.0:8000)."""

import os

from gunicorn.glogging import Logger

from metrics import process_ended, start_at_zero
from runtime import JsonLines, configure_logging

bind = f"127.0.0.1:{os.environ.get('PORT') or 5000}"
# A couple of sync workers: each request is a few short queries, and the sandbox gateway's webhook
# must find a free worker while another one is busy. WEB_CONCURRENCY is gunicorn's own knob.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
# No access log: the app writes one JSON line per request itself (app.py), with its id, duration and ids.
accesslog = None
# Its default control socket is one per user ($HOME/.gunicorn/gunicorn.ctl), shared by every gunicorn on
# the machine; nothing here uses gunicornc.
control_socket_disable = True


class JsonLogger(Logger):
    """Gunicorn's logger, writing JSON lines without secrets (runtime.JsonLines) like the rest of Tranche.

    On the handlers, which each setup makes anew (a reload too)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonLines("web"))


logger_class = JsonLogger


def post_worker_init(_worker):
    configure_logging("web")


def when_ready(server):
    start_at_zero()


def child_exit(server, worker):
    """prometheus_client's bookkeeping for a worker gone (ended, killed or recycled); its counts still add up."""
    process_ended(worker.pid)
