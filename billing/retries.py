"""How often, and how far apart, what failed is tried again: R5's card debits, and the deliveries and gateway
events that a failure of ours or of a partner held back (waits that double, up to a ceiling, within a bound)."""

import datetime as dt
from dataclasses import dataclass

# R5: a failed card debit is tried three times in all, 7 and 14 days after the first failure (billing.dunning).
AUTOMATIC_ATTEMPTS = 3
RETRY_INTERVAL = dt.timedelta(days=7)
# SPEC "Declines": a card's issuer refusing for these reasons is never retried automatically, nor is a card whose
# gateway advises `do_not_try_again`; every other decline is soft, and R5's ladder applies.
HARD_DECLINES = frozenset({"lost_card", "stolen_card", "pickup_card", "fraudulent", "restricted_card"})
DO_NOT_TRY_AGAIN = "do_not_try_again"
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
        delay = self.first * 2 ** min(failures - 1, _MOST_DOUBLINGS)
        return now + (min(delay, self.longest) if self.longest else delay)


# Emails, Slack messages and hand-offs to the collection partner: 1, 2, 4 … minutes, at most an hour apart,
# never given up (what waits is a fact someone must hear of).
DELIVERY_RETRIES = Backoff(first=dt.timedelta(minutes=1), longest=dt.timedelta(hours=1))

# A failing gateway event is tried five times, 1, 2, 4 and 8 minutes apart: long enough to outlast a database
# restart or a deploy, short enough that a payment is not left unapplied for long; then an operator decides.
EVENT_RETRIES = Backoff(first=dt.timedelta(minutes=1), tries=5)
