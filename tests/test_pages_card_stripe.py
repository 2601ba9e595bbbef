"""GET|POST /card/<token> with GATEWAY=stripe (R10): the card or IBAN goes from the browser to Stripe through a
SetupIntent made on submit (POST /card/<token>/setup-intent); the page then posts only the SetupIntent's id, which
pays this installment only if it succeeded for this order's customer and installment.

Through localstripe, its SetupIntents confirmed here with the secret key as Stripe.js would with the page's secret
(tests/browser/test_card_page_stripe.py drives Stripe.js itself); Stripe not answering through recorded answers."""

import datetime as dt
from urllib.parse import urlsplit

import pytest

from models import Installment, Order
from runtime import settings, utcnow
from tests import factories
from tests.stripe_api import recorded
from tests.test_gateway_stripe import CARD
from tests.test_pages_confirm import form_token_in, work_the_queue
from tests.test_pages_links import card_link, failed_card_order, snapshot, tampered

# Another expiry than the card on file's (12/2030): it shows which card is on file.
NEW_CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 8, "exp_year": 2031, "cvc": "123"}}
THREE_D_SECURE = {**NEW_CARD, "card": {**NEW_CARD["card"], "number": "4000002500003155"}}
ON_FILE = ("pm_Recorded0001", "visa", "4242", 12, 2030)
# The SDK sends a 5xx again three times (gateways.stripe.NETWORK_RETRIES): Stripe failing four times in a row.
UNANSWERED = 4


def failed_stripe_order(customer: str, language: str = "en") -> Order:
    """A card order of the Stripe Customer `customer` whose first automatic attempt failed a moment ago."""
    now = utcnow()
    order = factories.stripe_order(customer, anchor=now - dt.timedelta(hours=1), language=language)
    factories.answer_due_charges(now, "insufficient_funds")
    return order


def stripe_customer(localstripe) -> str:
    return localstripe.customer_with(CARD)[0]


def ask_for_a_setup(client, path: str, method: str = "card"):
    """What the page's script sends on submit: its form token and the method."""
    return client.post(f"{path}/setup-intent", data={"form_token": form_token_in(client.get(path)), "method": method})


def pay_with(client, path: str, setup_intent: str, method: str = "card"):
    """The form the page's script submits once Stripe.js set the new card or mandate up."""
    token = form_token_in(client.get(path))
    return client.post(path, data={"form_token": token, "method": method, "setup_intent": setup_intent})


def on_file(order: Order) -> tuple:
    stored = Order.get_by_id(order.id)
    return stored.card_token, stored.card_brand, stored.card_last4, stored.card_exp_month, stored.card_exp_year


def installment_status(order: Order) -> str:
    return Installment.get(Installment.order == order.id, Installment.number == 1).status


def setup_intent_id(answer) -> str:
    return answer.get_json()["client_secret"].split("_secret_")[0]


def confirmed(localstripe, setup_intent: str, card: dict = NEW_CARD):
    """The SetupIntent confirmed with a new card, as Stripe.js confirms it on the page."""
    payment_method = localstripe.client.v1.payment_methods.create(card)  # type: ignore[arg-type]
    return localstripe.client.v1.setup_intents.confirm(setup_intent, {"payment_method": payment_method.id})


def set_up(localstripe, customer: str, card: dict = NEW_CARD, **metadata) -> str:
    """The id of a SetupIntent made for `customer` with `metadata` and confirmed with `card`, by anyone but the page."""
    made = localstripe.client.v1.setup_intents.create({"customer": customer, "metadata": metadata})
    return confirmed(localstripe, made.id, card).id


# --- showing the page ---------------------------------------------------------------------------------------------


def test_opening_the_card_page_makes_no_setup_intent_and_gives_stripe_js_the_card_and_iban_fields(client, localstripe):
    """Mail scanners open links: a GET only shows. No field of card or bank data is named, so none reaches Tranche."""
    order = failed_stripe_order(stripe_customer(localstripe))

    page = client.get(card_link(order))

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert localstripe.setup_intents() == []
    assert f'<script src="{settings().stripe_js_url}"></script>' in html
    assert 'id="card-element"' in html and 'name="number"' not in html and 'name="expiry"' not in html
    assert '<input id="iban" type="text"' in html and 'name="iban"' not in html
    assert html.count('name="setup_intent" value=""') == 2


def test_the_card_pages_policy_lets_in_stripe_js_from_its_origin_its_frames_and_its_api_and_nothing_else(
    client, localstripe
):
    order = failed_stripe_order(stripe_customer(localstripe))
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings().stripe_js_url))

    policy = dict(
        directive.split(" ", 1)
        for directive in client.get(card_link(order)).headers["Content-Security-Policy"].split("; ")
    )

    assert policy == {
        "default-src": "'none'",
        "style-src": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "script-src": f"'self' {origin} https://js.stripe.com https://*.js.stripe.com",
        "frame-src": f"{origin} https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
        "connect-src": f"'self' {origin} https://api.stripe.com",
    }


@pytest.mark.parametrize(
    ("language", "authorisation", "refund"),
    [
        (
            "fr",
            "vous autorisez (A) Alice Courses et Stripe, notre prestataire de services de paiement, à envoyer",
            "La demande de remboursement doit être soumise dans un délai de 8 semaines",
        ),
        (
            "de",
            "ermächtigen Sie (A) Alice Courses und Stripe, unseren Zahlungsdienstleister, Ihrem Kreditinstitut",
            "Eine Rückerstattung muss innerhalb von 8 Wochen ab dem Tag",
        ),
        (
            "en",
            "you authorise (A) Alice Courses and Stripe, our payment service provider, to send instructions",
            "A refund must be claimed within 8 weeks starting from the date",
        ),
    ],
)
def test_the_sepa_form_shows_stripes_mandate_naming_the_seller_in_the_customers_language(
    client, localstripe, language, authorisation, refund
):
    order = failed_stripe_order(stripe_customer(localstripe), language)

    html = client.get(card_link(order)).get_data(as_text=True)

    mandate = html.split('<p class="hint" id="mandate">', 1)[1].split("</p>", 1)[0]
    assert authorisation in mandate and refund in mandate


def test_under_the_sandbox_the_page_takes_the_card_itself_and_has_no_setup_route(client):
    """GATEWAY=sandbox: the number and expiry fields, no script in the page or its policy; no SetupIntent to ask for."""
    path = card_link(failed_card_order(factories.seller(), "en"))

    page = client.get(path)
    asked = ask_for_a_setup(client, path)

    assert 'name="number"' in page.get_data(as_text=True) and "<script" not in page.get_data(as_text=True)
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert (asked.status_code, asked.get_json()) == (404, {"error": "This link does not work"})


# --- POST /card/<token>/setup-intent ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "stripe_type"), [("card", "card"), ("sepa", "sepa_debit")])
def test_on_submit_a_setup_intent_is_made_for_the_orders_customer_off_session_naming_order_and_installment(
    client, localstripe, method, stripe_type
):
    customer = stripe_customer(localstripe)
    order = failed_stripe_order(customer)

    asked = ask_for_a_setup(client, card_link(order), method)

    assert asked.status_code == 200 and asked.headers["Cache-Control"] == "no-store"
    (setup_intent,) = localstripe.setup_intents()
    assert asked.get_json() == {"client_secret": setup_intent.client_secret}
    assert (setup_intent.customer, setup_intent.usage, setup_intent.payment_method_types) == (
        customer,
        "off_session",
        [stripe_type],
    )
    assert setup_intent.metadata.to_dict() == {"tranche_order_id": str(order.id), "tranche_installment": "1"}


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"method": "card"}, 400, "This page has expired"),
        ({"method": "card", "form_token": "junk"}, 400, "This page has expired"),
        ({"method": "paypal", "form_token": "page"}, 400, "This page has expired"),
        ({"form_token": "page"}, 400, "This page has expired"),
    ],
    ids=["no form token", "a forged form token", "an unknown method", "no method"],
)
def test_a_setup_asked_for_other_than_by_the_page_is_refused_as_json_and_makes_none(
    client, localstripe, fields, status, error
):
    order = failed_stripe_order(stripe_customer(localstripe), "en")
    path = card_link(order)
    if fields.get("form_token") == "page":
        fields = {**fields, "form_token": form_token_in(client.get(path))}

    asked = client.post(f"{path}/setup-intent", data=fields)

    assert (asked.status_code, asked.get_json()) == (status, {"error": error})
    assert localstripe.setup_intents() == []


def test_a_setup_through_a_link_we_never_signed_is_a_404_in_the_browsers_language(client, localstripe):
    order = failed_stripe_order(stripe_customer(localstripe))
    path = card_link(order)
    token = form_token_in(client.get(path))

    asked = client.post(
        f"{tampered(path)}/setup-intent",
        data={"form_token": token, "method": "card"},
        headers={"Accept-Language": "fr-FR,fr;q=0.9"},
    )

    assert (asked.status_code, asked.get_json()) == (404, {"error": "Ce lien ne fonctionne pas"})
    assert localstripe.setup_intents() == []


def test_a_setup_for_an_installment_paid_meanwhile_is_refused_in_the_customers_language(client, localstripe):
    """The page was opened, then the installment was paid (another tab): its script is told why, nothing is made."""
    order = failed_stripe_order(stripe_customer(localstripe), "de")
    path = card_link(order)
    token = form_token_in(client.get(path))
    Installment.update(status=Installment.PAID).where(Installment.order == order.id).execute()

    asked = client.post(f"{path}/setup-intent", data={"form_token": token, "method": "card"})

    assert (asked.status_code, asked.get_json()) == (410, {"error": "Diese Rate ist bezahlt"})
    assert localstripe.setup_intents() == []


# --- POST /card/<token> with the SetupIntent's id -----------------------------------------------------------------


def test_a_setup_intent_confirmed_for_this_installment_charges_it_at_once_and_its_card_goes_on_file_once_paid(
    client, localstripe
):
    """R10: the new PaymentMethod is charged off-session for the customer; only its success puts it on file."""
    customer = stripe_customer(localstripe)
    order = failed_stripe_order(customer)
    path = card_link(order)
    setup_intent = confirmed(localstripe, setup_intent_id(ask_for_a_setup(client, path)))

    paid = pay_with(client, path, setup_intent.id)

    assert paid.status_code == 303 and "?attempt=" in paid.headers["Location"]
    assert on_file(order) == ON_FILE
    work_the_queue()
    (payment_intent,) = localstripe.payment_intents()
    assert (payment_intent.customer, payment_intent.payment_method) == (customer, setup_intent.payment_method)
    assert payment_intent.metadata.to_dict()["tranche_attempt"] == f"tranche-{order.id}-1-customer-1"
    assert installment_status(order) == Installment.PAID
    assert on_file(order) == (setup_intent.payment_method, "visa", "4242", 8, 2031)


def setup_of_another_customer(localstripe, order):
    return set_up(localstripe, stripe_customer(localstripe), tranche_order_id=str(order.id), tranche_installment="1")


def setup_for_another_installment(localstripe, order):
    customer = order.customer.gateway_customer_id
    return set_up(localstripe, customer, tranche_order_id=str(order.id), tranche_installment="2")


def setup_of_no_order(localstripe, order):
    return set_up(localstripe, order.customer.gateway_customer_id)


def setup_whose_3d_secure_was_never_completed(localstripe, order):
    customer = order.customer.gateway_customer_id
    return set_up(localstripe, customer, THREE_D_SECURE, tranche_order_id=str(order.id), tranche_installment="1")


def unknown_setup(localstripe, order):
    return "seti_NoSuchSetupIntent0001"


def no_setup_id(localstripe, order):
    return "../customers"


@pytest.mark.parametrize(
    "setup",
    [
        setup_of_another_customer,
        setup_for_another_installment,
        setup_of_no_order,
        setup_whose_3d_secure_was_never_completed,
        unknown_setup,
        no_setup_id,
    ],
)
def test_a_setup_intent_not_succeeded_for_this_installment_is_refused_and_changes_nothing(client, localstripe, setup):
    """A forged or foreign id never pays someone else's installment: the form again, saying so, and nothing charged."""
    order = failed_stripe_order(stripe_customer(localstripe))
    path = card_link(order)
    setup_id = setup(localstripe, order)
    before = snapshot()

    refused = pay_with(client, path, setup_id)

    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'id="card-setup-error" role="alert">This payment method could not be used. Please try another one.' in html
    assert snapshot() == before
    assert localstripe.payment_intents() == []


# --- Stripe not answering (recorded answers) ----------------------------------------------------------------------


def test_stripe_not_answering_a_setup_is_a_503_saying_so_as_json(client, stripe_api):
    order = failed_stripe_order("cus_Recorded0001", "fr")
    for _ in range(UNANSWERED):
        stripe_api.answer("POST", "/v1/setup_intents", recorded("api_error"), 500)

    asked = ask_for_a_setup(client, card_link(order))

    assert (asked.status_code, asked.get_json()) == (503, {"error": "Le service de paiement n’a pas répondu"})


def test_stripe_not_answering_about_a_setup_intent_is_a_page_saying_so_and_changes_nothing(client, stripe_api):
    order = failed_stripe_order("cus_Recorded0001")
    for _ in range(UNANSWERED):
        stripe_api.answer("GET", "/v1/setup_intents/seti_Recorded0001", recorded("api_error"), 500)
    before = snapshot()

    page = pay_with(client, card_link(order), "seti_Recorded0001")

    html = page.get_data(as_text=True)
    assert page.status_code == 503
    assert "The payment service did not answer" in html and "Nothing was charged." in html
    assert snapshot() == before
