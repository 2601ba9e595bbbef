"""GET|POST /confirm/<token>: the customer sees the proposed amount and confirms or declines it (R3, R4)."""

import re
from decimal import Decimal

import pytest
from rq import SimpleWorker

from billing.plan_changes import first_due_at
from i18n import Formats
from models import Installment, Order, Outbox, PlanChange
from runtime import queue, redis_connection
from tests import factories
from tests.test_pages_links import change_link, snapshot

AMOUNTS = {"fr": ("30,00\xa0€", "40,00\xa0€"), "de": ("30,00\xa0€", "40,00\xa0€"), "en": ("€30.00", "€40.00")}
BUTTONS = {"fr": ("Confirmer", "Refuser"), "de": ("bestätigen", "Ablehnen"), "en": ("Confirm", "Decline")}


def form_token_in(page) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', page.get_data(as_text=True))[1]


def answer(client, path, decision, **extra):
    """Open the page as the customer does, then press one of its buttons."""
    fields = {"form_token": form_token_in(client.get(path)), "decision": decision, **extra}
    return client.post(path, data=fields)


def work_the_queue():
    """Run what the page queued (and what that queues), as a worker would."""
    SimpleWorker([queue()], connection=redis_connection()).work(burst=True, logging_level="WARNING")


@pytest.mark.parametrize("language", ["fr", "de", "en"])
def test_the_page_shows_product_seller_both_amounts_the_first_new_due_date_and_the_deadline(client, language):
    """Everything the customer needs to decide, in their language, with Babel's amounts and dates."""
    change, path = change_link(factories.seller(), language)
    fmt = Formats(language, "Europe/Berlin")

    page = client.get(path)

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'<html lang="{language}">' in html
    assert 'name="viewport"' in html
    current, new = AMOUNTS[language]
    assert current in html and new in html
    assert "Python course" in html and "Alice Courses" in html
    assert fmt.date(first_due_at(change)) in html
    assert fmt.date(change.expires_at) in html and fmt.time(change.expires_at) in html
    confirm, decline = BUTTONS[language]
    assert re.search(rf'value="confirm"[^>]*>[^<]*{confirm}', html)
    assert re.search(rf'value="decline"[^>]*>{decline}<', html)


def test_confirming_applies_the_new_amount_to_every_installment_not_yet_charged_and_sends_the_emails(client, inbox):
    """The POST confirms; the queued job emails the customer and the seller."""
    seller = factories.seller()
    change, path = change_link(seller)

    page = answer(client, path, "confirm")

    assert page.status_code == 200
    assert "Merci\xa0: votre nouveau montant est confirmé" in page.get_data(as_text=True)
    assert PlanChange.get_by_id(change.id).status == PlanChange.CONFIRMED
    assert Order.get_by_id(change.order_id).amount == Decimal("40.00")
    amounts = [(i.number, i.status, i.amount) for i in Installment.select().order_by(Installment.number)]
    assert amounts == [(1, "paid", Decimal("30.00"))] + [(n, "scheduled", Decimal("40.00")) for n in (2, 3, 4)]
    work_the_queue()
    sent = {(m.template, m.recipient) for m in Outbox.select().where(Outbox.sent_at.is_null(False))}
    assert {
        ("plan_change_confirmed", "claire@example.com"),
        ("seller_plan_change", f"notify+{seller.id}@example.com"),
    } <= sent
    assert len(inbox.messages) == len(sent)


def test_declining_keeps_the_plan_and_tells_the_seller(client, inbox):
    """Decline closes the change; the amount stays 30.00."""
    seller = factories.seller()
    change, path = change_link(seller, "de")

    page = answer(client, path, "decline")

    assert page.status_code == 200
    assert "Sie haben die Änderung abgelehnt" in page.get_data(as_text=True)
    assert PlanChange.get_by_id(change.id).status == PlanChange.DECLINED
    assert Order.get_by_id(change.order_id).amount == Decimal("30.00")
    work_the_queue()
    sent = {(m.template, m.recipient) for m in Outbox.select().where(Outbox.sent_at.is_null(False))}
    assert ("seller_plan_change", f"notify+{seller.id}@example.com") in sent
    assert "plan_change_confirmed" not in {template for template, _to in sent}


def test_a_second_answer_through_the_same_link_is_refused_as_used(client):
    """Single use: once decided, the link shows what was decided and acts no more."""
    change, path = change_link(factories.seller(), "en")
    token = form_token_in(client.get(path))
    client.post(path, data={"form_token": token, "decision": "decline"})
    before = snapshot()

    again = client.post(path, data={"form_token": token, "decision": "confirm"})

    assert again.status_code == 410
    assert "You already declined this change" in again.get_data(as_text=True)
    assert snapshot() == before
    assert Outbox.select().where(Outbox.template == "seller_plan_change").count() == 1


def without_form_token(client, seller, path):
    return {"decision": "confirm"}


def with_a_made_up_form_token(client, seller, path):
    return {"decision": "confirm", "form_token": "made-up"}


def with_another_links_form_token(client, seller, path):
    _other, other_path = change_link(seller)
    return {"decision": "confirm", "form_token": form_token_in(client.get(other_path))}


def with_an_unknown_decision(client, seller, path):
    return {"decision": "maybe", "form_token": form_token_in(client.get(path))}


@pytest.mark.parametrize(
    "form", [without_form_token, with_a_made_up_form_token, with_another_links_form_token, with_an_unknown_decision]
)
def test_a_post_not_made_from_the_page_itself_is_refused_and_changes_nothing(client, form):
    """CSRF: only a form this link's page served may act; the answer is 400 and nothing changes."""
    seller = factories.seller()
    _change, path = change_link(seller)
    fields = form(client, seller, path)
    before = snapshot()

    page = client.post(path, data=fields)

    assert page.status_code == 400
    assert "Rien n’a été modifié" in page.get_data(as_text=True)
    assert snapshot() == before


def test_the_page_keeps_its_token_out_of_caches_and_referrers(client):
    """The address is the key to the page: no-store, no referrer, no indexing."""
    _change, path = change_link(factories.seller())

    page = client.get(path)

    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in page.headers["X-Robots-Tag"]
