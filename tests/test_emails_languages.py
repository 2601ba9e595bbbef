"""Every email in French, German and English (the customers' in theirs, the sellers' in the seller's), produced
by the rules and received by a real SMTP server: amounts, dates and links as the reader reads them, a plain-text
part and an HTML part whose styles are inlined. Each HTML part is saved under var/email-previews/ for review in a
browser."""

import datetime as dt
import html
import re
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from billing.collections import hand_to_collections
from billing.dunning import renew_plan
from billing.links import CARD_UPDATE, PLAN_CHANGE, verify
from billing.plan_changes import confirm_plan_change, decline_plan_change, propose_plan_change
from i18n import Formats
from jobs.work import run_due_work, send_due_messages
from runtime import settings
from tests import factories

ROOT = Path(__file__).resolve().parents[1]
PREVIEWS = ROOT / "var" / "email-previews"
EMAILS = ROOT / "emails"
# 10:00 in Berlin, the seller's time zone: dates and times are shown there.
T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CUSTOMER = "claire@example.com"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def parts(mail, name: str, language: str) -> tuple[str, str]:
    """The plain text and the HTML (entities decoded) of an email checked to be well formed in `language`.

    Well formed: multipart/alternative with text first, Content-Language and <html lang> saying the language,
    every style inline (no <style> block left for a mail client to drop). The HTML is saved for review.
    """
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["Content-Language"] == language
    text = mail.get_body(("plain",)).get_content()
    markup = mail.get_body(("html",)).get_content()
    assert f'<html lang="{language}"' in markup
    assert "<style" not in markup
    assert re.search(r'<h1 style="[^"]*font-size', markup)
    assert re.search(r'<table class="sheet"[^>]+style="width: 100%;max-width: 600px;', markup)  # one fluid column
    PREVIEWS.mkdir(parents=True, exist_ok=True)
    (PREVIEWS / f"{name}.{language}.html").write_text(markup)
    return text, html.unescape(markup)


def subject(mail) -> str:
    """The Subject as a reader sees it. Python's email folding may leave the space before an encoded word it
    moves to the next line doubled (CPython gh-92081 and its follow-ups); readers' clients show one."""
    return re.sub(" +", " ", mail["Subject"])


def read_at(mail) -> dt.datetime:
    """When the email says it was written: its links must work then."""
    return parsedate_to_datetime(mail["Date"])


def says(text: str, markup: str, *phrases: str) -> None:
    """Each phrase is in both parts."""
    for phrase in phrases:
        assert phrase in text, phrase
        assert phrase in markup, phrase


def signed_link(text: str, markup: str, path: str) -> str:
    """The one /<path>/<token> link of the email, the same in both parts (the HTML as a button and as text)."""
    (link,) = set(re.findall(re.escape(settings().public_url) + rf"/{path}/[\w.-]+", text))
    assert markup.count(f'href="{link}"') == 2 and f">{link}</a>" in markup
    return link.rsplit("/", 1)[1]


def declined_order(language: str, number=factories.INSUFFICIENT_FUNDS):
    seller = factories.seller()
    return seller, factories.order(seller, payment=factories.card(number), language=language, anchor=T)


def paying_order(language: str):
    """An order of 30.00 a month from 1 May, its first installment paid."""
    seller = factories.seller()
    order = factories.order(seller, language=language, anchor=T)
    run_due_work(T)
    return seller, order


# --- the customer's emails, in the customer's language ---


@pytest.mark.parametrize(
    ("language", "subjects", "first", "last"),
    [
        (
            "fr",
            (
                "Échec du paiement de 30,00\xa0€ pour Python course — nouvelle tentative le 8 mai 2026",
                "Échec du paiement de 30,00\xa0€ pour Python course — dernière tentative automatique",
            ),
            [
                "Nous n’avons pas pu encaisser l’échéance 1 de votre commande",
                "Motif\xa0: Le solde du compte associé à votre carte était insuffisant.",
                "C’était la tentative 1 sur 3.",
                "Nous réessaierons le 8 mai 2026.",
                "Mettre à jour ma carte",
            ],
            ["C’était la tentative 3 sur 3.", "C’était la dernière tentative automatique."],
        ),
        (
            "de",
            (
                "Zahlung von 30,00\xa0€ für Python course fehlgeschlagen – neuer Versuch am 8. Mai 2026",
                "Zahlung von 30,00\xa0€ für Python course fehlgeschlagen – letzter automatischer Versuch",
            ),
            [
                "leider konnten wir die Rate 1 Ihrer Bestellung",
                "Grund: Das mit Ihrer Karte verbundene Konto war nicht ausreichend gedeckt.",
                "Das war Versuch 1 von 3.",
                "Wir versuchen es am 8. Mai 2026 erneut.",
                "Kartendaten aktualisieren",
            ],
            ["Das war Versuch 3 von 3.", "Das war der letzte automatische Versuch."],
        ),
        (
            "en",
            (
                "Payment of €30.00 for Python course failed — we will try again on 8 May 2026",
                "Payment of €30.00 for Python course failed — last automatic attempt",
            ),
            [
                "We could not collect installment 1 of your order",
                "Reason: There were not enough funds on the account linked to your card.",
                "This was attempt 1 of 3.",
                "We will try again on 8 May 2026.",
                "Update my card",
            ],
            ["This was attempt 3 of 3.", "This was the last automatic attempt."],
        ),
    ],
)
def test_each_card_failure_tells_the_customer_in_their_language_the_attempt_the_reason_the_next_date_and_the_link(
    inbox, language, subjects, first, last
):
    """R5: attempts 1 and 3 of 3, with amount, reason in plain words, next date or "last", and a working card link."""
    _seller, order = declined_order(language)
    for day in (0, 7, 14):
        run_due_work(T + day * DAY)

    mails = inbox.to(CUSTOMER)
    assert (subject(mails[0]), subject(mails[2])) == subjects
    money = {"fr": "30,00\xa0€", "de": "30,00\xa0€", "en": "€30.00"}[language]
    text, markup = parts(mails[0], "payment_failed", language)
    says(text, markup, money, *first)
    assert verify(settings(), signed_link(text, markup, "card"), CARD_UPDATE, now=read_at(mails[0])) == {
        "action": CARD_UPDATE,
        "order": order.id,
        "installment": 1,
    }
    text, markup = parts(mails[2], "payment_failed_last", language)
    says(text, markup, money, *last)
    signed_link(text, markup, "card")


@pytest.mark.parametrize(
    ("code", "reasons"),
    [
        (
            "card_declined",
            {
                "fr": "Votre banque a refusé le paiement sans nous en indiquer le motif.",
                "de": "Ihre Bank hat die Zahlung ohne Angabe von Gründen abgelehnt.",
                "en": "Your bank declined the payment without giving us a reason.",
            },
        ),
        (
            "expired_card",
            {
                "fr": "La carte enregistrée pour ce paiement a expiré.",
                "de": "Die hinterlegte Karte ist abgelaufen.",
                "en": "The card we have on file has expired.",
            },
        ),
        (
            "authentication_required",
            {
                "fr": "Votre banque vous demande de confirmer ce paiement vous-même",
                "de": "Ihre Bank möchte, dass Sie diese Zahlung selbst bestätigen",
                "en": "Your bank asks you to confirm this payment yourself",
            },
        ),
        (
            "do_not_honor",
            {
                "fr": "Votre banque ou l’émetteur de votre carte n’a pas accepté le paiement.",
                "de": "Ihre Bank oder Ihr Kartenherausgeber hat die Zahlung nicht angenommen.",
                "en": "Your bank or card issuer did not accept the payment.",
            },
        ),
    ],
)
def test_each_failure_code_is_explained_in_the_customers_words_and_an_unknown_one_in_general_terms(
    inbox, code, reasons
):
    """The gateway's English message never reaches a French or German customer: the code picks our sentence."""
    for language, name in (("fr", "Claire Dubois"), ("de", "Dieter Braun"), ("en", "Emma Hill")):
        factories.order(factories.seller(f"{name} Shop"), customer_name=name, language=language, anchor=T)
    factories.answer_due_charges(T, code)
    send_due_messages(T.isoformat())

    for language, name in (("fr", "Claire Dubois"), ("de", "Dieter Braun"), ("en", "Emma Hill")):
        (mail,) = inbox.to(f"{name.split()[0].lower()}@example.com")
        text, markup = parts(mail, f"payment_failed_{code}", language)
        says(text, markup, reasons[language])
        assert "The bank said" not in text + markup


@pytest.mark.parametrize(
    ("language", "expected_subject", "phrases"),
    [
        (
            "fr",
            "Paiement de 30,00\xa0€ pour Python course reçu — merci",
            ["L’échéance 1 de votre commande", "est maintenant réglée\xa0: 30,00\xa0€.", "Cordialement,"],
        ),
        (
            "de",
            "Zahlung von 30,00\xa0€ für Python course eingegangen – vielen Dank",
            ["die Rate 1 Ihrer Bestellung", "ist jetzt bezahlt: 30,00\xa0€.", "Mit freundlichen Grüßen"],
        ),
        (
            "en",
            "Payment of €30.00 for Python course received — thank you",
            ["Installment 1 of your order", "is now paid: €30.00.", "Kind regards,"],
        ),
    ],
)
def test_a_payment_recovered_after_a_failure_is_confirmed_to_the_customer(inbox, language, expected_subject, phrases):
    """The retry on day 7 succeeds: the customer hears the open amount is paid."""
    declined_order(language)
    factories.answer_due_charges(T, "insufficient_funds")
    factories.answer_due_charges(T + 7 * DAY)
    send_due_messages((T + 7 * DAY).isoformat())

    failed, recovered = inbox.to(CUSTOMER)
    assert subject(recovered) == expected_subject
    text, markup = parts(recovered, "payment_recovered", language)
    says(text, markup, *phrases)


@pytest.mark.parametrize(
    ("language", "expected_subject", "rows"),
    [
        (
            "fr",
            "Alice Courses vous propose un nouveau montant d’échéance pour Python course\xa0: 40,00\xa0€",
            [
                ("Montant actuel", "30,00\xa0€"),
                ("Nouveau montant", "40,00\xa0€"),
                ("Première échéance au nouveau montant", "1 juin 2026"),
                ("Date limite de réponse", "25 mai 2026 à 10:00 (heure d’été d’Europe centrale)"),
            ],
        ),
        (
            "de",
            "Alice Courses schlägt einen neuen Ratenbetrag für Python course vor: 40,00\xa0€",
            [
                ("Bisheriger Betrag", "30,00\xa0€"),
                ("Neuer Betrag", "40,00\xa0€"),
                ("Erste Rate zum neuen Betrag", "1. Juni 2026"),
                ("Antwort bis", "25. Mai 2026 um 10:00 Uhr (Mitteleuropäische Sommerzeit)"),
            ],
        ),
        (
            "en",
            "Alice Courses proposes a new installment amount for Python course: €40.00",
            [
                ("Current amount", "€30.00"),
                ("New amount", "€40.00"),
                ("First installment at the new amount", "1 June 2026"),
                ("Please answer by", "25 May 2026 at 10:00 (Central European Summer Time)"),
            ],
        ),
    ],
)
def test_a_proposed_plan_change_shows_both_amounts_the_first_new_due_date_the_deadline_and_the_link(
    inbox, language, expected_subject, rows
):
    """R3, R4, the SPEC's example: 30.00 paid on 1 May, 40.00 proposed on 15 May, from 1 June if confirmed by 25 May."""
    seller, order = paying_order(language)
    change = propose_plan_change(order, "40.00", T + 14 * DAY)
    send_due_messages((T + 14 * DAY).isoformat())

    (mail,) = inbox.to(CUSTOMER)
    assert subject(mail) == expected_subject
    text, markup = parts(mail, "plan_change_proposed", language)
    separator = "\xa0: " if language == "fr" else ": "
    for label, value in rows:
        assert f"{label}{separator}{value}" in text
        assert re.search(rf"<th[^>]*>{re.escape(label)}</th><td[^>]*>{re.escape(value)}</td>", markup)
    payload = verify(settings(), signed_link(text, markup, "confirm"), PLAN_CHANGE, now=read_at(mail))
    assert (payload["change"], payload["order"], payload["amount"]) == (change.id, order.id, "40.00")


@pytest.mark.parametrize(
    ("language", "expected_subject", "phrase"),
    [
        (
            "fr",
            "Rappel\xa0: Alice Courses attend votre réponse sur un nouveau montant d’échéance pour Python course",
            "Le 15 mai 2026, Alice Courses vous a proposé de modifier le montant de vos échéances restantes pour "
            "Python course (commande {invoice}). Il vous reste 3\xa0jours pour répondre.",
        ),
        (
            "de",
            "Erinnerung: Alice Courses wartet auf Ihre Antwort zu einem neuen Ratenbetrag für Python course",
            "Alice Courses hat Ihnen am 15. Mai 2026 vorgeschlagen, den Betrag Ihrer verbleibenden Raten für "
            "Python course (Bestellung {invoice}) zu ändern. Sie haben noch 3 Tage Zeit für Ihre Antwort.",
        ),
        (
            "en",
            "Reminder: Alice Courses awaits your answer on a new installment amount for Python course",
            "Alice Courses proposed on 15 May 2026 to change the amount of your remaining installments for "
            "Python course (order {invoice}). You have 3 days left to answer.",
        ),
    ],
)
def test_a_change_unanswered_for_a_week_is_recalled_once_with_the_time_left_and_the_very_same_link(
    inbox, language, expected_subject, phrase
):
    """R15: proposed on 15 May, the tick of 22 May reminds the customer: 3 days left, the first email's link."""
    seller, order = paying_order(language)
    propose_plan_change(order, "40.00", T + 14 * DAY)
    run_due_work(T + 21 * DAY)
    run_due_work(T + 22 * DAY)

    proposed, reminder = inbox.to(CUSTOMER)
    assert subject(reminder) == expected_subject
    text, markup = parts(reminder, "plan_change_reminder", language)
    says(text, markup, phrase.format(invoice=order.invoice_number))
    assert signed_link(text, markup, "confirm") == signed_link(
        *parts(proposed, "plan_change_proposed", language), "confirm"
    )


@pytest.mark.parametrize(
    ("language", "expected_subject", "phrases"),
    [
        (
            "fr",
            "Votre nouveau montant d’échéance pour Python course\xa0: 40,00\xa0€",
            [
                "s’élèvent désormais à 40,00\xa0€ au lieu de 30,00\xa0€.",
                "La première échéance au nouveau montant sera prélevée le 1 juin 2026.",
            ],
        ),
        (
            "de",
            "Ihr neuer Ratenbetrag für Python course: 40,00\xa0€",
            [
                "betragen jetzt 40,00\xa0€ statt 30,00\xa0€.",
                "Die erste Rate zum neuen Betrag ist am 1. Juni 2026 fällig.",
            ],
        ),
        (
            "en",
            "Your new installment amount for Python course: €40.00",
            ["are now €40.00 instead of €30.00.", "The first installment at the new amount is due on 1 June 2026."],
        ),
    ],
)
def test_a_confirmed_plan_change_is_acknowledged_to_the_customer_with_the_first_new_due_date(
    inbox, language, expected_subject, phrases
):
    """R4: confirmed on 16 May, the customer is told 40.00 applies from 1 June."""
    seller, order = paying_order(language)
    change = propose_plan_change(order, "40.00", T + 14 * DAY)
    confirm_plan_change(change.id, T + 15 * DAY)
    send_due_messages((T + 15 * DAY).isoformat())

    proposed, confirmed = inbox.to(CUSTOMER)
    assert subject(confirmed) == expected_subject
    text, markup = parts(confirmed, "plan_change_confirmed", language)
    says(text, markup, *phrases)


def test_a_change_confirmed_after_the_next_charge_names_the_installment_after_it(inbox):
    """R4's late case: proposed 28 May, 30.00 charged on 1 June, confirmed 3 June: 40.00 from 1 July."""
    seller, order = paying_order("en")
    change = propose_plan_change(order, "40.00", T + 27 * DAY)
    run_due_work(T + 31 * DAY)
    confirm_plan_change(change.id, T + 33 * DAY)
    send_due_messages((T + 33 * DAY).isoformat())

    confirmed = inbox.to(CUSTOMER)[-1]
    text, markup = parts(confirmed, "plan_change_confirmed_late", "en")
    says(text, markup, "The first installment at the new amount is due on 1 July 2026.")
    seller_mail = inbox.to(f"notify+{seller.id}@example.com")[-1]
    text, markup = parts(seller_mail, "seller_plan_change", "en")
    says(text, markup, "Claire Dubois confirmed the new amount: €40.00 instead of €30.00", "due on 1 July 2026")


# --- the seller's emails, in the seller's language ---


def seller_mail(inbox, seller, name: str, language: str = "en") -> tuple[str, str, str]:
    """The seller's last email: subject, text and HTML, checked and saved like the customers'."""
    mail = inbox.to(f"notify+{seller.id}@example.com")[-1]
    text, markup = parts(mail, name, language)
    assert re.search(re.escape(settings().public_url) + r"/api/v1/orders/\d+", text)
    return subject(mail), text, markup


def test_the_seller_hears_of_the_third_failure_with_every_reason_and_what_to_do_next(inbox):
    """R6: three dated reasons, then /renew, /collect and the API, in both parts."""
    seller, order = declined_order("fr")
    for day in (0, 7, 14):
        run_due_work(T + day * DAY)

    subject, text, markup = seller_mail(inbox, seller, "seller_third_failure")
    assert subject == f"Order {order.id}: the third payment attempt failed — renew or hand to collections"
    says(text, markup, "Installment 1, €30.00", "Claire Dubois", f"/renew {order.id}", f"/collect {order.id}")
    says(text, markup, f"POST /api/v1/orders/{order.id}/renew", f"POST /api/v1/orders/{order.id}/collection")
    for date in ("1 May 2026", "8 May 2026", "15 May 2026"):
        assert re.search(rf"{date}</td>\s*<td[^>]*>Your card has insufficient funds.<br><code", markup)


@pytest.mark.parametrize(
    ("language", "expected_subject", "phrase"),
    [
        (
            "fr",
            "Votre carte se terminant par 4242 expire avant votre prochaine échéance pour Python course",
            "Votre carte se terminant par 4242 est valable jusqu’en mai 2026. L’échéance 2 de votre commande {invoice}",
        ),
        (
            "de",
            "Ihre Karte mit der Endung 4242 läuft vor Ihrer nächsten Rate für Python course ab",
            "Ihre Karte mit der Endung 4242 ist bis Mai 2026 gültig. Die Rate 2 Ihrer Bestellung {invoice}",
        ),
        (
            "en",
            "Your card ending in 4242 expires before your next installment for Python course",
            "Your card ending in 4242 is valid through May 2026. Installment 2 of your order {invoice}",
        ),
    ],
)
def test_a_card_expiring_before_the_next_installment_is_told_to_its_customer_a_week_ahead_with_the_card_link(
    inbox, language, expected_subject, phrase
):
    """R14: the card is good through May; the tick of 25 May sees the 1 June installment coming and writes."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.card(expires=(5, 2026)), language=language, anchor=T)
    run_due_work(T)
    run_due_work(T + 24 * DAY)

    (mail,) = inbox.to(CUSTOMER)
    assert subject(mail) == expected_subject
    text, markup = parts(mail, "card_expiring", language)
    says(text, markup, phrase.format(invoice=order.invoice_number))
    payload = verify(settings(), signed_link(text, markup, "card"), CARD_UPDATE, now=read_at(mail))
    assert (payload["order"], payload["installment"]) == (order.id, 2)


@pytest.mark.parametrize(
    ("language", "expected_subject", "phrases"),
    [
        (
            "fr",
            "Votre échéance de 30,00\xa0€ pour Python course est prévue le 1 juin 2026",
            ["Elle sera débitée sur votre carte se terminant par 4242."],
        ),
        (
            "de",
            "Ihre Rate von 30,00\xa0€ für Python course ist am 1. Juni 2026 fällig",
            ["Sie wird von Ihrer Karte mit der Endung 4242 abgebucht."],
        ),
        (
            "en",
            "Your installment of €30.00 for Python course is due on 1 June 2026",
            ["It will be charged to your card ending in 4242.", "To pay with another card or account"],
        ),
    ],
)
def test_a_product_reminds_each_installment_in_the_customers_language_days_ahead(
    inbox, language, expected_subject, phrases
):
    """R14: reminder_days 3: the tick of 29 May announces the 1 June installment."""
    seller = factories.seller()
    factories.order(seller, language=language, anchor=T, reminder_days=3)
    run_due_work(T)
    inbox.messages.clear()
    run_due_work(T + 28 * DAY)

    (mail,) = inbox.to(CUSTOMER)
    assert subject(mail) == expected_subject
    text, markup = parts(mail, "installment_reminder", language)
    says(text, markup, *phrases)
    verify(settings(), signed_link(text, markup, "card"), CARD_UPDATE, now=read_at(mail))


@pytest.mark.parametrize(
    ("language", "expected_subject", "phrase"),
    [
        (
            "fr",
            "Le prélèvement de 30,00\xa0€ pour Python course a échoué — nous le présenterons à nouveau le 8 mai 2026",
            "Nous prélèverons votre compte une seconde fois le 8 mai 2026",
        ),
        (
            "de",
            "Lastschrift über 30,00\xa0€ für Python course fehlgeschlagen — wir buchen sie am 8. Mai 2026 erneut ab",
            "Wir buchen den Betrag am 8. Mai 2026 ein weiteres Mal von Ihrem Konto ab",
        ),
        (
            "en",
            "Direct debit of €30.00 for Python course failed — we will debit it again on 8 May 2026",
            "We will debit your account once more on 8 May 2026: please make sure the amount is available by then.",
        ),
    ],
)
def test_a_sepa_debit_retried_for_lack_of_funds_tells_the_customer_the_day_of_the_second_debit(
    inbox, language, expected_subject, phrase
):
    """R16: the product opted in; the debit of 1 May lacked the funds: the customer learns it is debited again on
    8 May, and may pay by card at once instead."""
    seller = factories.seller()
    factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), language=language, anchor=T, sepa_retry=True)
    run_due_work(T)

    (mail,) = inbox.to(CUSTOMER)
    assert subject(mail) == expected_subject
    text, markup = parts(mail, "sepa_debit_retried", language)
    says(text, markup, phrase)
    verify(settings(), signed_link(text, markup, "card"), CARD_UPDATE, now=read_at(mail))


def test_the_seller_hears_of_a_sepa_debit_whose_one_retry_failed_too_with_both_failures(inbox):
    """R16, R8: the debits of 1 and 8 May both lacked the funds: the order is in collections, the seller told once."""
    seller = factories.seller()
    sepa = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T, sepa_retry=True)
    run_due_work(T)
    run_due_work(T + 7 * DAY)

    subject, text, markup = seller_mail(inbox, seller, "seller_sepa_failed")
    assert subject == f"Order {sepa.id}: SEPA debit failed — listed in collections"
    says(text, markup, "failed, and so did its one retry", "1 May 2026", "8 May 2026")


def test_the_seller_hears_of_a_failed_sepa_debit_and_of_a_failed_renewal(inbox):
    """R7, R8: both debts end in collections; the email says so with the reason and the way to hand it off."""
    seller = factories.seller()
    sepa = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    run_due_work(T)
    subject, text, markup = seller_mail(inbox, seller, "seller_sepa_failed")
    assert subject == f"Order {sepa.id}: SEPA debit failed — listed in collections"
    says(text, markup, "SEPA debits are never retried", "Your bank account has insufficient funds.", "1 May 2026")

    _seller, card = declined_order("de")
    card_seller = card.seller
    for day in (0, 7, 14):
        run_due_work(T + day * DAY)
    renew_plan(card, T + 16 * DAY)
    run_due_work(T + 16 * DAY)
    subject, text, markup = seller_mail(inbox, card_seller, "seller_renewal_failed")
    assert subject == f"Order {card.id}: the final payment attempt failed — listed in collections"
    says(text, markup, "The fourth and final attempt", "17 May 2026", f"/collect {card.id}")


@pytest.mark.parametrize(
    ("decide", "expected_subject", "sentence"),
    [
        (
            decline_plan_change,
            "the customer declined the plan change to €40.00",
            "Claire Dubois declined the new amount of €40.00. The plan stays at €30.00.",
        ),
        (
            None,
            "the plan change to €40.00 expired unconfirmed",
            "Claire Dubois did not confirm the new amount of €40.00 within 10 days.",
        ),
    ],
)
def test_the_seller_hears_when_the_customer_declines_or_lets_the_change_expire(
    inbox, decide, expected_subject, sentence
):
    """R4, R11: declined on 16 May, or expired by the tick on 25 May."""
    seller, order = paying_order("fr")
    change = propose_plan_change(order, "40.00", T + 14 * DAY)
    if decide:
        decide(change.id, T + 15 * DAY)
    run_due_work(T + 24 * DAY)

    mail_subject, text, markup = seller_mail(inbox, seller, f"seller_plan_change_{'declined' if decide else 'expired'}")
    assert mail_subject == f"Order {order.id}: {expected_subject}"
    says(text, markup, sentence)


def test_the_seller_hears_of_a_hand_off_with_the_installments_and_amount(inbox):
    """R9: handed off on 5 June: installments 1 and 2, €60.00, final."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    run_due_work(T)
    hand_to_collections(order, T + 35 * DAY)
    send_due_messages((T + 35 * DAY).isoformat())

    subject, text, markup = seller_mail(inbox, seller, "seller_handed_off")
    assert subject == f"Order {order.id} handed to the collection partner: €60.00"
    says(text, markup, "on 5 June 2026. This is final", "€60.00", "1, 2")


@pytest.mark.parametrize(
    ("language", "brief", "third", "phrases"),
    [
        (
            "fr",
            "Commande %(id)s\xa0: échec d’un paiement de 30,00\xa0€",
            "Commande %(id)s\xa0: la troisième tentative de paiement a échoué — relancez ou confiez au recouvrement",
            [
                "La troisième et dernière tentative automatique d’encaissement auprès de Claire Dubois a échoué.",
                "Échéance 1, 30,00\xa0€. Les tentatives et leurs motifs d’échec\xa0:",
                "Ce que vous pouvez faire\xa0:",
                "lancer la quatrième et dernière tentative\xa0: ",
                "La commande dans l’API\xa0: ",
                "Vous recevez cet e-mail à l’adresse de notification de Python course.",
            ],
        ),
        (
            "de",
            "Bestellung %(id)s: eine Zahlung von 30,00\xa0€ ist fehlgeschlagen",
            "Bestellung %(id)s: der dritte Zahlungsversuch ist fehlgeschlagen – erneuern oder ans Inkasso übergeben",
            [
                "Der dritte und letzte automatische Versuch, bei Claire Dubois einzuziehen, ist fehlgeschlagen.",
                "Rate 1, 30,00\xa0€. Die Versuche und warum sie fehlschlugen:",
                "Was Sie tun können:",
                "den vierten und letzten Versuch auslösen: ",
                "Die Bestellung in der API: ",
                "Sie erhalten diese E-Mail an der Benachrichtigungsadresse von Python course.",
            ],
        ),
        (
            "en",
            "Order %(id)s: a payment of €30.00 failed",
            "Order %(id)s: the third payment attempt failed — renew or hand to collections",
            [
                "The third and last automatic attempt to collect from Claire Dubois failed.",
                "Installment 1, €30.00. The attempts and why they failed:",
                "What you can do:",
                "trigger the fourth and final attempt: ",
                "The order in the API: ",
                "You receive this email at the notification address of Python course.",
            ],
        ),
    ],
)
def test_the_seller_reads_their_emails_in_the_language_given_at_sellers_create(inbox, language, brief, third, phrases):
    """R11: a seller created with --language fr or de gets the brief failure and the third failure in it."""
    seller = factories.seller(language=language)
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), language="en", anchor=T)
    for day in (0, 7, 14):
        run_due_work(T + day * DAY)

    first, *_rest = inbox.to(f"notify+{seller.id}@example.com")
    assert subject(first) == brief % {"id": order.id}
    parts(first, "seller_payment_failed", language)
    mail_subject, text, markup = seller_mail(inbox, seller, "seller_third_failure", language)
    assert mail_subject == third % {"id": order.id}
    says(text, markup, *(phrase % {"id": order.id} for phrase in phrases))


@pytest.mark.parametrize("language", ["fr", "de", "en"])
def test_amounts_are_written_as_babel_writes_each_one_however_often_they_recur(language):
    """Amounts are remembered once written, by their text: an amount equal to another (0 and -0, 30 and 30.00)
    is still written as it is, never as the other one was."""
    formats = Formats(language, "Europe/Paris", "EUR")
    written = [formats.money(amount) for amount in ("-0.00", "0", "30", "30.00", "-0.00")]

    assert written[0] == written[4] != written[1]
    assert written[0].replace("-", "").replace("\u2212", "") == written[1]
    assert written[2] == written[3]
