"""What the benchmark serves with gunicorn: Tranche's app, and beside it on the same server a bare Flask
endpoint, `POST /bare`, that touches neither the database nor Redis: the ceiling the webhook is held to.

    gunicorn 'bench.app:bench_app()'
"""

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import create_app


def bench_app():
    # A Flask app of its own, so none of Tranche's request hooks (the database connection) run for it.
    bare = Flask("bare")

    @bare.post("/", strict_slashes=False)
    def ceiling():
        return jsonify(status="ok")

    tranche = create_app()
    tranche.wsgi_app = DispatcherMiddleware(tranche.wsgi_app, {"/bare": bare})
    return tranche
