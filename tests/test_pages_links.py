"""Signed links and every state a link can be in: GET and HEAD show and never change anything; a link that
cannot act gets a page in the customer's language, a 4xx status, and the database stays as it was.

The pages read the wall clock, so each test builds its orders around the real now."""

import datetime as dt

import pytest

from billing.card_updates import update_card_and_charge
from billing.collections import hand_to_collections
from billing.links import (
    CARD_UPDATE,
    PLAN_CHANGE,
    LinkExpired,
    LinkInvalid,
    card_update_link,
    plan_change_link,
    sign,
    verify,
)
from billing.plan_changes import confirm_plan_change, decline_plan_change, expire_plan_changes, propose_plan_change
from jobs.work import run_due_work
from models import MODELS, Order
from runtime import settings, utcnow
from tests import factories

DAY = dt.timedelta(days=1)


def snapshot():
    """Every row of every table: what "changes nothing" is checked against."""
    return {model.__name__: list(model.select().order_by(model.id).dicts()) for model in MODELS}


def path_of(link: str) -> str:
    return link.removeprefix(settings().public_url)


def paying_order(seller, language="fr"):
    """An order of four whose first installment was paid a moment ago; the next ones are still to be charged."""
    now = utcnow()
    order = factories.order(seller, count=4, anchor=now - DAY, language=language)
    run_due_work(now)
    return order


def change_link(seller, language="fr", proposed_at=None, signed_at=None):
    """A pending change to 40.00 on a 30.00 plan, and the link the customer was emailed."""
    order = paying_order(seller, language)
    change = propose_plan_change(order, "40.00", proposed_at or utcnow())
    return change, path_of(plan_change_link(settings(), change.id, order.id, "40.00", now=signed_at))


def failed_card_order(seller, language="fr", number=factories.INSUFFICIENT_FUNDS):
    """An order whose first automatic attempt just failed; attempt 2 is due in 7 days."""
    now = utcnow()
    order = factories.order(
        seller, payment=factories.card(number), anchor=now - dt.timedelta(hours=1), language=language
    )
    run_due_work(now)
    return order


def card_link(order, installment=1, signed_at=None):
    return path_of(card_update_link(settings(), order.id, installment, now=signed_at))


def interrupted_order(seller, language="fr"):
    """A card order whose three automatic attempts failed (T, T+7 d, T+14 d): the plan waits for the seller."""
    start = utcnow() - 15 * DAY
    order = factories.order(
        seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=start, language=language
    )
    for week in range(3):
        run_due_work(start + 7 * week * DAY)
    return order


def tampered(path: str) -> str:
    """The same link with one character of its payload changed."""
    head, token = path.rsplit("/", 1)
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    return f"{head}/{flipped}"


def forged(path: str, purpose: str, **ids) -> str:
    head = path.rsplit("/", 1)[0]

    class Forger:
        secret_keys = ("a-key-that-is-not-ours",)

    return f"{head}/{sign(Forger, purpose, **ids)}"


# --- every state of both links: (how to get there, status, what the page says) ---


def confirm_open(seller):
    return change_link(seller)[1]


def confirm_confirmed(seller):
    change, path = change_link(seller)
    confirm_plan_change(change.id, utcnow())
    return path


def confirm_declined(seller):
    change, path = change_link(seller)
    decline_plan_change(change.id, utcnow())
    return path


def confirm_superseded(seller):
    change, path = change_link(seller)
    propose_plan_change(change.order, "35.00", utcnow())
    return path


def confirm_link_too_old(seller):
    ago = utcnow() - dt.timedelta(hours=241)
    return change_link(seller, proposed_at=ago, signed_at=ago)[1]


def confirm_past_deadline_before_the_tick(seller):
    # The link itself is fresh (an email resent late): the change's own deadline still rules.
    return change_link(seller, proposed_at=utcnow() - dt.timedelta(hours=241))[1]


def confirm_expired_by_the_tick(seller):
    _change, path = change_link(seller, proposed_at=utcnow() - dt.timedelta(hours=241))
    expire_plan_changes(utcnow())
    return path


def confirm_on_a_handed_off_order(seller):
    order = interrupted_order(seller)
    change = propose_plan_change(order, "40.00", utcnow())
    hand_to_collections(order, utcnow())
    return path_of(plan_change_link(settings(), change.id, order.id, "40.00"))


def confirm_forged(seller):
    change, path = change_link(seller)
    return forged(path, PLAN_CHANGE, order=change.order_id, change=change.id, amount="40.00")


def confirm_tampered(seller):
    return tampered(change_link(seller)[1])


def confirm_with_another_amount(seller):
    # Signed by us, but not for this change's amount: a link of some other proposal.
    change, _path = change_link(seller)
    return path_of(plan_change_link(settings(), change.id, change.order_id, "45.00"))


def confirm_with_a_card_link(seller):
    order = failed_card_order(seller)
    return "/confirm/" + card_link(order).rsplit("/", 1)[1]


def card_open(seller):
    return card_link(failed_card_order(seller))


def card_after_the_third_failure(seller):
    return card_link(interrupted_order(seller))


def card_while_paying(seller):
    order = failed_card_order(seller)
    update_card_and_charge(order, 1, factories.card(), utcnow())
    return card_link(order)


def card_paid(seller):
    order = failed_card_order(seller)
    update_card_and_charge(order, 1, factories.card(), utcnow())
    run_due_work(utcnow())
    return card_link(order)


def card_handed_off(seller):
    order = interrupted_order(seller)
    hand_to_collections(order, utcnow())
    return card_link(order)


def listed_order(seller, language="fr"):
    """A SEPA order whose first debit just failed: listed in collections (R8), not handed off."""
    now = utcnow()
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=now - DAY, language=language)
    run_due_work(now)
    assert Order.get_by_id(order.id).status == Order.COLLECTIONS
    return order


def card_in_collections(seller):
    return card_link(listed_order(seller))


def card_link_too_old(seller):
    order = failed_card_order(seller)
    return card_link(order, signed_at=utcnow() - 31 * DAY)


def card_for_an_unknown_installment(seller):
    return card_link(failed_card_order(seller), installment=9)


def card_forged(seller):
    order = failed_card_order(seller)
    return forged(card_link(order), CARD_UPDATE, order=order.id, installment=1)


def card_tampered(seller):
    return tampered(card_link(failed_card_order(seller)))


def card_with_a_confirm_link(seller):
    return "/card/" + change_link(seller)[1].rsplit("/", 1)[1]


STATES = [
    (confirm_open, 200, "Confirmez le nouveau montant de vos échéances"),
    (confirm_confirmed, 410, "Vous avez déjà confirmé cette modification"),
    (confirm_declined, 410, "Vous avez déjà refusé cette modification"),
    (confirm_superseded, 410, "Cette proposition a été remplacée"),
    (confirm_link_too_old, 410, "n’a pas été confirmée dans les 10 jours"),
    (confirm_past_deadline_before_the_tick, 410, "n’a pas été confirmée dans les 10 jours"),
    (confirm_expired_by_the_tick, 410, "n’a pas été confirmée dans les 10 jours"),
    (confirm_on_a_handed_off_order, 410, "Ce plan ne peut plus être modifié"),
    (confirm_forged, 404, "This link does not work"),
    (confirm_tampered, 404, "This link does not work"),
    (confirm_with_another_amount, 404, "This link does not work"),
    (confirm_with_a_card_link, 404, "This link does not work"),
    (card_open, 200, "Réglez votre échéance impayée"),
    (card_after_the_third_failure, 200, "Il n’y aura plus de tentative automatique"),
    (card_while_paying, 200, "Votre paiement est en cours de traitement"),
    (card_paid, 410, "Cette échéance est payée"),
    (card_handed_off, 410, "Ce paiement n’est plus géré ici"),
    (card_in_collections, 200, "Il n’y aura plus de tentative automatique"),
    (card_link_too_old, 410, "Ce lien a expiré"),
    (card_for_an_unknown_installment, 404, "This link does not work"),
    (card_forged, 404, "This link does not work"),
    (card_tampered, 404, "This link does not work"),
    (card_with_a_confirm_link, 404, "This link does not work"),
]


@pytest.mark.parametrize(("state", "status", "says"), STATES, ids=[s[0].__name__ for s in STATES])
def test_a_get_and_a_head_of_every_link_show_its_state_and_change_nothing(client, state, status, says):
    """Mail scanners open links with GET and HEAD: both answer with the state's status and leave every row."""
    path = state(factories.seller())
    before = snapshot()

    page = client.get(path)
    head = client.head(path)

    assert (page.status_code, head.status_code) == (status, status)
    assert says in page.get_data(as_text=True)
    assert head.get_data() == b""
    assert snapshot() == before


BAD_FOR_POST = [s for s in STATES if s[1] >= 400]


@pytest.mark.parametrize(("state", "status", "says"), BAD_FOR_POST, ids=[s[0].__name__ for s in BAD_FOR_POST])
def test_a_post_to_a_link_that_cannot_act_is_refused_and_changes_nothing(client, state, status, says):
    """Expired, used, voided, forged and tampered links refuse to act, whatever the form says."""
    path = state(factories.seller())
    before = snapshot()

    fields = (
        {"decision": "confirm"}
        if path.startswith("/confirm/")
        else {"method": "card", "number": factories.SUCCEEDS, "expiry": "12/30"}
    )
    page = client.post(path, data=fields)

    assert page.status_code == status
    assert says in page.get_data(as_text=True)
    assert snapshot() == before


def test_an_unreadable_link_answers_in_the_browsers_language_when_it_is_one_we_speak(client):
    """No customer to ask: Accept-Language decides, English when it names none of ours."""
    german = client.get("/confirm/nonsense", headers={"Accept-Language": "de-CH, de;q=0.9"})
    italian = client.get("/card/nonsense", headers={"Accept-Language": "it"})

    assert german.status_code == italian.status_code == 404
    assert 'lang="de"' in german.get_data(as_text=True)
    assert "Dieser Link funktioniert nicht" in german.get_data(as_text=True)
    assert 'lang="en"' in italian.get_data(as_text=True)


@pytest.mark.parametrize("language", ["fr", "de", "en"])
def test_an_expired_link_says_so_in_the_customers_language(client, language):
    """The signature of an old link is still ours, so its order tells us whom we are talking to."""
    seller = factories.seller()
    order = failed_card_order(seller, language=language)

    page = client.get(card_link(order, signed_at=utcnow() - 31 * DAY))

    assert page.status_code == 410
    assert f'lang="{language}"' in page.get_data(as_text=True)
    expected = {"fr": "Ce lien a expiré", "de": "Dieser Link ist abgelaufen", "en": "This link has expired"}
    assert expected[language] in page.get_data(as_text=True)


# --- the tokens themselves ---


class Keys:
    def __init__(self, *keys):
        self.secret_keys = keys
        self.public_url = "http://tranche.test"


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def test_a_link_signed_with_the_old_key_still_works_once_a_new_key_is_appended():
    """Rotation: SECRET_KEY=old,new signs with new and accepts both; dropping old retires its links."""
    old_link = token_of(card_update_link(Keys("old"), 7, 2))
    new_link = token_of(card_update_link(Keys("old", "new"), 7, 2))

    assert verify(Keys("old", "new"), old_link, CARD_UPDATE) == {"action": CARD_UPDATE, "order": 7, "installment": 2}
    assert verify(Keys("new"), new_link, CARD_UPDATE)["order"] == 7
    with pytest.raises(LinkInvalid):
        verify(Keys("new"), old_link, CARD_UPDATE)


def test_the_page_accepts_a_link_signed_before_a_key_was_appended(client, monkeypatch):
    """The same rotation through SECRET_KEY and the page."""
    monkeypatch.setenv("SECRET_KEY", "before-rotation")
    order = failed_card_order(factories.seller())
    path = card_link(order)

    monkeypatch.setenv("SECRET_KEY", "before-rotation,after-rotation")

    assert client.get(path).status_code == 200
    assert token_of(card_link(order)) != token_of(path)


def test_a_link_lives_as_long_as_what_it_acts_on():
    """240 hours for a plan change (R4), 30 days for a card update; a moment later it is expired."""
    keys = Keys("k")
    signed = dt.datetime(2026, 5, 15, 8, 0, tzinfo=dt.UTC)
    change = token_of(plan_change_link(keys, 3, 7, "40.00", now=signed))
    card = token_of(card_update_link(keys, 7, 2, now=signed))

    assert verify(keys, change, PLAN_CHANGE, signed + dt.timedelta(hours=240))["change"] == 3
    assert verify(keys, card, CARD_UPDATE, signed + dt.timedelta(days=30))["installment"] == 2
    with pytest.raises(LinkExpired) as change_expired:
        verify(keys, change, PLAN_CHANGE, signed + dt.timedelta(hours=240, seconds=1))
    with pytest.raises(LinkExpired):
        verify(keys, card, CARD_UPDATE, signed + dt.timedelta(days=30, seconds=1))
    assert change_expired.value.payload["order"] == 7


@pytest.mark.parametrize("token", ["", "abc", "e30.ZZZZZZ.bad", "a" * 500])
def test_garbage_is_an_invalid_link(token):
    """Truncated or made-up tokens are refused as invalid, never as an error."""
    with pytest.raises(LinkInvalid):
        verify(Keys("k"), token, CARD_UPDATE)


def test_a_link_made_for_one_purpose_is_refused_for_the_other():
    """One salt per purpose, and the action field checked as well."""
    keys = Keys("k")
    card = token_of(card_update_link(keys, 7, 2))
    with pytest.raises(LinkInvalid):
        verify(keys, card, PLAN_CHANGE)
    # Same salt, wrong action: refused on the action field alone.
    mislabeled = sign(keys, CARD_UPDATE, action=PLAN_CHANGE, order=7, installment=2)
    with pytest.raises(LinkInvalid):
        verify(keys, mislabeled, CARD_UPDATE)


def test_every_customer_page_shows_the_products_support_address_or_else_the_sellers(client):
    """R11: the customer pages say whom to write to: the product's support_email, or the seller's email."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=utcnow() - DAY, language="de", support_email="help@courses.example")
    run_due_work(utcnow())
    change = propose_plan_change(order, "40.00", utcnow())
    page = client.get(path_of(plan_change_link(settings(), change.id, order.id, "40.00")))
    assert 'Fragen? Schreiben Sie an <a href="mailto:help@courses.example">help@courses.example</a>.' in page.text

    _change, path = change_link(factories.seller("Bob Shop"), language="en")
    assert 'Questions? Write to <a href="mailto:bob@example.com">bob@example.com</a>.' in client.get(path).text
