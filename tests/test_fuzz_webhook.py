"""POST /webhooks/gateway under Hypothesis: signed bodies close to SPEC's event shape and fuzzed headers.

Never a 5xx; a 4xx stores nothing; a 2xx stores one event, which the event processor then applies or sets
aside without raising, so no event stays `received` to hold back the next customer's.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json

from hypothesis import example, given
from hypothesis import strategies as st

from jobs.work import process_received_events
from models import GatewayEvent
from runtime import settings
from tests import factories
from tests.fuzzing import (
    BAD_AMOUNTS,
    BAD_CURRENCIES,
    BAD_IDS,
    BAD_TIMES,
    FUZZ,
    MISSING,
    UNKNOWN_FIELDS,
    Draft,
    check_answer,
    fresh_example,
    iso_times,
    naive,
    texts,
    with_control,
)
from tests.test_pages_links import snapshot
from tests.test_webhook_gateway import T, charge_in_flight

WEBHOOK_ID = "msg_fuzz"


class TheOrder:
    """Stands for the id of the order each example makes, as a JSON number or as a string."""

    def __init__(self, as_text: bool):
        self.as_text = as_text

    def __repr__(self):
        return "TheOrder(text)" if self.as_text else "TheOrder()"


def resolved(value, order_id: int):
    if isinstance(value, TheOrder):
        return str(order_id) if value.as_text else order_id
    if isinstance(value, dict):
        return {k: resolved(v, order_id) for k, v in value.items()}
    return value


def optional_text(name: str, draft: Draft, data: dict, good, read=True):
    """Gateways send what they like here: long or exotic texts are odd; junk is refused where the field is
    `read` (a success has no failure to read)."""
    junk = with_control() | st.sampled_from([5, [], True])
    odd = st.sampled_from([MISSING, ""]) | texts(600)
    draft.put(data, name, good, odd=odd if read else odd | junk, bad=junk if read else None)


@st.composite
def events(draw):
    """(event, method of the order, the reasons SPEC refuses the event)."""
    draft = Draft(draw)
    method = draw(st.sampled_from(["card", "sepa"]), label="order method")
    data = {}
    event = {}
    kind = draft.put(
        event,
        "type",
        st.sampled_from(["payment.failed", "payment.succeeded"]),
        odd=st.sampled_from(["payment.refunded", "", "PAYMENT.FAILED", 5]),
        bad=st.just(MISSING),
    )
    draft.put(
        data,
        "data.order_id",
        st.builds(TheOrder, st.booleans()),
        odd=st.integers(1, 2**63 - 1) | st.from_regex(r"\A[0-9]{1,18}\Z"),
        bad=BAD_IDS | st.just(MISSING),
    )
    draft.put(
        data,
        "data.installment",
        st.sampled_from([1, "1"]),
        odd=st.integers(1, 2**63 - 1) | st.from_regex(r"\A[0-9]{1,18}\Z"),
        bad=BAD_IDS | st.just(MISSING),
    )
    draft.put(
        data,
        "data.amount",
        st.just("30.00"),
        odd=st.from_regex(r"\A[0-9]{1,9}(\.[0-9]{1,2})?\Z") | st.integers(0, 10**9) | st.just(30.5),
        bad=BAD_AMOUNTS | st.just(MISSING),
    )
    draft.put(
        data,
        "data.currency",
        st.just("EUR"),
        odd=st.sampled_from(["USD", "GBP", "CHF"]),
        bad=BAD_CURRENCIES | st.just(MISSING),
    )
    draft.put(
        data,
        "data.method",
        st.just(method),
        odd=st.just("sepa" if method == "card" else "card"),
        bad=st.sampled_from(["paypal", "", "CARD", 1, None, MISSING]),
    )
    draft.put(
        data,
        "data.occurred_at",
        iso_times(T.replace(tzinfo=None) - dt.timedelta(days=3), T.replace(tzinfo=None) + dt.timedelta(days=3)),
        odd=iso_times(naive(2000, 1, 2), naive(2099, 12, 30)) | st.sampled_from(["2026-05-01T08:00:00Z"]),
        bad=BAD_TIMES | st.just(MISSING),
    )
    optional_text("data.reference", draft, data, st.just("ch_fuzz"))
    failure = kind != "payment.succeeded"
    codes = st.sampled_from(["insufficient_funds", "card_declined", "lost_card"])
    optional_text("data.failure_code", draft, data, codes, read=failure)
    optional_text("data.failure_message", draft, data, st.just("Your card has insufficient funds."), read=failure)
    event["data"] = data
    # A gateway may add fields of its own, in the event and in its data.
    event |= draw(st.just({}) | UNKNOWN_FIELDS.filter(lambda extra: not {"type", "data"} & extra.keys()))
    data |= draw(st.just({}) | UNKNOWN_FIELDS.filter(lambda extra: not data.keys() & extra.keys()))
    return event, method, draft.refused


@st.composite
def encodings(draw):
    """How the JSON is written: ASCII escapes or not, and in which encoding (JSON's own is UTF-8)."""
    ensure_ascii = draw(st.booleans())
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "utf-8-sig"]))
    return ensure_ascii, encoding


def encoded(event: dict, ensure_ascii: bool, encoding: str) -> bytes:
    return json.dumps(event, ensure_ascii=ensure_ascii).encode(encoding, errors="replace")


def signature(raw: bytes, webhook_id: str, timestamp: str, secret: str | None = None) -> str:
    """Standard Webhooks' v1 signature over the raw bytes (the library signs text only)."""
    key = base64.b64decode((secret or settings().gateway_webhook_secret).removeprefix("whsec_"))
    signed = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(signed).decode()}"


@st.composite
def header_sets(draw):
    """(headers, reasons to refuse): each header good, garbled or missing (MISSING drops it).

    A timestamp is seconds from the moment of sending or a literal text; in a signature `{true}` stands for
    the true signature over the id and timestamp sent, `{other}` for one over another body.
    """
    draft = Draft(draw)
    headers = {}
    draft.put(
        headers,
        "webhook-id",
        st.just(WEBHOOK_ID),
        odd=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=300),
        bad=st.sampled_from([MISSING, ""]),
    )
    draft.put(
        headers,
        "webhook-timestamp",
        st.just(0),
        odd=st.integers(-240, 240),
        bad=st.sampled_from(["", "abc", "²", "1e9", "-99999999999", "99999999999999999999", " ", MISSING])
        | st.integers(max_value=-400)
        | st.integers(min_value=400, max_value=2**70),
    )
    draft.put(
        headers,
        "webhook-signature",
        st.just("{true}"),
        odd=st.just("v1,Zm9v {true}"),
        bad=st.sampled_from(["", "v1,", "garbage", "v1,!!!!", "v2,{v2}", "v1,Zm9v", "{true},x", "{other}", MISSING]),
    )
    return headers, draft.refused


GOOD_HEADERS = {"webhook-id": WEBHOOK_ID, "webhook-timestamp": 0, "webhook-signature": "{true}"}


def request_headers(raw: bytes, drawn: dict) -> dict:
    """The headers as sent, signed over `raw` (the content type is always JSON's)."""
    headers = {"content-type": "application/json"}
    webhook_id = drawn.get("webhook-id", "")
    timestamp = drawn.get("webhook-timestamp", "")
    if isinstance(timestamp, int):
        timestamp = str(int(dt.datetime.now(dt.UTC).timestamp()) + timestamp)
    true = signature(raw, webhook_id, timestamp)
    signatures = {
        "{true}": true,
        "{v2}": true.removeprefix("v1,"),
        "{other}": signature(raw + b" ", webhook_id, timestamp),
    }
    for name, value in (("webhook-id", webhook_id), ("webhook-timestamp", timestamp)):
        if name in drawn:
            headers[name] = value
    if "webhook-signature" in drawn:
        value = drawn["webhook-signature"]
        for placeholder, replacement in signatures.items():
            value = value.replace(placeholder, replacement)
        headers["webhook-signature"] = value
    return headers


def deliver(client, event, method, refused, ensure_ascii=True, encoding="utf-8", headers=None, header_refusals=()):
    """One delivery to a fresh order whose charge is in flight, checked; a stored event is then processed."""
    with fresh_example():
        order = charge_in_flight(factories.sepa() if method == "sepa" else factories.card())
    raw = encoded(resolved(event, order.id), ensure_ascii, encoding)
    before = snapshot()

    # `{}` is a draw too: every header missing.
    sent = request_headers(raw, GOOD_HEADERS if headers is None else headers)
    response = client.post("/webhooks/gateway", data=raw, headers=sent)

    check_answer(response, before, [*refused, *header_refusals])
    if response.status_code < 300:
        assert GatewayEvent.select().count() == 1
        process_received_events()
        stuck = [(e.status, e.note) for e in GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.RECEIVED)]
        assert stuck == [], f"left received after processing: {stuck}"


def failed(**data):
    """A payment.failed event of the example's card order, with `data` fields replaced."""
    return {
        "type": "payment.failed",
        "data": {
            "order_id": TheOrder(False),
            "installment": 1,
            "amount": "30.00",
            "currency": "EUR",
            "method": "card",
            "failure_code": "insufficient_funds",
            "occurred_at": "2026-05-01T08:00:00+00:00",
        }
        | data,
    }


def refused_for(**data):
    return (failed(**data), "card", [f"data.{name}={value!r}" for name, value in data.items()])


@FUZZ
@given(events(), encodings())
@example(refused_for(order_id="²"), (True, "utf-8"))
@example(refused_for(installment="²"), (True, "utf-8"))
@example(refused_for(order_id="٣"), (True, "utf-8"))
@example(refused_for(occurred_at="0001-01-01T00:00:00+01:00"), (True, "utf-8"))
@example(refused_for(occurred_at="9999-12-31T23:59:59-01:00"), (True, "utf-8"))
@example(refused_for(occurred_at="9999-06-01T00:00:00+00:00"), (True, "utf-8"))
@example(refused_for(currency="XYZ"), (True, "utf-8"))
@example(refused_for(amount="30.00\n"), (True, "utf-8"))
@example(refused_for(amount="٣٠.٠٠"), (True, "utf-8"))
@example(refused_for(failure_code="insufficient\x00funds"), (True, "utf-8"))
@example((failed(failure_code="x" * 300), "card", []), (True, "utf-8"))
@example((failed(failure_message="Zoë ²"), "card", []), (True, "utf-16-le"))
@example((failed(failure_message="Zoë ²"), "card", []), (False, "utf-16"))
@example((failed(failure_message="Zoë"), "card", []), (False, "latin-1"))
def test_a_signed_event_of_any_shape_gets_no_5xx_and_a_stored_one_never_blocks_the_processor(client, drawn, how):
    """Signed events near SPEC's shape: a refused value gets a 4xx storing nothing; a stored event never blocks."""
    event, method, refused = drawn
    deliver(client, event, method, refused, *how)


@FUZZ
@given(header_sets())
@example(({**GOOD_HEADERS, "webhook-timestamp": "99999999999999999999"}, ["webhook-timestamp"]))
@example(({**GOOD_HEADERS, "webhook-timestamp": 2**70}, ["webhook-timestamp"]))
@example(({**GOOD_HEADERS, "webhook-signature": "v1,!!!!"}, ["webhook-signature"]))
@example(({}, ["every header missing"]))
def test_missing_or_garbled_webhook_headers_get_a_4xx_and_store_nothing(client, drawn):
    """Each Standard Webhooks header missing, empty, garbled, stale or signing something else: a 4xx, nothing stored."""
    headers, refused = drawn
    deliver(client, failed(), "card", [], headers=headers, header_refusals=refused)
