"""Tranche's Prometheus metrics: counters that every process of a machine adds to, and gauges read at scrape time.

The counters use prometheus_client's multiprocess mode: each process (gunicorn's workers, RQ's, the CLI) writes
its counts to a file of its own under config.METRICS_DIR, and a scrape adds them all up, the files of processes
gone included. prometheus_client picks the mode once, when it is first imported, from PROMETHEUS_MULTIPROC_DIR:
so this module sets it before importing it, and every process imports prometheus_client through here.
The gauges are no stored values: `Operations` reads the database and the queue each time it is scraped.
"""

import datetime as dt
import os
from collections.abc import Callable, Iterator

from config import METRICS_DIR

os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
METRICS_DIR.mkdir(parents=True, exist_ok=True)

from prometheus_client import CollectorRegistry, Counter  # noqa: E402
from prometheus_client.core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402
from rq import Queue  # noqa: E402

from billing import operations  # noqa: E402
from models import ChargeAttempt, GatewayEvent  # noqa: E402

# The gateways by their webhook route (POST /webhooks/gateway, the Standard Webhooks format the sandbox speaks, and
# /webhooks/stripe), and what the route told the sender: its `status` once stored, else the error's `code`.
WEBHOOK_ROUTES = ("gateway", "stripe")
WEBHOOK_RESULTS = ("stored", "duplicate", "ignored", "malformed_event", "unsupported_event_type", "bad_signature")
WEBHOOKS = Counter(
    "tranche_webhooks_total", "Gateway webhooks answered, by gateway (its route) and result.", ["gateway", "result"]
)
CHARGES = Counter(
    "tranche_charges_total",
    "Charge outcomes applied (a repeat of one is not counted), by kind of attempt and outcome.",
    ["kind", "outcome"],
)


def start_at_zero() -> None:
    """Make every series exist at 0, so that an alert on its rate needs no first event to see it.

    Called by one long-lived process (gunicorn's master): a series touched makes its process's file, and a file
    per `flask` command run would pile up, each read by every scrape."""
    for route in WEBHOOK_ROUTES:
        for result in WEBHOOK_RESULTS:
            WEBHOOKS.labels(route, result)
    for kind in (ChargeAttempt.AUTOMATIC, ChargeAttempt.CUSTOMER, ChargeAttempt.RENEWAL):
        for outcome in (ChargeAttempt.SUCCEEDED, ChargeAttempt.FAILED):
            CHARGES.labels(kind, outcome)


Clock = Callable[[], dt.datetime]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _by(name: str, documentation: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class Operations:
    """The gauges: what waits in the database and the queues at `clock()`, read when scraped."""

    def __init__(self, clock: Clock, queues: list[Queue]) -> None:
        self.clock = clock
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        events = operations.gateway_events_waiting()
        received = events[GatewayEvent.RECEIVED]
        yield _gauge("tranche_gateway_events_waiting", "Gateway events stored and not applied yet.", received.count)
        yield _gauge(
            "tranche_gateway_events_oldest_waiting_age_seconds",
            "How long the oldest gateway event not applied yet has waited (0: none waits).",
            received.age(now),
        )
        yield _gauge(
            "tranche_gateway_events_failed",
            "Gateway events whose application failed: waiting for their next try, or for an operator once the "
            "tries are used up (flask events failed).",
            events[GatewayEvent.FAILED].count,
        )
        yield _gauge(
            "tranche_charge_attempts_in_flight_past_resend",
            "Charges sent to the gateway and unanswered for longer than the resend time (10 minutes).",
            operations.attempts_past_resend(now),
        )
        outbox = operations.outbox_backlog()
        yield _by(
            "tranche_outbox_backlog",
            "Emails and Slack messages written and not sent yet, by channel.",
            "channel",
            {channel: backlog.count for channel, backlog in outbox.items()},
        )
        yield _by(
            "tranche_outbox_oldest_message_age_seconds",
            "How long the oldest message not sent yet has waited, by channel (0: none waits).",
            "channel",
            {channel: backlog.age(now) for channel, backlog in outbox.items()},
        )
        handoffs = operations.handoffs_waiting()
        yield _gauge(
            "tranche_collection_handoffs_waiting",
            "Hand-offs to the collection partner not accepted by it yet.",
            handoffs.count,
        )
        yield _gauge(
            "tranche_collection_handoffs_oldest_waiting_age_seconds",
            "How long the oldest hand-off not accepted yet has waited (0: none waits).",
            handoffs.age(now),
        )
        yield _by(
            "tranche_jobs_queued",
            "Jobs waiting in the queue for a worker.",
            "queue",
            {queue.name: queue.count for queue in self.queues},
        )
        yield _by(
            "tranche_jobs_failed",
            "Jobs that raised, kept for a day in RQ's failed job registry.",
            "queue",
            {queue.name: queue.failed_job_registry.get_job_count(cleanup=False) for queue in self.queues},
        )
        yield _by(
            "tranche_revenue_at_risk",
            "Open debt (due and unpaid) of orders in dunning or interrupted, in units of the currency.",
            "currency",
            {currency: float(amount) for currency, amount in operations.revenue_at_risk(now).items()},
        )


def exposition(clock: Clock, queues: list[Queue], accept: str | None = None) -> tuple[bytes, str]:
    """Every metric, the counters of all processes added up, and its content type: in the format the scraper's
    Accept header asks for (OpenMetrics, or Prometheus' text format, which is the default)."""
    # A registry per scrape, as prometheus_client's multiprocess mode asks: the files are read anew each time.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
    registry.register(Operations(clock, queues))
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type


def process_ended(pid: int) -> None:
    """A process of this machine ended: its counts stay in the sums, its live gauges (should any be added) go."""
    mark_process_dead(pid)  # type: ignore[no-untyped-call]  # as above
