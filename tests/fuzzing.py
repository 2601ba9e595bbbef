"""What the fuzz tests share: the Hypothesis profiles, requests whose fields know whether SPEC refuses them,
the bad values the surfaces must refuse, and the check every answer passes.

Each field is drawn as good, odd or bad. Good is what a careful client sends; odd is what SPEC neither
requires nor forbids (an unknown order, a long text, an exotic encoding): any answer but a 5xx will do;
bad is what SPEC refuses (a control character, a superscript digit, a time no rule can add days to), so a
request with one bad field must get a 4xx and change nothing. Hypothesis shrinks towards the first option,
so a falsifying example keeps only the fields that matter, good elsewhere.

`HYPOTHESIS_PROFILE=long` runs many more examples, at random, for a local hunt; `generated` leaves out the
explicit examples; CI runs the derandomized default.
"""

import datetime as dt
import os
from contextlib import contextmanager
from decimal import Decimal

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from models import MODELS, db
from runtime import redis_connection
from tests.test_pages_links import snapshot

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    database=None,
    print_blob=False,
    # The suite's fixtures (app, client, the clean tables) are set up once per test; each example resets
    # the tables itself (fresh_example).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("long", parent=settings.get_profile("ci"), derandomize=False, max_examples=2000)
# A failing @example stops a test before any generated example runs: this one skips them to see the rest.
settings.register_profile(
    "generated", parent=settings.get_profile("ci"), phases=[Phase.reuse, Phase.generate, Phase.shrink]
)
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MISSING = object()

# Texts a person could type: every character but those no stored text may hold.
STORABLE = st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"))
CONTROL = st.sampled_from(["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
NON_ASCII_DIGITS = st.sampled_from(["²", "¹", "³", "٣", "۳", "३", "３", "𝟑", "⁴"])


def texts(max_size=300):
    return st.text(STORABLE, min_size=1, max_size=max_size)


def with_control(text=None):
    """A text with a control character somewhere in it (NUL, a line break, …)."""
    around = st.text(STORABLE, max_size=20) if text is None else text
    return st.builds(lambda a, c, b: a + c + b, around, CONTROL, around)


def with_odd_digit(digits: str):
    """`digits` with one of them replaced by a digit of another script or a superscript."""
    return st.builds(
        lambda at, odd: digits[:at] + odd + digits[at + 1 :], st.integers(0, len(digits) - 1), NON_ASCII_DIGITS
    )


# Ids no database row has, or no number at all: "²".isdigit() is true, int("²") raises.
BAD_IDS = st.one_of(
    NON_ASCII_DIGITS,
    st.sampled_from([0, -1, 2**63, 2**64, "1.0", "", "abc", " 1", "1 ", "0x1", True, False, 1.5, [], {}, "-1"]),
    st.integers(max_value=0),
    st.integers(min_value=2**63),
)
# Amounts SPEC's pattern refuses: only ASCII digits, at most two places (a charge of 0 is odd, not malformed).
BAD_AMOUNTS = st.one_of(
    st.sampled_from(["30.00\n", "٣٠.٠٠", "３０.００", "1,99", "1e3", "abc", "", " ", "-5", "30.001"]),
    st.sampled_from([True, -5, [], {}, "NaN", "Infinity", "+30", "30.", ".5"]),
    with_odd_digit("30.00"),
)
BAD_CURRENCIES = st.one_of(
    st.sampled_from(["XYZ", "eur", "EU", "EURO", "", "E R", 978, True]), with_control(st.just("EU"))
)
# Offsets as the gateway and sellers write them: whole hours and the odd quarter hour.
OFFSETS = st.builds(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-23 * 60, 23 * 60).map(lambda m: m - m % 15)
)


def naive(*date) -> dt.datetime:
    return dt.datetime(*date)  # noqa: DTZ001 (Hypothesis takes naive bounds and adds the zone itself)


def iso_times(low: dt.datetime, high: dt.datetime):
    """ISO 8601 times with an offset between `low` and `high` (naive bounds, read as UTC)."""
    return st.builds(
        lambda at, zone: at.replace(tzinfo=dt.UTC).astimezone(zone).isoformat(),
        st.datetimes(min_value=low, max_value=high),
        OFFSETS,
    )


# Times no rule can add days to, or no time at all: year 1 and 9999 overflow once an offset or days are added.
BAD_TIMES = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-05-01T08:00:00", "garbage"]),
    st.sampled_from(["", "2026-13-01T00:00:00+00:00", "2026-05-01", 1777622400, True, [], "2026-05-01T08:00:00+25:00"]),
    st.builds(
        lambda at: at.replace(tzinfo=dt.UTC).isoformat(),
        st.datetimes(min_value=naive(1, 1, 2), max_value=naive(1899, 12, 31))
        | st.datetimes(min_value=naive(2201, 1, 1), max_value=naive(9999, 12, 30)),
    ),
    st.builds(lambda at: at.isoformat(), st.datetimes(min_value=naive(2026, 1, 1))),
)
UNKNOWN_FIELDS = st.dictionaries(
    st.sampled_from(["colour", "id", "__proto__", "amount_cents", "Name", ""]) | texts(20),
    st.none() | st.integers() | texts(20),
    min_size=1,
    max_size=3,
)


def amount_value(text: str) -> Decimal:
    return Decimal(text.strip())


class Draft:
    """A request being drawn: its fields, and the reasons SPEC refuses it (none: it may be accepted)."""

    def __init__(self, draw):
        self.draw = draw
        self.refused: list[str] = []

    def pick(self, name: str, good, odd=None, bad=None):
        """A value for `name` from one of the strategies; a bad one is recorded as a reason to refuse."""
        # Mostly good, so that an example gets past its first field and deep into the others.
        kinds = [("good", good)] * 4 + [(k, s) for k, s in (("odd", odd), ("bad", bad)) if s is not None]
        kind, strategy = self.draw(st.sampled_from(kinds), label=f"{name} kind")
        value = self.draw(strategy, label=name)
        if kind == "bad":
            self.refuse(f"{name}={value!r}")
        return value

    def put(self, target: dict, name: str, good, odd=None, bad=None, key=None):
        """`pick`, then set the value in `target` (MISSING leaves the key out)."""
        value = self.pick(name, good, odd, bad)
        if value is not MISSING:
            target[key or name.rpartition(".")[2]] = value
        return value

    def refuse(self, reason: str):
        self.refused.append(reason)


@contextmanager
def fresh_example():
    """Each example starts where the test did (empty tables, an empty Redis) and makes its own rows, in one
    transaction: one commit instead of one per row keeps a hundred examples quick on SQLite."""
    redis_connection().flushdb()
    with db.atomic():
        for model in reversed(MODELS):
            model.delete().execute()
        yield


def check_answer(response, before, refused: list[str]):
    """Never a 5xx; a request SPEC refuses gets a 4xx; any 4xx changed nothing."""
    status = response.status_code
    text = response.get_data(as_text=True)[:300]
    assert status < 500, f"{status} {text}"
    assert not refused or 400 <= status < 500, f"{status} although {refused}: {text}"
    if 400 <= status < 500:
        assert snapshot() == before, f"{status} changed the database: {text}"
