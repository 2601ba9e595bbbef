import datetime as dt
import threading
import time
from decimal import Decimal

import pytest

from billing.errors import InvalidInput, Refused
from billing.plan_changes import (
    ChangeNotOpen,
    confirm_plan_change,
    decline_plan_change,
    expire_plan_changes,
    propose_plan_change,
    remind_unanswered_changes,
)
from jobs.work import run_due_work
from models import Order, Outbox, PlanChange, SandboxCharge, db
from tests import factories

UTC = dt.UTC


def day(month, d, hour=8):
    return dt.datetime(2026, month, d, hour, 0, tzinfo=UTC)


def charged_amounts(order):
    return [
        (c.installment, c.amount)
        for c in SandboxCharge.select().where(SandboxCharge.order_id == order.id).order_by(SandboxCharge.installment)
    ]


def test_the_articles_example_a_change_confirmed_in_may_debits_40_on_the_first_of_june():
    """30.00 € paid on 01.05, 40.00 € set on 15.05 and confirmed, 40.00 € debited on 01.06."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    run_due_work(day(5, 1))

    change = propose_plan_change(order, "40.00", day(5, 15))
    confirm_plan_change(change.id, day(5, 16))
    run_due_work(day(6, 1))

    assert charged_amounts(order) == [(1, Decimal("30.00")), (2, Decimal("40.00"))]


def test_a_change_confirmed_after_the_june_charge_starts_with_the_july_installment():
    """Confirmed on 03.06, after 30.00 € was debited on 01.06: 40.00 € from 01.07."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    run_due_work(day(5, 1))
    # Proposed on 28.05 so that 03.06 still falls within the 10 days.
    change = propose_plan_change(order, "40.00", day(5, 28))
    run_due_work(day(6, 1))

    confirm_plan_change(change.id, day(6, 3))
    run_due_work(day(7, 1))

    assert charged_amounts(order) == [(1, Decimal("30.00")), (2, Decimal("30.00")), (3, Decimal("40.00"))]
    assert Order.get_by_id(order.id).amount == Decimal("40.00")


def test_an_unconfirmed_change_expires_after_240_hours_and_the_seller_is_told():
    """The plan stays, the link says expired, the seller hears of it."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))

    assert expire_plan_changes(day(5, 25, hour=7)) == 0
    assert expire_plan_changes(day(5, 25)) == 1

    assert PlanChange.get_by_id(change.id).status == PlanChange.EXPIRED
    assert Order.get_by_id(order.id).amount == Decimal("30.00")
    with pytest.raises(ChangeNotOpen) as refused:
        confirm_plan_change(change.id, day(5, 26))
    assert refused.value.code == "expired"
    told = Outbox.get(Outbox.template == "seller_plan_change")
    assert told.context["status"] == "expired"


def reminders():
    return [m.context["change_id"] for m in Outbox.select().where(Outbox.template == "plan_change_reminder")]


def test_a_change_unanswered_for_168_hours_reminds_its_customer_once():
    """R15: proposed on 15.05 at 08:00, reminded on 22.05 at 08:00 and not an hour before; later ticks add nothing."""
    order = factories.order(factories.seller(), count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))

    assert remind_unanswered_changes(day(5, 22, hour=7)) == 0
    assert remind_unanswered_changes(day(5, 22)) == 1
    assert remind_unanswered_changes(day(5, 23)) == 0
    run_due_work(day(5, 24))

    assert reminders() == [change.id]
    assert PlanChange.get_by_id(change.id).reminded_at == day(5, 22)


@pytest.mark.parametrize(
    "answer",
    [
        lambda change: confirm_plan_change(change.id, day(5, 16)),
        lambda change: decline_plan_change(change.id, day(5, 16)),
        lambda change: propose_plan_change(change.order, "45.00", day(5, 20)),
    ],
    ids=["confirmed", "declined", "replaced by a newer one"],
)
def test_no_reminder_follows_an_answer_or_a_newer_change(answer):
    """R15: a confirmed, declined or superseded change is never reminded; a newer one waits its own 168 hours."""
    order = factories.order(factories.seller(), count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))
    answer(change)

    remind_unanswered_changes(day(5, 22))

    newer = PlanChange.select().where(PlanChange.status == PlanChange.PENDING).first()
    assert reminders() == []
    if newer:
        remind_unanswered_changes(day(5, 27))
        assert reminders() == [newer.id]


def test_a_change_expired_before_any_tick_reminded_it_gets_no_reminder():
    """R15: ticks stopped from 21.05 to 26.05: the change expired on 25.05, and its customer is not reminded."""
    order = factories.order(factories.seller(), count=4, anchor=day(5, 1))
    propose_plan_change(order, "40.00", day(5, 15))

    run_due_work(day(5, 26))

    assert PlanChange.get().status == PlanChange.EXPIRED
    assert reminders() == []


def test_a_confirmation_a_second_late_counts_as_expired():
    """Exactly 240 hours after the email the link no longer works, even before a tick ran."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))

    with pytest.raises(ChangeNotOpen):
        confirm_plan_change(change.id, day(5, 15) + dt.timedelta(hours=240))
    assert Order.get_by_id(order.id).amount == Decimal("30.00")


def test_a_declined_change_leaves_the_plan_and_tells_the_seller():
    """Decline closes the change; confirming it afterwards is refused."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))

    decline_plan_change(change.id, day(5, 16))

    with pytest.raises(ChangeNotOpen):
        confirm_plan_change(change.id, day(5, 16))
    assert Order.get_by_id(order.id).amount == Decimal("30.00")
    assert Outbox.get(Outbox.template == "seller_plan_change").context["status"] == "declined"


def test_a_newer_change_replaces_the_pending_one_whose_link_stops_working():
    """One pending change per order."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    older = propose_plan_change(order, "40.00", day(5, 15))
    newer = propose_plan_change(order, "35.00", day(5, 16))

    with pytest.raises(ChangeNotOpen) as refused:
        confirm_plan_change(older.id, day(5, 17))
    assert refused.value.code == "superseded"
    confirm_plan_change(newer.id, day(5, 17))
    assert Order.get_by_id(order.id).amount == Decimal("35.00")


@pytest.mark.parametrize(
    ("amount", "extra", "code"),
    [
        ("1.99", {}, "below_minimum"),
        ("30.00", {}, "unchanged"),
        ("40.00", {"installment_count": 6}, "count_fixed"),
        ("40.00", {"interval": "weekly"}, "interval_fixed"),
    ],
)
def test_a_change_breaking_a_rule_is_refused_with_its_reason(amount, extra, code):
    """At least 2.00, different from today's amount, same count and interval."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))

    with pytest.raises(Refused) as refused:
        propose_plan_change(order, amount, day(5, 15), **extra)

    assert refused.value.code == code
    assert not PlanChange.select().exists()


@pytest.mark.parametrize("amount", ["1,99", "abc", "", "40.001", "-5"])
def test_a_malformed_amount_is_refused_naming_the_field(amount):
    """Bad input changes nothing."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))

    with pytest.raises(InvalidInput) as refused:
        propose_plan_change(order, amount, day(5, 15))

    assert refused.value.field == "amount"
    assert not PlanChange.select().exists()


def test_a_completed_plan_can_no_longer_change():
    """Only a plan still running may change."""
    seller = factories.seller()
    order = factories.order(seller, count=2, anchor=day(5, 1))
    run_due_work(day(5, 1))
    run_due_work(day(6, 1))

    with pytest.raises(Refused) as refused:
        propose_plan_change(order, "40.00", day(6, 2))
    assert refused.value.code == "closed"


def test_the_customer_is_emailed_once_per_proposal_and_the_seller_once_per_outcome():
    """One message per fact."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))
    confirm_plan_change(change.id, day(5, 16))

    templates = sorted(m.template for m in Outbox.select())
    assert templates == ["plan_change_confirmed", "plan_change_proposed", "seller_plan_change"]


def test_proposals_made_at_the_same_moment_leave_exactly_one_pending_change():
    """One pending change per order, even when two sellers' clicks race."""
    seller = factories.seller()
    order = factories.order(seller, count=4, anchor=day(5, 1))
    start = threading.Barrier(6)

    def propose(amount):
        with db.connection_context():
            start.wait()
            propose_plan_change(order, amount, day(5, 15))

    threads = [threading.Thread(target=propose, args=(f"{40 + n}.00",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = [c.status for c in PlanChange.select()]
    assert len(statuses) == 6
    assert statuses.count(PlanChange.PENDING) == 1


def test_a_seller_proposing_while_the_customer_confirms_waits_and_the_new_proposal_is_the_one_pending(slow_updates):
    """The customer confirms 40.00 at the moment the seller proposes 45.00. The proposal waits for the confirmation
    instead of deadlocking with it (it held the order and then reached the change; the confirmation held the change
    and then reached the order): the plan is at 40.00 and 45.00 waits for the customer."""
    if not db.for_update:
        pytest.skip("SQLite's one writer makes the two take turns: there is no lock order to get wrong")
    order = factories.order(factories.seller(), count=4, anchor=day(5, 1))
    change = propose_plan_change(order, "40.00", day(5, 15))
    slow_updates("plan_change", f"OLD.id = {change.id} AND NEW.status = '{PlanChange.CONFIRMED}'")

    def customer_confirms():
        with db.connection_context():
            confirm_plan_change(change.id, day(5, 16))

    other = threading.Thread(target=customer_confirms)
    other.start()
    time.sleep(0.2)  # the confirmation holds the change, and waits in the trigger
    newer = propose_plan_change(order, "45.00", day(5, 16))
    other.join()

    assert PlanChange.get_by_id(change.id).status == PlanChange.CONFIRMED
    assert PlanChange.get_by_id(newer.id).status == PlanChange.PENDING
    assert Order.get_by_id(order.id).amount == Decimal("40.00")
