"""What makes a Slack request act once: a row per request, inserted if absent. Redis would forget it on a
restart without persistence, and Slack's retry of the request would then act a second time."""

import datetime as dt

from models import SlackRequest, db, unless_taken

# Slack retries a request for a few minutes at most; a key kept a day is never acted on twice.
KEPT_FOR = dt.timedelta(days=1)


def first_time(key: str, now: dt.datetime) -> bool:
    """Record `key`; true only for the request that recorded it, whichever process or thread asks first."""
    with db.connection_context():
        inserted = unless_taken(SlackRequest.insert(key=key, seen_at=now)).as_rowcount().execute()
    return inserted == 1


def forget(key: str) -> None:
    """Let `key` act again: a refused form may be corrected and submitted anew."""
    with db.connection_context():
        SlackRequest.delete().where(SlackRequest.key == key).execute()


def forget_old_requests(now: dt.datetime) -> int:
    """Delete the keys older than Slack's retries can be (the tick calls this: no scheduler of its own)."""
    return SlackRequest.delete().where(SlackRequest.seen_at < now - KEPT_FOR).execute()
