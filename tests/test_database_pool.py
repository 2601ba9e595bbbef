"""PostgreSQL's pool hands out live connections: one the server ended while it sat idle is replaced, whatever the
pool skips asking for a connection given back a moment ago (models.RecentlyCheckedPool)."""

import threading

import psycopg
import pytest

from models import RecentlyCheckedPool, db
from runtime import settings


@pytest.fixture
def pool():
    if not isinstance(db.obj, RecentlyCheckedPool):
        pytest.skip("SQLite opens its file, it has no pool")
    return db.obj


def backend_pid_of_a_request() -> int:
    """The server process behind the connection that a request (a thread of its own, as a web worker's) gets."""
    pids = []

    def request():
        with db.connection_context():
            pids.append(db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    return pids[0]


def test_a_connection_the_server_ended_while_it_sat_idle_in_the_pool_is_replaced(pool, monkeypatch):
    """A connection PostgreSQL ended while idle in the pool is not handed out: the next request gets a live one"""
    monkeypatch.setattr(RecentlyCheckedPool, "PING_AFTER_IDLE", 0.0)  # as if it had sat there a while
    ended = backend_pid_of_a_request()
    with psycopg.connect(settings().database_url.replace("+pool", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (ended,))

    assert backend_pid_of_a_request() != ended


def test_a_connection_given_back_a_moment_ago_is_handed_out_again(pool):
    """The pool hands the next request the connection the last one gave back (no new connection per request)"""
    assert backend_pid_of_a_request() == backend_pid_of_a_request()
