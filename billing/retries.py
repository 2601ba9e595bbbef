"""How often, and how far apart, what failed is tried again: R5's card debits, and the deliveries and gateway
events that a failure of ours or of a partner held back (waits that double, up to a ceiling, within a bound)."""

import datetime as dt
from dataclasses import dataclass

# R5: a failed card debit is tried three times in all, 7 and 14 days after the first failure (billing.dunning).
AUTOMATIC_ATTEMPTS = 3
RETRY_INTERVAL = dt.timedelta(days=7)
# SPEC "Declines": the bank says the card must never be charged again, so no retry can succeed.
HARD_DECLINES = frozenset({"lost_card", "stolen_card", "pickup_card", "fraudulent", "restricted_card"})
DO_NOT_TRY_AGAIN = "do_not_try_again"
# A gateway's codes for a payment method it no longer charges (detached, deleted, never activated): a hard decline
# too, since no retry changes them (gateways.stripe gives these the advice DO_NOT_TRY_AGAIN).
METHOD_GONE = frozenset(
    {
        "resource_missing",
        "payment_method_unactivated",
        "payment_method_not_available",
        "payment_method_unexpected_state",
    }
)


def hard_decline(failure_code: str | None, advice_code: str | None) -> bool:
    """Whether a decline is never retried: a hard decline code, or the gateway's advice not to try again."""
    return failure_code in HARD_DECLINES or advice_code == DO_NOT_TRY_AGAIN


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

# A failing gateway event is tried five times, 1, 2, 4 and 8 minutes apart: long enough to outlast a database
# restart or a deploy, short enough that a payment is not left unapplied for long; then an operator decides.
EVENT_RETRIES = Backoff(first=dt.timedelta(minutes=1), tries=5)
