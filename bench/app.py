"""What the benchmark serves with gunicorn: Tranche's app, and beside it on the same server two ceilings the
webhook is held to: a bare Flask endpoint, `POST /bare`, that touches neither the database nor Redis; and
`POST /bare/insert`, the floor of any webhook that stores its event before it answers: the body INSERTed and
committed by psycopg alone, on one connection per process (no ORM, no pool, no Redis).

    gunicorn 'bench.app:bench_app()'
"""

import functools
import os

import psycopg
from flask import Flask, jsonify, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import create_app

# bench/webhooks.py creates it beside Tranche's tables.
FLOOR_TABLE = "CREATE TABLE IF NOT EXISTS bench_row (id bigserial PRIMARY KEY, body bytea NOT NULL)"


@functools.cache
def _connection() -> psycopg.Connection:
    return psycopg.connect(os.environ["DATABASE_URL"].replace("+pool", ""), autocommit=True)


def bench_app():
    # A Flask app of its own, so none of Tranche's request hooks (the database connection) run for it.
    bare = Flask("bare")

    @bare.post("/", strict_slashes=False)
    def ceiling():
        return jsonify(status="ok")

    @bare.post("/insert")
    def floor():
        _connection().execute("INSERT INTO bench_row (body) VALUES (%s)", (request.get_data(),))
        return jsonify(status="ok")

    tranche = create_app()
    tranche.wsgi_app = DispatcherMiddleware(tranche.wsgi_app, {"/bare": bare})
    return tranche
