"""What a fact calls for once it is committed: a charge to send, messages to deliver, a hand-off, events to apply.

A rule says so beside the row it writes (`follow_up`); when the outermost transaction commits, the process's
starter (set by `runtime`, the one place that turns follow-ups into jobs) gets them, each once. A rolled-back
transaction starts nothing. The rows stay the truth: the tick finds whatever is due even when a follow-up is lost
(Redis down, a crash between the commit and the queue), so a follow-up only saves the wait for the next tick.
"""

import contextlib
import datetime as dt
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from models import db

CHARGE = "charge"
SEND_CHARGES = "send_due_charges"
DELIVER_HANDOFF = "deliver_handoff"
SEND_MESSAGES = "send_due_messages"
APPLY_EVENTS = "process_received_events"


@dataclass(frozen=True)
class FollowUp:
    """`work` on the row `row_id`, reading the clock at `at` (None: whenever it runs)."""

    work: str
    row_id: int | None = None
    at: dt.datetime | None = None


Starter = Callable[[Iterable[FollowUp]], None]
_starter: Starter | None = None
# Per outermost transaction: what it calls for, in order, each once (dropped with a rolled-back transaction).
_waiting: "weakref.WeakKeyDictionary[object, dict[FollowUp, None]]" = weakref.WeakKeyDictionary()
_held = threading.local()


def start_with(starter: Starter) -> None:
    """Have `starter` turn every committed follow-up of this process into work."""
    global _starter
    _starter = starter


def follow_up(work: FollowUp) -> None:
    """Start `work` once the current transaction commits; at once outside a transaction."""
    top = db.top_transaction()
    if top is None:
        _start([work])
        return
    waiting = _waiting.get(top)
    if waiting is None:
        waiting = _waiting[top] = {}
        db.after_commit(lambda: _start(_waiting.pop(top, {})))
    waiting[work] = None


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Start what the block's commits call for only when it ends, however it ends: for an adapter that must
    show its answer before the work can overtake it (a Slack reply that the charge's outcome replaces)."""
    outer = getattr(_held, "work", None)
    _held.work = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            work, _held.work = _held.work, None
            _start(work)


def _start(work: Iterable[FollowUp]) -> None:
    holding = getattr(_held, "work", None)
    if holding is not None:
        holding.update(dict.fromkeys(work))
    elif _starter is not None:
        _starter(work)
