"""The card page in a real browser: a new card, the charge at once, its outcome (R10)."""

from playwright.sync_api import expect

from models import Installment, Order
from tests import factories
from tests.test_pages_card import CARD_DECLINED, NEXT_YEAR, automatic_attempts
from tests.test_pages_confirm import work_the_queue
from tests.test_pages_links import card_link, failed_card_order

# The pending page reloads itself every 3 seconds: give it two rounds.
OUTCOME_WITHIN_MS = 8000


def enter_card(page, number: str) -> None:
    page.tab.get_by_label("Card number").fill(number)
    page.tab.get_by_label("Expiry date (MM/YY)").fill(NEXT_YEAR)
    page.tab.get_by_role("button", name="Pay €30.00 now").click()


def test_a_working_card_pays_the_installment(page):
    """4242 4242 4242 4242 → processing → paid, thank you; the installment is paid."""
    order = failed_card_order(factories.seller(), "en")

    page.open(card_link(order))
    page.shoot("card/open-en")
    enter_card(page, "4242 4242 4242 4242")
    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Your payment is being processed")
    page.shoot("card/pending-en")
    work_the_queue()

    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Paid, thank you", timeout=OUTCOME_WITHIN_MS)
    page.shoot("card/paid-en")
    assert Installment.get(Installment.order == order.id).status == Installment.PAID


def test_a_declined_card_shows_the_reason_and_the_schedule_stands(page):
    """4000 0000 0000 0002 → the bank's refusal in plain words; attempt 2 keeps its date."""
    order = failed_card_order(factories.seller(), "en")
    schedule = automatic_attempts(order)

    page.open(card_link(order))
    enter_card(page, CARD_DECLINED)
    work_the_queue()

    alert = page.tab.get_by_role("alert")
    expect(alert).to_contain_text("The bank declined the card.", timeout=OUTCOME_WITHIN_MS)
    expect(alert).to_contain_text("the next automatic attempt is still on")
    page.shoot("card/failed-en")
    assert automatic_attempts(order) == schedule
    assert Order.get_by_id(order.id).status == Order.ACTIVE


def test_a_mistyped_card_number_is_caught_by_the_form(page):
    """A number failing the Luhn check: the message sits beside the field and nothing is charged."""
    order = failed_card_order(factories.seller(), "en")

    page.open(card_link(order))
    enter_card(page, "4242 4242 4242 4241")

    number = page.tab.get_by_label("Card number")
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(page.tab.locator("#number-error")).to_have_text("This card number is not valid. Please check it for a typo.")
    page.shoot("card/bad-number-en")
    assert Order.get_by_id(order.id).card_last4 == "9995"
