"""SPEC "Declines": a hard decline is never retried. The plan is interrupted at once, the customer is asked for
another card, the seller is told, and a renewal on that card is refused saying why; soft declines keep R5."""

import datetime as dt

import pytest

from billing.dunning import can_renew, renew_plan
from billing.errors import Refused
from models import ChargeAttempt, Order, Outbox
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def declined_once(code: str, advice: str | None = None) -> Order:
    order = factories.order(factories.seller(), anchor=T)
    [request] = factories.charge_due(T)
    factories.gateway_reports(request, T, code, advice_code=advice)
    return Order.get_by_id(order.id)


@pytest.mark.parametrize("code", ["lost_card", "stolen_card", "pickup_card", "fraudulent", "restricted_card"])
def test_a_hard_decline_interrupts_the_plan_at_once_and_schedules_no_retry(code):
    order = declined_once(code)

    assert order.status == Order.INTERRUPTED
    assert ChargeAttempt.select().where(ChargeAttempt.status == ChargeAttempt.SCHEDULED).count() == 0
    assert factories.charge_due(T + 30 * DAY) == []


def test_a_gateways_advice_not_to_try_again_is_a_hard_decline_whatever_its_code():
    order = declined_once("card_declined", advice="do_not_try_again")

    assert order.status == Order.INTERRUPTED
    assert factories.charge_due(T + 30 * DAY) == []


def test_after_a_hard_decline_the_customer_is_asked_for_another_card_and_the_seller_is_told():
    declined_once("lost_card")

    customer = Outbox.get(Outbox.template == "payment_failed")
    assert (customer.context["hard_decline"], customer.context["next_attempt_at"]) == (True, None)
    seller = Outbox.get(Outbox.template == "seller_hard_decline")
    assert [f["code"] for f in seller.context["failures"]] == ["lost_card"]
    assert not Outbox.select().where(Outbox.template == "seller_payment_failed").exists()


def test_a_renewal_on_a_hard_declined_card_is_refused_saying_why():
    order = declined_once("stolen_card")

    assert not can_renew(order)
    with pytest.raises(Refused) as refused:
        renew_plan(order, T + DAY)
    assert refused.value.code == "hard_decline"
    assert "stolen_card" in refused.value.message and "another card" in refused.value.message


def test_a_soft_decline_keeps_the_ladder():
    order = declined_once("card_declined")

    assert order.status == Order.ACTIVE
    [retry] = ChargeAttempt.select().where(ChargeAttempt.status == ChargeAttempt.SCHEDULED)
    assert (retry.number, retry.due_at) == (2, T + 7 * DAY)
    assert Outbox.get(Outbox.template == "payment_failed").context["hard_decline"] is False
