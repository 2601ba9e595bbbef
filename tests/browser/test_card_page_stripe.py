"""The card page with GATEWAY=stripe in real Chromium, driven through localstripe's own Stripe.js (R10): the card or
IBAN goes from the browser to localstripe, 3-D Secure is answered in its modal on the page, the page posts only the
SetupIntent's id, and the worker charges the installment at once."""

from playwright.sync_api import expect

from gateways.stripe import SUCCEEDED
from models import ChargeAttempt, Installment, Order
from tests.browser.test_card_page import OUTCOME_WITHIN_MS
from tests.test_pages_card import automatic_attempts
from tests.test_pages_card_stripe import ON_FILE, failed_stripe_order, installment_status, on_file, stripe_customer
from tests.test_pages_confirm import work_the_queue
from tests.test_pages_links import card_link

# Stripe.js answers in a second or two; its 3-D Secure modal waits for the customer.
STRIPE_WITHIN_MS = 8000
DECLINED_AT_SETUP = "4000000000000002"


def open_card_page(page, localstripe) -> Order:
    """The page of an order whose first automatic attempt failed, its Stripe.js card field mounted."""
    order = failed_stripe_order(stripe_customer(localstripe))
    page.open(card_link(order))
    expect(page.tab.locator("#card-element input").first).to_be_visible()
    return order


def enter_card(page, number: str) -> None:
    """Type a card into localstripe's card field (number, month, year, CVC) and pay."""
    field = page.tab.locator("#card-element")
    for placeholder, value in (("number", number), ("exp_month", "08"), ("exp_year", "31"), ("cvc", "123")):
        field.get_by_placeholder(placeholder, exact=True).fill(value)
    page.tab.get_by_role("button", name="Pay €30.00 now").click()


def the_charge_is_worked(page) -> None:
    """Once the page posted the SetupIntent and follows the charge, the worker sends it."""
    expect(page.tab.get_by_role("heading", level=1)).to_have_text(
        "Your payment is being processed", timeout=STRIPE_WITHIN_MS
    )
    work_the_queue()


def new_payment_method(localstripe) -> str:
    (setup_intent,) = localstripe.setup_intents()
    return setup_intent.payment_method


def customer_charges() -> int:
    return ChargeAttempt.select().where(ChargeAttempt.kind == ChargeAttempt.CUSTOMER).count()


def test_a_working_card_pays_the_installment_and_becomes_the_card_on_file(page, localstripe):
    """4242 4242 4242 4242 → set up, charged at once → paid; its brand, last 4 and expiry are on file."""
    order = open_card_page(page, localstripe)
    page.shoot("card-stripe/open-en")

    enter_card(page, "4242424242424242")
    the_charge_is_worked(page)

    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Paid, thank you", timeout=OUTCOME_WITHIN_MS)
    page.shoot("card-stripe/paid-en")
    assert installment_status(order) == Installment.PAID
    assert on_file(order) == (new_payment_method(localstripe), "visa", "4242", 8, 2031)


def test_a_card_that_sets_up_then_declines_shows_why_and_the_card_on_file_stays(page, localstripe):
    """4000 0000 0000 0341 attaches, then its charge fails: the reason on the page; card and schedule as they were."""
    order = open_card_page(page, localstripe)
    schedule = automatic_attempts(order)

    enter_card(page, "4000000000000341")
    the_charge_is_worked(page)

    alert = page.tab.get_by_role("alert")
    expect(alert).to_contain_text("The bank declined the card.", timeout=OUTCOME_WITHIN_MS)
    expect(alert).to_contain_text("the next automatic attempt is still on")
    page.shoot("card-stripe/declined-en")
    assert on_file(order) == ON_FILE
    assert automatic_attempts(order) == schedule


def test_a_card_whose_bank_asks_for_3d_secure_pays_once_the_customer_completes_it_on_the_page(page, localstripe):
    """4000 0025 0000 3155: Stripe.js's 3-D Secure on the page, completed → set up, then charged off-session → paid."""
    order = open_card_page(page, localstripe)

    enter_card(page, "4000002500003155")
    complete = page.tab.get_by_role("button", name="Complete authentication")
    expect(complete).to_be_visible(timeout=STRIPE_WITHIN_MS)
    page.shoot("card-stripe/3d-secure-en")
    complete.click()
    the_charge_is_worked(page)

    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Paid, thank you", timeout=OUTCOME_WITHIN_MS)
    assert on_file(order) == (new_payment_method(localstripe), "visa", "3155", 8, 2031)


def test_a_failed_3d_secure_shows_stripes_message_and_charges_nothing(page, localstripe):
    """The customer fails the authentication: Stripe's message beside the card field, no charge, the form still open."""
    order = open_card_page(page, localstripe)

    enter_card(page, "4000002500003155")
    page.tab.get_by_role("button", name="Fail authentication").click(timeout=STRIPE_WITHIN_MS)

    error = page.tab.locator("#card-setup-error")
    expect(error).to_have_text(
        "The latest attempt to set up the payment method has failed because authentication failed."
    )
    expect(page.tab.get_by_role("button", name="Pay €30.00 now")).to_be_enabled()
    page.shoot("card-stripe/3d-secure-failed-en")
    assert customer_charges() == 0 and localstripe.payment_intents() == []
    assert on_file(order) == ON_FILE


def test_a_card_stripe_refuses_to_set_up_shows_its_message_and_posts_nothing(page, localstripe):
    """4000 0000 0000 0002 is declined as it is set up: Stripe's own words on the page, nothing sent to Tranche."""
    open_card_page(page, localstripe)

    enter_card(page, DECLINED_AT_SETUP)

    expect(page.tab.locator("#card-setup-error")).to_have_text("Your card was declined.", timeout=STRIPE_WITHIN_MS)
    assert customer_charges() == 0
    (setup_intent,) = localstripe.setup_intents()
    # The page's only failed request is Stripe's answer to the declined confirmation.
    assert page.problems == [f"402 {localstripe.url}/v1/setup_intents/{setup_intent.id}/confirm"]
    page.problems.clear()


def test_a_sepa_mandate_given_under_stripes_mandate_text_pays_and_goes_on_file(page, localstripe):
    """DE89 3704 0044 0532 0130 00 with the mandate text in view → debited → paid; the mandate is on file."""
    order = open_card_page(page, localstripe)

    page.tab.get_by_text("Pay by SEPA direct debit instead").click()
    mandate = page.tab.locator("#mandate")
    expect(mandate).to_be_visible()
    expect(mandate).to_contain_text("you authorise (A) Alice Courses and Stripe, our payment service provider")
    expect(page.tab.get_by_label("Account holder")).to_have_value("Claire Dubois")
    page.tab.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 00")
    page.shoot("card-stripe/sepa-en")
    page.tab.get_by_role("button", name="Pay €30.00 by direct debit").click()
    the_charge_is_worked(page)
    # Stripe may tell a SEPA debit's success by webhook only, days later; localstripe's answer tells it at once.
    localstripe.delivered(SUCCEEDED)
    work_the_queue()

    expect(page.tab.get_by_role("heading", level=1)).to_have_text("Paid, thank you", timeout=OUTCOME_WITHIN_MS)
    stored = Order.get_by_id(order.id)
    assert (stored.method, stored.sepa_mandate, stored.iban_masked) == (
        "sepa",
        new_payment_method(localstripe),
        "DE** **** 3000",
    )
