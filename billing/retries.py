"""How work that failed is tried again: waits that double after each failure, up to a ceiling, within a bound."""

import datetime as dt
from dataclasses import dataclass

# Past this many doublings the wait is years: the ceiling, or the bound, has long decided.
_MOST_DOUBLINGS = 20


@dataclass(frozen=True)
class Backoff:
    """Wait `first`, then twice as long after each further failure, never longer than `longest` (when set);
    after `tries` tries in all (when set), give up and leave it to an operator."""

    first: dt.timedelta
    longest: dt.timedelta | None = None
    tries: int | None = None

    def next_try(self, failures: int, now: dt.datetime) -> dt.datetime | None:
        """When to try again after `failures` (1 or more) failed tries; None once the bound is reached."""
        if self.tries is not None and failures >= self.tries:
            return None
        # An int, as failures >= 1: typeshed cannot know, for 2 ** -1 is a float.
        factor: int = 2 ** min(failures - 1, _MOST_DOUBLINGS)
        delay = self.first * factor
        return now + (min(delay, self.longest) if self.longest else delay)


# Emails, Slack messages and hand-offs to the collection partner: 1, 2, 4 … minutes, at most an hour apart,
# never given up (what waits is a fact someone must hear of).
DELIVERY_RETRIES = Backoff(first=dt.timedelta(minutes=1), longest=dt.timedelta(hours=1))
