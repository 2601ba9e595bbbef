"""R1 plans and R2 billing, at the level of the rules: due dates, and which installment is charged when."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from billing.errors import InvalidInput
from billing.plans import add_attempt, create_order, open_installment, start_due_installments
from models import ChargeAttempt, Customer, Installment, Order, Product
from tests import factories

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)


def local_due_dates(order, zone=BERLIN):
    return [i.due_at.astimezone(zone) for i in order.installments.order_by(Installment.number)]


def test_monthly_due_dates_keep_the_anchor_day_31_jan_28_feb_31_mar():
    """The 31st clamps to 28 Feb and is back on 31 Mar: each date comes from the anchor, not the one before."""
    order = factories.order(
        factories.seller(), count=5, anchor=dt.datetime(2026, 1, 31, 10, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    )

    assert local_due_dates(order) == [
        dt.datetime(2026, 1, 31, 10, 0, tzinfo=BERLIN),
        dt.datetime(2026, 2, 28, 10, 0, tzinfo=BERLIN),
        dt.datetime(2026, 3, 31, 10, 0, tzinfo=BERLIN),
        dt.datetime(2026, 4, 30, 10, 0, tzinfo=BERLIN),
        dt.datetime(2026, 5, 31, 10, 0, tzinfo=BERLIN),
    ]


def test_in_a_leap_year_the_31st_falls_on_29_february():
    """31 Jan 2028 → 29 Feb 2028 → 31 Mar 2028."""
    order = factories.order(
        factories.seller(), count=3, anchor=dt.datetime(2028, 1, 31, 10, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    )

    assert [d.date() for d in local_due_dates(order)] == [
        dt.date(2028, 1, 31),
        dt.date(2028, 2, 29),
        dt.date(2028, 3, 31),
    ]


def test_the_anchor_day_is_the_day_in_the_sellers_time_zone_not_in_utc():
    """30 Jan 22:00 in New York is 31 Jan in UTC: the plan keeps the 30th, New York time."""
    seller = factories.seller()
    seller.timezone = "America/New_York"
    seller.save()
    order = factories.order(seller, count=3, anchor=dt.datetime(2026, 1, 31, 3, 0, tzinfo=dt.UTC))

    assert local_due_dates(order, NEW_YORK) == [
        dt.datetime(2026, 1, 30, 22, 0, tzinfo=NEW_YORK),
        dt.datetime(2026, 2, 28, 22, 0, tzinfo=NEW_YORK),
        dt.datetime(2026, 3, 30, 22, 0, tzinfo=NEW_YORK),
    ]


def test_a_weekly_plan_is_due_every_seven_days_at_the_same_local_time_across_a_dst_change():
    """Berlin moves its clocks on 29 Mar 2026: the third week is still due at 09:00 local, 07:00 UTC."""
    order = factories.order(
        factories.seller(),
        count=3,
        interval="weekly",
        anchor=dt.datetime(2026, 3, 18, 9, 0, tzinfo=BERLIN).astimezone(dt.UTC),
    )

    assert [i.due_at for i in order.installments.order_by(Installment.number)] == [
        dt.datetime(2026, 3, 18, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 25, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 1, 7, 0, tzinfo=dt.UTC),
    ]


def test_a_monthly_plan_keeps_its_local_time_when_the_clocks_go_back():
    """Due at 09:00 in Berlin in October (07:00 UTC) and in November (08:00 UTC)."""
    order = factories.order(
        factories.seller(), count=2, anchor=dt.datetime(2026, 10, 15, 9, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    )

    assert [i.due_at for i in order.installments.order_by(Installment.number)] == [
        dt.datetime(2026, 10, 15, 7, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 15, 8, 0, tzinfo=dt.UTC),
    ]


def test_every_installment_of_a_fixed_plan_carries_the_decimal_amount():
    """N installments of the plan's amount, scheduled; a subscription starts with its first one only."""
    seller = factories.seller()
    fixed = factories.order(seller, count=4, amount="33.33")
    subscription = factories.order(seller, plan="subscription", amount="9.90")

    assert [(i.number, i.amount, i.status) for i in fixed.installments.order_by(Installment.number)] == [
        (n, Decimal("33.33"), Installment.SCHEDULED) for n in (1, 2, 3, 4)
    ]
    assert [(i.number, i.amount) for i in subscription.installments] == [(1, Decimal("9.90"))]


@pytest.mark.parametrize(
    ("plan", "count", "interval", "field"),
    [
        ("installments", 1, "monthly", "installment_count"),
        ("installments", None, "monthly", "installment_count"),
        ("subscription", 3, "monthly", "installment_count"),
        ("yearly", 3, "monthly", "plan"),
        ("installments", 3, "daily", "interval"),
    ],
)
def test_a_plan_that_is_not_n_installments_or_a_subscription_weekly_or_monthly_is_refused(plan, count, interval, field):
    """R1: N ≥ 2 installments or an open-ended subscription, weekly or monthly; the error names the field."""
    seller = factories.seller()
    with pytest.raises(InvalidInput) as refused:
        create_order(
            seller,
            product=Product.create(seller=seller, name="Course", notification_email="n@example.com"),
            customer=Customer.create(seller=seller, name="Claire Dubois", email="claire@example.com"),
            invoice_number="INV-1",
            plan=plan,
            installment_count=count,
            interval=interval,
            amount=Decimal("30.00"),
            currency="EUR",
            anchor_at=T,
            payment=factories.card(),
            now=T,
        )

    assert refused.value.field == field
    assert Order.select().count() == 0


def test_starting_due_installments_twice_opens_each_installment_once():
    """Two ticks at the same moment write one first attempt, with one idempotency key."""
    order = factories.order(factories.seller())

    assert (start_due_installments(T), start_due_installments(T)) == (1, 0)

    (first,) = ChargeAttempt.select()
    assert (first.number, first.kind, first.due_at) == (1, ChargeAttempt.AUTOMATIC, T)
    assert first.idempotency_key == f"tranche-{order.id}-1-automatic-1"


def test_nothing_is_opened_before_its_due_time():
    """One second early, installment 1 is still only scheduled."""
    factories.order(factories.seller())

    assert start_due_installments(T - dt.timedelta(seconds=1)) == 0
    assert Installment.select().where(Installment.status != Installment.SCHEDULED).count() == 0


def test_no_installment_is_charged_while_an_earlier_one_is_unpaid():
    """Week 2 is due while week 1 is in dunning: only week 1's retry is charged, week 2 once week 1 is paid."""
    order = factories.order(factories.seller(), count=3, interval="weekly", anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")

    week_2 = T + dt.timedelta(days=7)
    [retry] = factories.charge_due(week_2)
    assert (retry.installment, retry.idempotency_key) == (1, f"tranche-{order.id}-1-automatic-2")
    assert Installment.get(order=order, number=2).status == Installment.SCHEDULED

    factories.gateway_reports(retry, week_2, None)
    assert [r.installment for r in factories.charge_due(week_2)] == [2]


def test_a_retry_falling_due_while_the_customers_own_charge_is_unanswered_waits_for_its_outcome():
    """At most one charge per installment is in flight: attempt 2 is sent only once the customer's charge failed."""
    order = factories.order(factories.seller(), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    day_7 = T + dt.timedelta(days=7)
    add_attempt(open_installment(order), ChargeAttempt.CUSTOMER, 1, day_7 - dt.timedelta(minutes=1))
    [customer_charge] = factories.charge_due(day_7 - dt.timedelta(minutes=1))

    assert factories.charge_due(day_7) == []
    factories.gateway_reports(customer_charge, day_7 + dt.timedelta(minutes=1), "card_declined")
    [second] = factories.charge_due(day_7 + dt.timedelta(minutes=1))
    assert second.idempotency_key == f"tranche-{order.id}-1-automatic-2"


def test_a_second_charge_for_an_installment_is_never_sent_once_the_first_paid_it():
    """Two customer charges (two clicks): the second waits for the first, whose success cancels it."""
    order = factories.order(factories.seller(), anchor=T)
    [first] = factories.charge_due(T)
    factories.gateway_reports(first, T, "insufficient_funds")
    later = T + dt.timedelta(days=1)
    for number in (1, 2):
        add_attempt(open_installment(order), ChargeAttempt.CUSTOMER, number, later)

    [click] = factories.charge_due(later)
    factories.gateway_reports(click, later)

    assert factories.charge_due(later) == []
    assert ChargeAttempt.select().where(ChargeAttempt.status == ChargeAttempt.SUCCEEDED).count() == 1
    assert Installment.get(order=order, number=1).status == Installment.PAID


def test_an_installment_plan_completes_with_its_nth_paid_installment():
    """Paid 1 and 2 of 3: still active; paid 3: completed, and nothing is ever charged again."""
    order = factories.order(factories.seller(), count=3, anchor=T)
    factories.answer_due_charges(T)
    factories.answer_due_charges(T + dt.timedelta(days=31))
    assert Order.get_by_id(order.id).status == Order.ACTIVE

    factories.answer_due_charges(T + dt.timedelta(days=61))

    assert Order.get_by_id(order.id).status == Order.COMPLETED
    assert [i.status for i in order.installments] == [Installment.PAID] * 3
    assert Installment.select().count() == 3
    assert factories.charge_due(T + dt.timedelta(days=400)) == []


def test_a_subscription_grows_its_next_installment_when_one_is_paid():
    """Paying month n schedules month n+1 from the anchor (31 Jan → 28 Feb → 31 Mar); the order stays active."""
    order = factories.order(
        factories.seller(),
        plan="subscription",
        anchor=dt.datetime(2026, 1, 31, 10, 0, tzinfo=BERLIN).astimezone(dt.UTC),
    )
    assert len(local_due_dates(order)) == 1

    for number in (1, 2):
        factories.answer_due_charges(Installment.get(order=order, number=number).due_at)

    assert local_due_dates(order) == [
        dt.datetime(2026, 1, 31, 10, 0, tzinfo=BERLIN),
        dt.datetime(2026, 2, 28, 10, 0, tzinfo=BERLIN),
        dt.datetime(2026, 3, 31, 10, 0, tzinfo=BERLIN),
    ]
    assert [i.status for i in order.installments.order_by(Installment.number)] == [
        Installment.PAID,
        Installment.PAID,
        Installment.SCHEDULED,
    ]
    assert Order.get_by_id(order.id).status == Order.ACTIVE
