"""The card page in a real browser: a new card, the charge at once, its outcome (R10)."""

import pytest
from playwright.sync_api import expect

from models import Installment, Order
from tests import factories
from tests.browser.conftest import VIEWPORTS
from tests.test_pages_card import CARD_DECLINED, NEXT_YEAR, automatic_attempts
from tests.test_pages_confirm import work_the_queue
from tests.test_pages_links import card_link, failed_card_order, interrupted_order

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
    assert Installment.get(Installment.order == order.id, Installment.number == 1).status == Installment.PAID


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


PHONE_HEIGHT = VIEWPORTS["phone"]["viewport"]["height"]


def below_the_fold(locator) -> float:
    """How far the element's bottom lies below the first screen, in CSS pixels (0 or less: it shows at once)."""
    box = locator.bounding_box()
    return box["y"] + box["height"] - PHONE_HEIGHT


@pytest.mark.parametrize("language", ["fr", "de", "en"])
@pytest.mark.parametrize("order_for", [failed_card_order, interrupted_order], ids=["first failure", "third failure"])
def test_on_a_phone_the_card_form_shows_without_scrolling(phone, language, order_for):
    """390×844: the card number field and its pay button are on the first screen; the schedule follows them."""
    order = order_for(factories.seller(), language)

    phone.open(card_link(order))

    phone.shoot(f"card/first-screen-{order_for.__name__}-{language}")
    assert below_the_fold(phone.tab.locator("#number")) <= 0
    assert below_the_fold(phone.tab.locator("form button[type=submit]").first) <= 0


def test_on_a_phone_an_error_answer_opens_on_the_field_in_error(phone):
    """A mistyped IBAN, far down the page: the answer is scrolled to the IBAN field, which has the focus."""
    order = interrupted_order(factories.seller(), "en")
    phone.open(card_link(order))
    phone.tab.get_by_text("Pay by SEPA direct debit instead").click()
    phone.tab.get_by_label("IBAN").fill("DE89370400440532013001")
    phone.tab.get_by_role("button", name="Pay €30.00 by direct debit").click()

    iban = phone.tab.get_by_label("IBAN")
    expect(iban).to_have_attribute("aria-invalid", "true")
    expect(iban).to_be_focused()
    expect(iban).to_be_in_viewport()
    phone.shoot("card/bad-iban-en")


def test_on_a_phone_a_mistyped_card_number_comes_back_focused_in_view(phone):
    """The number failing its Luhn check: the answer opens on that field, with its message."""
    order = failed_card_order(factories.seller(), "en")
    phone.open(card_link(order))
    enter_card(phone, "4242 4242 4242 4241")

    number = phone.tab.get_by_label("Card number")
    expect(number).to_be_focused()
    expect(number).to_be_in_viewport()
    expect(phone.tab.locator("#number-error")).to_be_in_viewport()
