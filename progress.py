"""What `flask tick` and `flask demo` show while they run the due work, and the summary they end with.

On a terminal, a live line (rich) counts the jobs as they run; elsewhere (cron, a pipe, a log) a plain line at
most every few seconds. The summary reads the database, so it counts the work of every worker, not only this
process's: what was charged, sent, delivered and applied since the work began, and what failed.
"""

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from peewee import fn
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from billing import operations
from models import ChargeAttempt, CollectionCase, GatewayEvent, Outbox

# Off a terminal, a progress line at most this often (seconds): enough to see it move, not a line per job.
PLAIN_EVERY = 5.0
APPLIED = (GatewayEvent.PROCESSED, GatewayEvent.IGNORED, GatewayEvent.UNMATCHED)


@dataclass
class JobsSeen:
    """The jobs this process ran, by function, and those that failed; `shown` is told the count after each."""

    ran: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    shown: Callable[[int], None] = lambda _count: None

    def __call__(self, job: str, succeeded: bool) -> None:
        self.ran[job] += 1
        if not succeeded:
            self.failed[job] += 1
        self.shown(self.ran.total())


@contextmanager
def showing_progress(what: str) -> Iterator[JobsSeen]:
    """While the block runs jobs (each reported to the JobsSeen it is given), show how many have run."""
    seen = JobsSeen()
    console = Console(stderr=True)
    if console.is_terminal:
        columns = (SpinnerColumn(), TextColumn(what), TextColumn("{task.completed} jobs run"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(what, total=None)
            seen.shown = lambda count: progress.update(task, completed=count)
            yield seen
        return
    last = time.monotonic()

    def plain(count: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PLAIN_EVERY:
            last = time.monotonic()
            click.echo(f"{what}: {count} jobs run", err=True)

    seen.shown = plain
    yield seen


def counted(count: int, noun: str) -> str:
    """ "1 event", "2 events"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary(since: dt.datetime, jobs: JobsSeen) -> str:
    """What was done since `since` (the time the work ran at, on the one clock), and what is failing now."""
    charged = dict(
        ChargeAttempt.select(ChargeAttempt.status, fn.COUNT(ChargeAttempt.id))
        .where(ChargeAttempt.requested_at >= since)
        .group_by(ChargeAttempt.status)
        .tuples()
    )
    sent = dict(
        Outbox.select(Outbox.channel, fn.COUNT(Outbox.id))
        .where(Outbox.sent_at >= since)
        .group_by(Outbox.channel)
        .tuples()
    )
    delivered = CollectionCase.select().where(CollectionCase.delivered_at >= since).count()
    applied = GatewayEvent.select().where(GatewayEvent.processed_at >= since, GatewayEvent.status.in_(APPLIED)).count()
    results = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in sorted(charged.items()))
    lines = [
        f"charges sent: {sum(charged.values())}" + (f" ({results})" if results else ""),
        f"emails sent: {sent.get(Outbox.EMAIL, 0)}, Slack messages sent: {sent.get(Outbox.SLACK, 0)}",
        f"hand-offs delivered: {delivered}, gateway events applied: {applied}",
    ]
    failing = {
        ("job", "here"): sum(jobs.failed.values()),
        ("event", "(flask events failed)"): operations.gateway_events_waiting()[GatewayEvent.FAILED].count,
        ("message", "not sent yet"): Outbox.select().where(Outbox.sent_at.is_null(), Outbox.attempts > 0).count(),
        ("hand-off", "the partner has not accepted"): operations.handoffs_refused().count(),
    }
    failed = [f"{counted(count, noun)} {what}" for (noun, what), count in failing.items() if count]
    lines.append("failed: " + ("; ".join(failed) if failed else "nothing"))
    return "\n".join(lines)
