"""GET /readyz (SPEC "Operations"): ready when the database, Redis and the schema answer and a worker and the
Procfile's tick were seen in the last two minutes; 503 naming each part that is not."""

import datetime as dt
import logging

import pytest
from playhouse.migrations import Runner
from rq.utils import utcformat

from jobs.work import tick
from migrations import DIRECTORY
from models import Heartbeat, db
from runtime import SEEN_WITHIN, TICK, WORKER_TTL, JobWorker, Worker, queue, redis_connection


@pytest.fixture
def worker():
    """An RQ worker of Tranche's queue, registered as a running one is."""
    registered = JobWorker([queue()], connection=redis_connection())
    registered.register_birth()
    registered.heartbeat()
    yield registered
    registered.register_death()


def beat_long_ago(registered: JobWorker, seconds: int) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    redis_connection().hset(registered.key, "last_heartbeat", utcformat(past))
    Heartbeat.update(seen_at=past).where(Heartbeat.name == TICK).execute()


def test_with_a_worker_and_the_tick_seen_just_now_tranche_is_ready(client, worker):
    tick()

    answer = client.get("/readyz")

    assert answer.status_code == 200
    assert answer.get_json() == {
        "status": "ready",
        "database": "ok",
        "redis": "ok",
        "schema": "ok",
        "worker": "ok",
        "tick": "ok",
    }


def test_before_any_worker_or_tick_has_run_tranche_is_not_ready_and_says_which(client):
    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.get_json()["status"] == "not ready"
    assert (answer.get_json()["worker"], answer.get_json()["tick"]) == ("never seen", "never seen")
    assert answer.get_json()["database"] == "ok"


def test_readiness_flips_when_no_worker_heartbeat_is_fresh_and_back_once_one_beats(client, worker):
    tick()
    beat_long_ago(worker, 180)

    stale = client.get("/readyz")
    worker.heartbeat()
    tick()
    fresh = client.get("/readyz")

    assert stale.status_code == 503
    assert (stale.get_json()["worker"], stale.get_json()["tick"]) == ("last seen 180 s ago", "last seen 180 s ago")
    assert fresh.status_code == 200


def test_a_migration_not_applied_makes_tranche_not_ready_naming_it(client, worker):
    """Code deployed before `flask db upgrade`: not ready, and the answer says what to run."""
    tick()
    latest = sorted(p.stem for p in DIRECTORY.glob("0*.py"))[-1]
    history = Runner(db.obj, directory=str(DIRECTORY)).History
    history.delete().where(history.name == latest).execute()
    try:
        answer = client.get("/readyz")
    finally:
        history.create(name=latest)

    assert answer.status_code == 503
    assert answer.get_json()["schema"] == f"migrations not applied: {latest} (flask db upgrade)"


def test_an_idle_procfile_worker_beats_well_within_the_time_readiness_allows(monkeypatch):
    """RQ renews an idle worker's registration every worker_ttl - 15 s; the Procfile's worker asks for 60 s."""
    root = logging.getLogger()
    # The Procfile's worker sets up the process's logging: this test's process keeps its own.
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    assert dt.timedelta(seconds=WORKER_TTL - 15) < SEEN_WITHIN
    procfile_worker = Worker([queue()], connection=redis_connection())
    assert procfile_worker.dequeue_timeout == WORKER_TTL - 15
