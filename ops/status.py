"""`flask status`: one screen of what waits, fails or is stuck, and whether an operator is needed (exit 1).

Usable as a cron or monitoring check: its exit code says "needs an operator" for anything that does not heal by
itself, and for work waiting longer than the thresholds below.
"""

import datetime as dt
from dataclasses import dataclass, field

from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from billing import operations
from models import GatewayEvent, Heartbeat
from ops.readiness import OK, readiness
from progress import counted
from runtime import TICK, queue, redis_connection, work_queues

# Work waiting longer than this needs an operator: the workers are not keeping up, or not running.
EVENTS_WAIT_AT_MOST = dt.timedelta(minutes=5)
MESSAGES_WAIT_AT_MOST = dt.timedelta(minutes=15)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Status:
    lines: list[str] = field(default_factory=list)
    needs_operator: list[str] = field(default_factory=list)

    def line(self, what: str, text: str) -> None:
        self.lines.append(f"{what + ':':<11}{text}")

    def flag(self, problem: str) -> None:
        self.needs_operator.append(problem)

    def render(self) -> str:
        verdict = "needs an operator: " + "; ".join(self.needs_operator) if self.needs_operator else "all well"
        return "\n".join([*self.lines, verdict])


def status(now: dt.datetime) -> Status:
    """What stands now; `now` is the one clock's time (what is due), ages are counted on the wall clock."""
    wall = dt.datetime.now(dt.UTC)
    report = Status()
    checks = readiness()
    report.line("ready", ", ".join(f"{name} {value}" for name, value in checks.items()))
    report.needs_operator.extend(f"{name} {value}" for name, value in checks.items() if value != OK)
    if checks.get("database") != OK:
        return report

    if checks.get("redis") == OK:
        for work_queue in work_queues():
            failed_jobs = FailedJobRegistry(queue=work_queue).count
            started = StartedJobRegistry(queue=work_queue).count
            report.line(
                "queue", f"{work_queue.name}: {work_queue.count} queued, {started} running, {failed_jobs} failed"
            )
            if failed_jobs:
                report.flag(f"{counted(failed_jobs, 'failed job')} on {work_queue.name} (see /ops/rq or `rq info`)")
        workers = Worker.all(connection=redis_connection(), queue=queue())
        report.line(
            "workers", f"{len(workers)} registered" + (f": {', '.join(w.name for w in workers)}" if workers else "")
        )
    tick = Heartbeat.get_or_none(Heartbeat.name == TICK)
    report.line("last tick", f"{_age((wall - tick.seen_at).total_seconds())} ago" if tick else "never")

    events = operations.gateway_events_waiting()
    received, failed = events[GatewayEvent.RECEIVED], events[GatewayEvent.FAILED]
    unmatched = GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.UNMATCHED).count()
    report.line(
        "events",
        f"{received.count} waiting"
        + (f" (oldest {_age(received.age(wall))})" if received.count else "")
        + f", {failed.count} failed (flask events failed), {unmatched} unmatched (flask events unmatched)",
    )
    if received.age(wall) > EVENTS_WAIT_AT_MOST.total_seconds():
        report.flag(f"events waiting for {_age(received.age(wall))}")
    if failed.count:
        report.flag(f"{counted(failed.count, 'failed event')} (flask events failed, then flask events replay <id>)")

    late = operations.attempts_past_resend(now)
    report.line("charges", f"{late} in flight past their resend time")
    if late:
        report.flag(f"{counted(late, 'charge')} unanswered by the gateway past their resend time")

    for channel, backlog in operations.outbox_backlog().items():
        oldest = f" (oldest {_age(backlog.age(wall))})" if backlog.count else ""
        report.line(f"{channel}s", f"{backlog.count} waiting{oldest}")
        if backlog.age(wall) > MESSAGES_WAIT_AT_MOST.total_seconds():
            report.flag(f"{channel} messages waiting for {_age(backlog.age(wall))}")

    handoffs = operations.handoffs_waiting()
    failing = operations.handoffs_refused()
    last_error = failing.first()
    report.line(
        "hand-offs",
        f"{handoffs.count} waiting, {failing.count()} refused or unreachable so far"
        + (f" (last error: {last_error.last_delivery_error})" if last_error else ""),
    )
    if last_error:
        report.flag(f"{counted(failing.count(), 'hand-off')} the collection partner has not accepted")
    return report
