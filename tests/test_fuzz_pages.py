"""The customer's pages under Hypothesis: genuine signed links, fuzzed form fields.

Never a 5xx; a form SPEC refuses (no or a forged form token, an unknown decision or method, a card number
with a superscript digit, an expired card, a control character) gets a 4xx; a 4xx changes nothing.
"""

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st

from billing.links import FORM, form_token, plan_change_link, sign
from billing.plan_changes import propose_plan_change
from runtime import settings, utcnow
from tests import factories
from tests.fuzzing import (
    CONTROL,
    FUZZ,
    MISSING,
    Draft,
    check_answer,
    fresh_example,
    texts,
    with_control,
    with_odd_digit,
)
from tests.test_pages_links import card_link, path_of, snapshot

DAY = dt.timedelta(days=1)
NEXT_YEAR = f"12/{(dt.datetime.now(dt.UTC).year + 1) % 100:02d}"


def form_tokens(draft: Draft, form: dict):
    """The page's own token is good; none, junk, another link's or a stale one is refused."""
    draft.put(
        form,
        "form_token",
        st.just("page"),
        bad=st.sampled_from([MISSING, "", "junk", "another link", "stale", "the link itself"]) | with_control(),
    )


def token_for(kind: str, link_token: str) -> str:
    """What each named form token stands for, made for the example's own link at the moment of posting."""
    now = utcnow()
    return {
        "page": form_token(settings(), link_token, now),
        "another link": form_token(settings(), link_token + "x", now),
        "stale": form_token(settings(), link_token, now - DAY),
        "the link itself": link_token,
        "junk": sign(settings(), FORM, now, link="0" * 32),
    }.get(kind, kind)


def posted(client, path: str, form: dict):
    token = path.rpartition("/")[2]
    fields = dict(form)
    if "form_token" in fields:
        fields["form_token"] = token_for(fields["form_token"], token)
    return client.post(path, data=fields)


def extra_fields(draft: Draft, form: dict):
    # A browser extension or a bot may add fields: odd, never harmful.
    form |= draft.pick(
        "extra fields",
        st.just({}),
        odd=st.dictionaries(st.sampled_from(["amount", "order", "installment", "token", "x"]), texts(20), max_size=2),
    )


@st.composite
def card_forms(draw):
    draft = Draft(draw)
    form = {}
    method = draft.put(
        form, "method", st.sampled_from(["card", "sepa"]), bad=st.sampled_from(["", "paypal", "CARD", MISSING])
    )
    card = method == "card"
    draft.put(
        form,
        "number",
        st.sampled_from(["4242 4242 4242 4242", factories.SUCCEEDS, "4242-4242-4242-4242"]),
        odd=st.sampled_from([factories.DECLINED, factories.INSUFFICIENT_FUNDS]) | st.from_regex(r"\A[0-9 ]{0,25}\Z"),
        bad=(with_odd_digit(factories.SUCCEEDS) | with_control(st.just("4242")) | st.sampled_from(["", "abc", MISSING]))
        if card
        else None,
    )
    draft.put(
        form,
        "expiry",
        st.sampled_from([NEXT_YEAR, f"{NEXT_YEAR[:3]}20{NEXT_YEAR[3:]}", NEXT_YEAR.replace("/", " / ")]),
        odd=texts(12) if not card else st.sampled_from([f"{NEXT_YEAR}\n", " " + NEXT_YEAR]),
        bad=st.sampled_from(["01/20", "13/30", "00/30", "²/30", "12/٣٠", "", "garbage", "12/2999", MISSING])
        if card
        else None,
    )
    draft.put(
        form,
        "iban",
        st.sampled_from([factories.IBAN_OK, "DE89 3704 0044 0532 0130 00"]),
        odd=texts(40) if card else st.just(factories.IBAN_FAILS),
        bad=None
        if card
        else st.sampled_from(["", "DE00370400440532013000", "DE89370400440532013000²", MISSING])
        | with_control(st.just("DE89")),
    )
    form_tokens(draft, form)
    extra_fields(draft, form)
    return form, draft.refused


def card_page():
    """A fresh card order whose first automatic attempt just failed, and its card link."""
    now = utcnow()
    with fresh_example():
        order = factories.order(
            factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=now - dt.timedelta(hours=1)
        )
        factories.answer_due_charges(now, "insufficient_funds")
    return card_link(order)


def card_form(**fields):
    return {"method": "card", "number": factories.SUCCEEDS, "expiry": NEXT_YEAR, "form_token": "page"} | fields


@FUZZ
@given(card_forms())
@example((card_form(number="4242 4242 4242 424²"), ["superscript digit in the number"]))
@example((card_form(number="²" * 16), ["superscript number"]))
@example((card_form(number="٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"), ["Arabic-Indic digits"]))
@example((card_form(number="4242\x004242"), ["NUL in the number"]))
@example((card_form(expiry="12/٣٠"), ["Arabic-Indic digits in the expiry"]))
@example((card_form(expiry="01/20"), ["expired 01/2020"]))
@example(({"method": "sepa", "iban": "DE89\x00370400440532013000", "form_token": "page"}, ["NUL in the IBAN"]))
@example((card_form(form_token=MISSING), ["no form token"]))
def test_a_card_form_with_any_fields_gets_no_5xx_and_a_refusal_changes_nothing(client, drawn):
    """POST /card/<token> with fuzzed number, expiry, iban, method and form token: a refused form changes nothing."""
    form, reasons = drawn
    path = card_page()
    before = snapshot()

    check_answer(posted(client, path, {k: v for k, v in form.items() if v is not MISSING}), before, reasons)


@st.composite
def confirm_forms(draw):
    draft = Draft(draw)
    form = {}
    draft.put(
        form,
        "decision",
        st.sampled_from(["confirm", "decline"]),
        bad=st.sampled_from(["", "yes", "CONFIRM", "confirm ", MISSING]) | with_control(st.just("confirm")) | CONTROL,
    )
    form_tokens(draft, form)
    extra_fields(draft, form)
    return form, draft.refused


def confirm_page():
    """A fresh pending change from 30.00 to 40.00 on a plan not yet charged, and its confirmation link."""
    with fresh_example():
        seller = factories.seller()
        order = factories.order(seller, anchor=utcnow() + 2 * DAY)
        change = propose_plan_change(order, "40.00", utcnow())
    return path_of(plan_change_link(settings(), change.id, order.id, "40.00"))


@FUZZ
@given(confirm_forms())
@example(({"decision": "confirm\x00", "form_token": "page"}, ["NUL in the decision"]))
@example(({"decision": "confirm", "form_token": "stale"}, ["a stale form token"]))
def test_a_confirm_form_with_any_fields_gets_no_5xx_and_a_refusal_changes_nothing(client, drawn):
    """POST /confirm/<token> with fuzzed decision and form token: a refused form gets a 4xx and changes nothing."""
    form, reasons = drawn
    path = confirm_page()
    before = snapshot()

    check_answer(posted(client, path, form), before, reasons)
