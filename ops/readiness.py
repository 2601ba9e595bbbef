"""Whether this Tranche can do its work now (SPEC: GET /readyz, and `flask status`): its database and Redis answer,
its schema is up to date, and a worker and the Procfile's tick were seen in the last two minutes."""

import datetime as dt

from rq import Worker

from migrations import pending
from models import Heartbeat, db
from runtime import SEEN_WITHIN, TICK, queue, redis_connection

OK = "ok"


def _seen(at: dt.datetime | None, now: dt.datetime) -> str:
    if at is None:
        return "never seen"
    ago = int((now - at).total_seconds())
    return OK if now - at <= SEEN_WITHIN else f"last seen {ago} s ago"


def readiness() -> dict[str, str]:
    """Each check, "ok" or what is wrong with it; every check is made even when one fails."""
    now = dt.datetime.now(dt.UTC)  # liveness is about real time, whatever `flask clock` says
    checks: dict[str, str] = {}
    try:
        db.execute_sql("SELECT 1")
        missing = pending()
        checks["database"] = OK
        checks["schema"] = OK if not missing else f"migrations not applied: {', '.join(missing)} (flask db upgrade)"
        tick = Heartbeat.get_or_none(Heartbeat.name == TICK)
        checks["tick"] = _seen(tick.seen_at if tick else None, now)
    except Exception as error:  # noqa: BLE001 (any failure means the database cannot be used)
        checks["database"] = f"unreachable: {type(error).__name__}"
    try:
        redis_connection().ping()
        checks["redis"] = OK
        beats = [w.last_heartbeat for w in Worker.all(queue=queue()) if w.last_heartbeat is not None]
        checks["worker"] = _seen(max(beats, default=None), now)
    except Exception as error:  # noqa: BLE001 (as above, for Redis)
        checks["redis"] = f"unreachable: {type(error).__name__}"
    return checks


def ready(checks: dict[str, str]) -> bool:
    return all(value == OK for value in checks.values())
