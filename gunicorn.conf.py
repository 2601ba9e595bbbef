"""Gunicorn settings for the Procfile's `web`. GUNICORN_CMD_ARGS overrides them (e.g. --bind 0.0.0.0:8000)."""

import os

from gunicorn.glogging import Logger

from billing.links import HIDE_LINK_TOKENS
from metrics import process_ended, start_at_zero

bind = f"127.0.0.1:{os.environ.get('PORT') or 5000}"
# A couple of sync workers: each request is a few short queries, and the sandbox gateway's webhook
# must find a free worker while another one is busy. WEB_CONCURRENCY is gunicorn's own knob.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
accesslog = "-"
# Its default control socket is one per user ($HOME/.gunicorn/gunicorn.ctl), shared by every gunicorn on
# the machine; nothing here uses gunicornc.
control_socket_disable = True


class LinkTokensHidden(Logger):
    """Gunicorn's logger, except that its access and error lines show `/card/…` instead of a customer's link.

    On the handlers, which each setup makes anew (a reload too), so the filter is never added twice."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.addFilter(HIDE_LINK_TOKENS)


logger_class = LinkTokensHidden


def when_ready(server):
    start_at_zero()


def child_exit(server, worker):
    """prometheus_client's bookkeeping for a worker gone (ended, killed or recycled); its counts still add up."""
    process_ended(worker.pid)
