"""Faults of the services Tranche runs on, made real: a closed port in place of Redis."""

import contextlib
import os

from runtime import redis_connection
from tests.conftest import free_port


@contextlib.contextmanager
def redis_unreachable():
    """Within it, the app's Redis is a closed port (redis_connection is cached: cleared on the way in and out)."""
    own = os.environ["REDIS_URL"]
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/1"
    redis_connection.cache_clear()
    try:
        yield
    finally:
        os.environ["REDIS_URL"] = own
        redis_connection.cache_clear()
