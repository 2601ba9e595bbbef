"""The plan-change page in a real browser: from the emailed link to the new amount (R3, R4)."""

from decimal import Decimal

from playwright.sync_api import expect

from models import Order, PlanChange
from tests import factories
from tests.test_pages_links import change_link, confirm_link_too_old


def test_the_customer_opens_the_link_and_confirms_and_the_order_takes_the_new_amount(page):
    """Open → Confirm → thank-you page; the order now charges 40.00."""
    change, path = change_link(factories.seller(), "fr")

    page.open(path)
    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Confirmez le nouveau montant de vos échéances")
    expect(page.tab.locator("dl")).to_contain_text("40,00\xa0€ par mois")
    page.shoot("confirm/open-fr")
    page.tab.get_by_role("button", name="Confirmer 40,00\xa0€").click()

    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Merci\xa0: votre nouveau montant est confirmé")
    page.shoot("confirm/confirmed-fr")
    assert Order.get_by_id(change.order_id).amount == Decimal("40.00")


def test_the_customer_declines_and_the_plan_stays(page):
    """Open → Decline → the plan stays at 30.00."""
    change, path = change_link(factories.seller(), "de")

    page.open(path)
    page.shoot("confirm/open-de")
    page.tab.get_by_role("button", name="Ablehnen").click()

    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Sie haben die Änderung abgelehnt")
    page.shoot("confirm/declined-de")
    assert PlanChange.get_by_id(change.id).status == PlanChange.DECLINED
    assert Order.get_by_id(change.order_id).amount == Decimal("30.00")


def test_an_expired_link_shows_the_expired_page(page):
    """A link older than 240 hours: 410 and a page saying the plan stays as it is."""
    path = confirm_link_too_old(factories.seller())

    response = page.open(path)

    assert response.status == 410
    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Ce lien a expiré")
    page.shoot("confirm/expired-fr")
