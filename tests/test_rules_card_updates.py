"""R10 at the rules level: the customer's new card is charged from its own charge and goes on file only once it paid."""

import datetime as dt
import threading
import time

import pytest

from billing.card_updates import update_card_and_charge
from billing.collections import hand_to_collections
from billing.errors import Refused
from billing.plans import add_attempt
from models import (
    ChargeAttempt,
    CollectionCase,
    Installment,
    Order,
    Outbox,
    SandboxCharge,
    SlackLink,
    whole_transaction,
)
from runtime import database
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def card_on_file(order):
    stored = Order.get_by_id(order.id)
    return stored.method, stored.card_token, stored.card_last4


def first_attempt_declined(seller):
    """A card order whose first automatic attempt failed at T: attempt 2 is due at T + 7 days."""
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    factories.answer_due_charges(T, "insufficient_funds")
    return order


def test_a_declined_new_card_is_forgotten_and_the_next_automatic_retry_charges_the_card_on_file():
    """The customer's charge carries the new token; after its decline the order and attempt 2 keep the old card."""
    order = first_attempt_declined(factories.seller())
    old = card_on_file(order)
    new_card = factories.card(factories.DECLINED)

    update_card_and_charge(order, 1, new_card, T + HOUR)
    [customer_charge] = factories.charge_due(T + HOUR)
    assert (customer_charge.method, customer_charge.token) == ("card", new_card.token)
    assert card_on_file(order) == old
    factories.gateway_reports(customer_charge, T + HOUR, "card_declined")

    assert card_on_file(order) == old
    [retry] = factories.charge_due(T + 7 * DAY)
    assert (retry.method, retry.token) == ("card", old[1])


def test_a_new_card_that_pays_becomes_the_card_on_file_for_the_coming_installments():
    """Success: the order shows the new card, and the next installment is charged on it."""
    order = first_attempt_declined(factories.seller())
    new_card = factories.card(factories.SUCCEEDS)

    update_card_and_charge(order, 1, new_card, T + HOUR)
    [customer_charge] = factories.charge_due(T + HOUR)
    factories.gateway_reports(customer_charge, T + HOUR)

    stored = Order.get_by_id(order.id)
    assert (stored.card_token, stored.card_brand, stored.card_last4) == (new_card.token, "visa", "4242")
    assert (stored.card_exp_month, stored.card_exp_year) == (12, 2030)
    [next_installment] = factories.charge_due(T + 31 * DAY)
    assert (next_installment.installment, next_installment.token) == (2, new_card.token)


def test_a_new_mandate_that_pays_switches_the_order_to_sepa():
    """A card order paid up by direct debit keeps the mandate, and no card, on file."""
    order = first_attempt_declined(factories.seller())
    mandate = factories.sepa()

    update_card_and_charge(order, 1, mandate, T + HOUR)
    [customer_charge] = factories.charge_due(T + HOUR)
    assert (customer_charge.method, customer_charge.token) == ("sepa", mandate.token)
    factories.gateway_reports(customer_charge, T + HOUR)

    stored = Order.get_by_id(order.id)
    assert (stored.method, stored.sepa_mandate, stored.card_token) == ("sepa", mandate.token, None)
    assert stored.iban_masked == mandate.iban_masked


def listed_in_collections(seller):
    """A SEPA order whose first debit failed at T: listed in collections (R8), the seller linked on Slack."""
    SlackLink.create(seller=seller, team_id=f"T{seller.id}", channel_id="C1", linked_at=T)
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    factories.answer_due_charges(T, "insufficient_funds")
    assert Order.get_by_id(order.id).status == Order.COLLECTIONS
    return order


def test_paying_from_the_link_takes_a_listed_order_off_the_list_resumes_the_plan_and_tells_the_seller():
    """R10: the open installment paid, no collection case left, the plan active, the seller and customer told."""
    order = listed_in_collections(factories.seller())

    update_card_and_charge(order, 1, factories.card(), T + DAY)
    [customer_charge] = factories.charge_due(T + DAY)
    note = factories.gateway_reports(customer_charge, T + DAY)

    assert note == "installment 1 paid, recovered"
    assert Installment.get(order=order, number=1).status == Installment.PAID
    assert Order.get_by_id(order.id).status == Order.ACTIVE
    assert not CollectionCase.select().where(CollectionCase.order == order).exists()
    told = {(m.channel, m.template) for m in Outbox.select()}
    assert {(Outbox.SLACK, "slack_payment_recovered"), (Outbox.EMAIL, "payment_recovered")} <= told
    [next_installment] = factories.charge_due(T + 31 * DAY)
    assert next_installment.installment == 2


def test_a_declined_payment_from_the_link_leaves_a_listed_order_on_the_list():
    """The customer's failed charge changes nothing: still listed, the mandate that failed still on file."""
    order = listed_in_collections(factories.seller())
    before = card_on_file(order)

    update_card_and_charge(order, 1, factories.card(factories.DECLINED), T + DAY)
    [customer_charge] = factories.charge_due(T + DAY)
    factories.gateway_reports(customer_charge, T + DAY, "card_declined")

    assert Order.get_by_id(order.id).status == Order.COLLECTIONS
    assert CollectionCase.select().where(CollectionCase.order == order).exists()
    assert card_on_file(order) == before


def test_a_handed_off_order_cannot_be_paid_from_the_link():
    """The hand-off is final (R9): the card update is refused and no charge is added."""
    seller = factories.seller()
    order = listed_in_collections(seller)
    hand_to_collections(order, T + DAY)

    with pytest.raises(Refused) as refused:
        update_card_and_charge(order, 1, factories.card(), T + 2 * DAY)

    assert refused.value.code == "handed_off"
    assert factories.charge_due(T + 2 * DAY) == []


def test_a_new_card_given_while_the_declined_charges_late_success_is_being_applied_waits_and_is_refused_as_paid():
    """The gateway reports that the declined charge went through after all, and a worker's batch applies it while
    the customer gives a new card. The card update waits for that batch, then reads the installment paid: it is
    refused, and no second charge of the installment is scheduled (it would charge the customer twice)."""
    order = factories.order(factories.seller(), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    success_applied = threading.Event()

    def batch_with_the_late_success():
        with database().connection_context(), whole_transaction():
            factories.gateway_reports(first, T + HOUR)
            success_applied.set()
            time.sleep(0.3)  # while the card update, begun, reads and writes what it can

    other = threading.Thread(target=batch_with_the_late_success)
    other.start()
    assert success_applied.wait(5)
    with pytest.raises(Refused) as refused:
        update_card_and_charge(order, 1, factories.card(), T + HOUR)
    other.join()

    assert refused.value.code == "paid"
    assert Installment.get(order=order, number=1).status == Installment.PAID
    kinds = ChargeAttempt.select().join(Installment).where(Installment.order == order, ChargeAttempt.kind == "customer")
    assert kinds.count() == 0


def test_a_charge_left_scheduled_on_an_installment_paid_meanwhile_is_cancelled_and_never_sent():
    """Whatever left it there, a charge due on a paid installment is not sent to the gateway."""
    order = factories.order(factories.seller(), anchor=T)
    factories.answer_due_charges(T)
    installment = Installment.get(order=order, number=1)
    assert installment.status == Installment.PAID
    stray = add_attempt(installment, ChargeAttempt.CUSTOMER, 1, T + HOUR, factories.card())
    charges = SandboxCharge.select().count()

    assert factories.charge_due(T + HOUR) == []

    assert ChargeAttempt.get_by_id(stray.id).status == ChargeAttempt.CANCELLED
    assert SandboxCharge.select().count() == charges
