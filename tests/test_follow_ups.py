"""What a rule's transaction calls for (a charge, a message, a hand-off) starts once it commits, and only then;
with Redis down the request still succeeds, and the tick starts the work from the database."""

import datetime as dt

import pytest

from billing import followups
from jobs.work import run_due_work
from models import ChargeAttempt, Order, transaction
from runtime import queue, utcnow
from tests import factories
from tests.outages import redis_unreachable


@pytest.fixture
def seller():
    return factories.seller()


def post(client, seller, path, body=None):
    return client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {seller.api_key}"})


def interrupted_order(seller):
    """A card order whose three automatic attempts failed: waiting for the seller's renewal (R6)."""
    start = utcnow().replace(microsecond=0) - dt.timedelta(days=15)
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=start)
    factories.decline_the_ladder(start)
    assert Order.get_by_id(order.id).status == Order.INTERRUPTED
    return order


def test_a_renewal_accepted_while_redis_is_unreachable_is_answered_202_and_charged_by_the_next_tick(client, seller):
    order = interrupted_order(seller)

    with redis_unreachable():
        response = post(client, seller, f"/orders/{order.id}/renew")

    assert response.status_code == 202, response.get_json()
    run_due_work(utcnow())
    renewal = ChargeAttempt.get(ChargeAttempt.kind == ChargeAttempt.RENEWAL)
    assert renewal.status == ChargeAttempt.FAILED  # sent, and declined by the sandbox's card


def test_a_plan_change_proposed_while_redis_is_unreachable_is_answered_201_and_its_email_sent_by_the_tick(
    client, seller, inbox
):
    order = factories.order(seller, anchor=utcnow() + dt.timedelta(days=3))

    with redis_unreachable():
        response = post(client, seller, f"/orders/{order.id}/plan-change", {"amount": "40.00"})

    assert response.status_code == 201, response.get_json()
    run_due_work(utcnow())
    (email,) = inbox.to("claire@example.com")
    assert "/confirm/" in email.get_body(("plain",)).get_content()


def test_a_renewal_queues_its_charge_as_it_commits_not_at_the_next_tick(client, seller):
    order = interrupted_order(seller)

    response = post(client, seller, f"/orders/{order.id}/renew")

    renewal = ChargeAttempt.get(ChargeAttempt.kind == ChargeAttempt.RENEWAL)
    assert response.status_code == 202
    assert f"charge-{renewal.id}" in queue().job_ids


def test_a_rolled_back_transaction_starts_nothing():
    with pytest.raises(RuntimeError), transaction():
        followups.follow_up(followups.FollowUp(followups.SEND_MESSAGES))
        raise RuntimeError("the rule refused after writing")

    assert queue().count == 0


def test_the_messages_a_transaction_writes_wake_one_sender_once_it_commits():
    with transaction():
        for _fact in ("one", "two", "three"):
            followups.follow_up(followups.FollowUp(followups.SEND_MESSAGES))
        assert queue().count == 0  # not before the commit: the job would find nothing

    assert queue().count == 1
