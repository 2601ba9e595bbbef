"""R14 before a payment fails, at the level of the rules: the notice of a card that expires before an installment,
and a product's reminder before each installment; each once, read by the tick from the installments soon due."""

import datetime as dt

import pytest

from billing.dunning import interrupt_plan
from billing.reminders import remind_due_installments, warn_expiring_cards
from jobs.work import run_due_work
from models import Outbox
from tests import factories

# 1 May 2026, 08:00 UTC: the first installment of each monthly order; the next ones on 1 June and 1 July.
T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
MAY = (5, 2026)


def told(template: str) -> list[tuple[int, int]]:
    """(order, installment) of each message of `template` in the outbox, in the order written."""
    rows = Outbox.select().where(Outbox.template == template).order_by(Outbox.id)
    return [(m.context["order_id"], m.context["installment"]) for m in rows]


def test_a_card_good_through_may_is_noticed_7_days_before_the_june_installment_once():
    """R14: the card expires at the end of May; installment 2 is due on 1 June: the notice goes on 25 May at 08:00,
    not a minute before, and never again for that card."""
    order = factories.order(factories.seller(), payment=factories.card(expires=MAY), anchor=T)

    assert warn_expiring_cards(T + 24 * DAY - dt.timedelta(minutes=1)) == 0
    assert warn_expiring_cards(T + 24 * DAY) == 1
    assert warn_expiring_cards(T + 25 * DAY) == 0
    run_due_work(T + 26 * DAY)

    assert told("card_expiring") == [(order.id, 2)]


def test_a_weekly_plan_hears_of_its_expiring_card_once_naming_the_first_installment_it_cannot_pay():
    """R14: four weekly installments from 18 May, the card good through May: one notice, about 1 June's (the 3rd)."""
    order = factories.order(
        factories.seller(), payment=factories.card(expires=MAY), interval="weekly", count=4, anchor=T + 17 * DAY
    )

    for day in range(17, 40):
        warn_expiring_cards(T + day * DAY)

    assert told("card_expiring") == [(order.id, 3)]


@pytest.mark.parametrize(
    "order",
    [
        lambda seller: factories.order(seller, anchor=T),  # a card good through 2030
        lambda seller: factories.order(seller, payment=factories.sepa(), anchor=T),
        lambda seller: factories.order(seller, payment=factories.card(expires=(6, 2026)), anchor=T, count=2),
    ],
    ids=["a card valid for the whole plan", "a SEPA mandate", "no installment after the card expires"],
)
def test_no_notice_when_no_installment_falls_after_the_card_expires(order):
    order(factories.seller())

    for day in range(0, 70):
        warn_expiring_cards(T + day * DAY)

    assert told("card_expiring") == []


def test_an_interrupted_plan_is_not_told_of_its_card():
    """R14 speaks of the next installment: a plan waiting for the seller's renewal charges none."""
    order = factories.order(factories.seller(), payment=factories.card(expires=MAY), anchor=T)
    interrupt_plan(order, T)

    assert warn_expiring_cards(T + 24 * DAY) == 0


def test_a_product_with_reminder_days_announces_each_installment_that_many_days_ahead_once():
    """R14: 3 days ahead: installment 2 (1 June) on 29 May at 08:00, installment 3 (1 July) on 28 June; none twice."""
    order = factories.order(factories.seller(), anchor=T, reminder_days=3)

    assert remind_due_installments(T - DAY) == 1  # installment 1, due tomorrow: sooner than 3 days, announced at once
    assert remind_due_installments(T + 28 * DAY - dt.timedelta(minutes=1)) == 0
    assert remind_due_installments(T + 28 * DAY) == 1
    assert remind_due_installments(T + 29 * DAY) == 0
    for day in range(29, 70):
        run_due_work(T + day * DAY)

    assert told("installment_reminder") == [(order.id, 1), (order.id, 2), (order.id, 3)]


def test_a_product_without_reminder_days_sends_no_reminder():
    """R14: off by default."""
    factories.order(factories.seller(), anchor=T)

    for day in range(0, 70):
        run_due_work(T + day * DAY)

    assert told("installment_reminder") == []
