"""GET|POST /card/<token>: a new card or SEPA mandate, then the open installment charged at once (R10)."""

import datetime as dt
import logging
import re

import pytest

from i18n import Formats
from jobs.work import run_due_work
from models import ChargeAttempt, Installment, Order, Outbox, SlackLink
from runtime import utcnow
from tests import factories
from tests.test_pages_confirm import form_token_in, work_the_queue
from tests.test_pages_links import card_link, failed_card_order, interrupted_order, listed_order, snapshot

CARD_DECLINED = "4000000000000002"
NEXT_YEAR = f"12/{(dt.datetime.now(dt.UTC).year + 1) % 100:02d}"


def pay(client, path, **fields):
    """Open the page as the customer does and submit one of its forms."""
    token = form_token_in(client.get(path))
    data = {"method": "card", "expiry": NEXT_YEAR, **fields, "form_token": token}
    return client.post(path, data=data)


def automatic_attempts(order):
    return [
        (a.number, a.status, a.due_at)
        for a in ChargeAttempt.select()
        .join(Installment)
        .where(Installment.order == order.id, ChargeAttempt.kind == ChargeAttempt.AUTOMATIC)
        .order_by(ChargeAttempt.number)
    ]


@pytest.mark.parametrize(
    ("language", "amount", "reason"),
    [
        ("fr", "30,00\xa0€", "Le solde du compte était insuffisant."),
        ("de", "30,00\xa0€", "Das Konto war nicht ausreichend gedeckt."),
        ("en", "€30.00", "There was not enough money on the account."),
    ],
)
def test_the_page_shows_the_open_amount_which_attempt_failed_and_why_and_the_next_one(client, language, amount, reason):
    """The schedule in plain words: attempt 1 failed, attempt 2 on its date, in the customer's language."""
    order = failed_card_order(factories.seller(), language)
    next_attempt = ChargeAttempt.get(ChargeAttempt.number == 2)

    page = client.get(card_link(order))

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'<html lang="{language}">' in html
    assert amount in html and reason in html
    assert Formats(language, "Europe/Berlin").date(next_attempt.due_at) in html
    assert 'autocomplete="cc-number"' in html and '<label for="number">' in html


@pytest.mark.parametrize(
    ("language", "label", "placeholder"),
    [("de", "Ablaufdatum (MM/JJ)", "MM/JJ"), ("fr", "Date d’expiration (MM/AA)", "MM/AA"), ("en", "(MM/YY)", "MM/YY")],
)
def test_the_expiry_placeholder_writes_the_date_format_as_its_label_does(client, language, label, placeholder):
    """The placeholder comes from the catalog: no MM/YY beside the German label MM/JJ."""
    html = client.get(card_link(failed_card_order(factories.seller(), language))).get_data(as_text=True)

    assert label in html
    assert re.search(rf'id="expiry"[^>]* placeholder="{placeholder}"', html)


def test_a_new_card_that_works_pays_the_installment_and_the_page_follows_the_charge(client):
    """Pay → see-other to the charge's page: processing, then "paid" once the gateway's event arrived."""
    order = failed_card_order(factories.seller(), "en")
    path = card_link(order)

    paid = pay(client, path, number="4242 4242 4242 4242")

    assert paid.status_code == 303
    result = paid.headers["Location"]
    assert re.search(r"\?attempt=\d+$", result)
    customer = ChargeAttempt.get(ChargeAttempt.kind == ChargeAttempt.CUSTOMER)
    assert (customer.number, customer.status) == (1, ChargeAttempt.SCHEDULED)
    # R10: the new card goes on file only once its charge succeeded.
    assert Order.get_by_id(order.id).card_last4 == "9995"
    waiting = client.get(result)
    assert "Your payment is being processed" in waiting.get_data(as_text=True)
    assert 'http-equiv="refresh"' in waiting.get_data(as_text=True)

    work_the_queue()

    done = client.get(result)
    assert done.status_code == 200
    assert "Paid, thank you" in done.get_data(as_text=True)
    assert Installment.get(Installment.order == order.id, Installment.number == 1).status == Installment.PAID
    stored = Order.get_by_id(order.id)
    assert (stored.card_brand, stored.card_last4, stored.card_exp_month) == ("visa", "4242", 12)
    assert [status for _n, status, _due in automatic_attempts(order)] == ["failed", "cancelled"]
    used = client.get(path)
    assert used.status_code == 410
    assert "This installment is paid" in used.get_data(as_text=True)


def test_a_new_card_that_is_declined_says_why_and_leaves_the_automatic_schedule_as_it_was(client):
    """R10: the customer's charge is not one of the three; attempt 2 keeps its date."""
    order = failed_card_order(factories.seller(), "fr")
    schedule = automatic_attempts(order)

    result = pay(client, card_link(order), number=CARD_DECLINED).headers["Location"]
    work_the_queue()

    page = client.get(result)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Votre paiement n’a pas abouti" in html
    assert "La banque a refusé la carte." in html
    next_date = Formats("fr", "Europe/Berlin").date(schedule[1][2])
    assert f"la prochaine tentative automatique reste prévue le {next_date}" in html
    assert automatic_attempts(order) == schedule
    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert Installment.get(Installment.order == order.id, Installment.number == 1).status == Installment.OPEN
    # The form is there again, for another card.
    assert 'name="number"' in html


def test_a_declined_new_card_is_forgotten_and_the_next_automatic_retry_charges_the_card_on_file(client):
    """R10: after 0002 is declined the API still shows the card ending 9995, and attempt 2 charges that one."""
    seller = factories.seller()
    order = failed_card_order(seller, "en")
    schedule = automatic_attempts(order)

    pay(client, card_link(order), number=CARD_DECLINED)
    work_the_queue()

    shown = client.get(f"/api/v1/orders/{order.id}", headers={"Authorization": f"Bearer {seller.api_key}"})
    assert shown.get_json()["payment_method"]["last4"] == "9995"
    run_due_work(schedule[1][2])
    retry = ChargeAttempt.get(ChargeAttempt.kind == ChargeAttempt.AUTOMATIC, ChargeAttempt.number == 2)
    # The sandbox declines 9995 for insufficient funds and 0002 as card_declined: the retry hit the old card.
    assert (retry.status, retry.failure_code) == (ChargeAttempt.FAILED, "insufficient_funds")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"number": "4242424242424241"}, "number", "This card number is not valid. Please check it for a typo."),
        ({"number": ""}, "number", "Enter your card number."),
        ({"number": "4242"}, "number", "A card number has 12 to 19 digits."),
        ({"number": "424242424242424²"}, "number", "A card number has 12 to 19 digits."),
        ({"number": "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"}, "number", "A card number has 12 to 19 digits."),
        ({"number": "4111111111111111"}, "number", "This payment method could not be used. Please try another one."),
        ({"number": factories.SUCCEEDS, "expiry": "01/20"}, "expiry", "This card has expired."),
        ({"number": factories.SUCCEEDS, "expiry": "13/30"}, "expiry", "Enter the expiry date as MM/YY"),
        ({"number": factories.SUCCEEDS, "expiry": ""}, "expiry", "Enter the expiry date shown on your card."),
        ({"method": "sepa", "iban": "DE89370400440532013001"}, "iban", "This IBAN is not valid."),
        ({"method": "sepa", "iban": "hello"}, "iban", "This is not an IBAN."),
        ({"method": "sepa", "iban": "DE44500105175407324931"}, "iban", "This payment method could not be used."),
    ],
    ids=[
        "bad Luhn",
        "no number",
        "too short",
        "a superscript digit",
        "arabic-indic digits",
        "not a sandbox card",
        "expired card",
        "no such month",
        "no expiry",
        "IBAN checksum",
        "not an IBAN",
        "not a sandbox IBAN",
    ],
)
def test_bad_card_or_iban_data_is_shown_beside_its_field_and_changes_nothing(client, fields, field, message):
    """422 with the message next to the field (linked for screen readers); no card stored, no charge."""
    order = failed_card_order(factories.seller(), "en")
    path = card_link(order)
    before = snapshot()

    page = pay(client, path, **fields)

    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert re.search(rf'<p class="error" id="{field}-error">{re.escape(message)}', html)
    assert f'aria-describedby="{field}-error"' in html
    assert snapshot() == before
    # A typo'd card number is not sent back to the browser either.
    assert not fields.get("number") or fields["number"] not in html


@pytest.mark.parametrize("expiry", ["١٢/٣٠", "１２/３０", "12/30\n1"])
def test_an_expiry_in_other_digits_is_refused_beside_its_field(client, expiry):
    """The expiry is read in ASCII digits like every number: '١٢/٣٠' asks for MM/YY and changes nothing."""
    order = failed_card_order(factories.seller(), "en")
    before = snapshot()

    page = pay(client, card_link(order), number=factories.SUCCEEDS, expiry=expiry)

    assert page.status_code == 422
    assert 'id="expiry-error">Enter the expiry date as MM/YY' in page.get_data(as_text=True)
    assert snapshot() == before


def test_the_card_number_is_never_stored_nor_logged(client, caplog):
    """Only the gateway's token, the brand, the last four digits and the expiry reach the database."""
    caplog.set_level(logging.DEBUG)
    order = failed_card_order(factories.seller())

    pay(client, card_link(order), number=factories.SUCCEEDS)
    work_the_queue()

    assert Installment.get(Installment.order == order.id, Installment.number == 1).status == Installment.PAID
    assert factories.SUCCEEDS not in repr(snapshot())
    assert factories.SUCCEEDS not in caplog.text


def test_switching_to_sepa_debits_the_account_and_keeps_it_for_the_coming_installments(client):
    """A valid IBAN becomes the order's mandate; the open installment is debited at once."""
    order = failed_card_order(factories.seller(), "de")

    result = pay(client, card_link(order), method="sepa", iban="de89 3704 0044 0532 0130 00").headers["Location"]
    work_the_queue()

    assert "Bezahlt, vielen Dank" in client.get(result).get_data(as_text=True)
    stored = Order.get_by_id(order.id)
    assert (stored.method, stored.iban_masked, stored.card_token) == ("sepa", "DE89 **** 3000", None)
    assert stored.sepa_mandate.startswith("mdt_")


def test_a_failed_debit_after_switching_to_sepa_leaves_the_order_out_of_collections(client):
    """R10 over R8: the customer's own charge failing changes nothing, whatever the method."""
    order = failed_card_order(factories.seller(), "en")
    schedule = automatic_attempts(order)

    result = pay(client, card_link(order), method="sepa", iban=factories.IBAN_FAILS).headers["Location"]
    work_the_queue()

    assert "There was not enough money on the account." in client.get(result).get_data(as_text=True)
    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert automatic_attempts(order) == schedule


def test_a_second_submission_while_the_first_is_being_charged_is_refused(client):
    """One charge per installment in flight (R2): the second POST gets 409 and changes nothing."""
    order = failed_card_order(factories.seller(), "en")
    path = card_link(order)
    token = form_token_in(client.get(path))
    fields = {"method": "card", "number": factories.SUCCEEDS, "expiry": NEXT_YEAR, "form_token": token}
    client.post(path, data=fields)
    before = snapshot()

    again = client.post(path, data=fields)

    assert again.status_code == 409
    assert "A payment is already in progress" in again.get_data(as_text=True)
    assert snapshot() == before


def test_a_post_without_the_pages_form_token_is_refused_and_changes_nothing(client):
    """CSRF: a card form posted from anywhere but this link's page is refused with 400."""
    order = failed_card_order(factories.seller(), "en")
    before = snapshot()

    page = client.post(card_link(order), data={"method": "card", "number": factories.SUCCEEDS, "expiry": NEXT_YEAR})

    assert page.status_code == 400
    assert snapshot() == before


def test_paying_after_the_third_failure_makes_the_plan_active_again(client):
    """An interrupted plan is paid up by the customer: the next installment will be charged as usual."""
    order = interrupted_order(factories.seller(), "en")

    result = pay(client, card_link(order), number=factories.SUCCEEDS).headers["Location"]
    work_the_queue()

    assert "Paid, thank you" in client.get(result).get_data(as_text=True)
    assert Order.get_by_id(order.id).status == Order.ACTIVE


def test_a_customer_whose_order_is_listed_in_collections_pays_from_the_link_and_the_order_leaves_the_list(client):
    """R10: until the hand-off the link pays; the order is off the list, active again, and the seller is told."""
    seller = factories.seller()
    SlackLink.create(seller=seller, team_id="T1", channel_id="C1", linked_at=utcnow())
    order = listed_order(seller, "en")

    result = pay(client, card_link(order), number=factories.SUCCEEDS).headers["Location"]
    work_the_queue()

    assert "Paid, thank you" in client.get(result).get_data(as_text=True)
    assert Order.get_by_id(order.id).status == Order.ACTIVE
    listed = client.get("/api/v1/collections", headers={"Authorization": f"Bearer {seller.api_key}"})
    assert listed.get_json()["collections"] == []
    assert Outbox.select().where(Outbox.channel == Outbox.SLACK, Outbox.template == "slack_payment_recovered").exists()


def test_the_result_page_only_follows_this_links_own_charges(client):
    """?attempt= naming another order's charge shows this link's own page instead."""
    seller = factories.seller()
    mine = failed_card_order(seller, "en")
    theirs = failed_card_order(seller, "en")
    result = pay(client, card_link(theirs), number=factories.SUCCEEDS).headers["Location"]
    work_the_queue()

    page = client.get(card_link(mine) + "?" + result.split("?")[1])

    assert page.status_code == 200
    assert "Pay your open installment" in page.get_data(as_text=True)


@pytest.mark.parametrize("attempt", ["99999999999999999999", "9223372036854775808", "²", "٣", "-1", ""])
def test_a_result_address_naming_no_charge_shows_the_links_own_page(client, attempt):
    """?attempt= that is no id of ours (too big for the database, not ASCII digits) is ignored, never a 500."""
    order = failed_card_order(factories.seller(), "en")

    page = client.get(f"{card_link(order)}?attempt={attempt}")

    assert page.status_code == 200
    assert "Pay your open installment" in page.get_data(as_text=True)
