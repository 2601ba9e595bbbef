"""R17 the seller digest at the level of the rules, on a fixed clock: its figures from one function, and one
digest a day at 09:00 in the seller's time zone for a seller who opted in."""

import datetime as dt
from decimal import Decimal

from billing.collections import hand_to_collections
from billing.digest import next_digest_at, seller_figures, send_due_digests
from billing.plan_changes import propose_plan_change
from billing.sellers import change_settings
from billing.workspaces import link_workspace
from models import Outbox, Seller
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def test_the_figures_add_up_the_sellers_debt_recoveries_rate_changes_and_collections():
    """On 20 May: one card order in dunning (30.00 at risk), one paid on its second attempt on 8 May (recovered
    within 7 days of 12 May, not of 20 May), a SEPA order in collections, a pending change; another seller's
    orders count for nothing."""
    seller = factories.seller()
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)  # in dunning
    recovered = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    propose_plan_change(factories.order(seller, anchor=T + 30 * DAY), "40.00", T)
    factories.order(factories.seller("Bob Books"), payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T)
    for request in factories.charge_due(T):
        factories.gateway_reports(request, T, "insufficient_funds")
    for request in factories.charge_due(T + 7 * DAY):
        succeeded = request.order_id == recovered.id
        factories.gateway_reports(request, T + 7 * DAY, None if succeeded else "insufficient_funds")

    on_12_may = seller_figures(seller, T + 11 * DAY)
    on_20_may = seller_figures(seller, T + 19 * DAY)

    assert on_12_may.at_risk == {"EUR": Decimal("30.00")}
    assert on_12_may.recovered == {"EUR": Decimal("30.00")}
    assert (on_12_may.failed, on_12_may.failed_then_paid) == (3, 1)  # the recovery rate, 1 in 3
    assert (on_12_may.pending_changes, on_12_may.open_collections) == (1, 1)
    assert on_20_may.recovered == {}


def test_a_seller_with_nothing_at_stake_reads_zeros_and_no_rate():
    figures = seller_figures(factories.seller(), T)

    assert (figures.at_risk, figures.recovered, figures.failed, figures.failed_then_paid) == ({}, {}, 0, 0)
    assert (figures.pending_changes, figures.open_collections) == (0, 0)


def test_the_digest_is_due_at_9_in_the_sellers_time_zone_through_the_change_of_clocks():
    """Berlin: 07:00 UTC in summer, 08:00 UTC in winter; New York 13:00 UTC in May."""
    assert next_digest_at("Europe/Berlin", T) == dt.datetime(2026, 5, 2, 7, 0, tzinfo=dt.UTC)
    assert next_digest_at("Europe/Berlin", dt.datetime(2026, 10, 25, 6, 0, tzinfo=dt.UTC)) == dt.datetime(
        2026, 10, 25, 8, 0, tzinfo=dt.UTC
    )
    assert next_digest_at("America/New_York", T) == dt.datetime(2026, 5, 1, 13, 0, tzinfo=dt.UTC)


def test_an_opted_in_seller_gets_one_digest_a_day_at_9_however_often_the_tick_runs():
    """Opted in on 1 May at 10:00 Berlin: the first digest on 2 May at 09:00, not before; ticks every hour add
    none until 3 May at 09:00. A seller who did not opt in gets none."""
    seller = factories.seller()
    link_workspace(seller, "T1", "C1", T)
    change_settings(seller, T, digest=True)
    quiet = factories.seller("Bob Books")
    link_workspace(quiet, "T2", "C2", T)

    sent = [send_due_digests(T + dt.timedelta(hours=h)) for h in range(0, 48)]

    digests = Outbox.select().where(Outbox.template == "slack_digest").order_by(Outbox.id)
    assert [(m.recipient, m.context["day"], m.created_at) for m in digests] == [
        (str(seller.id), "2026-05-02", dt.datetime(2026, 5, 2, 7, 0, tzinfo=dt.UTC)),
        (str(seller.id), "2026-05-03", dt.datetime(2026, 5, 3, 7, 0, tzinfo=dt.UTC)),
    ]
    assert sum(sent) == 2


def test_a_seller_who_moves_time_zone_or_opts_out_moves_or_loses_the_next_digest():
    seller = factories.seller()
    change_settings(seller, T, digest=True)
    assert Seller.get_by_id(seller.id).digest_due_at == dt.datetime(2026, 5, 2, 7, 0, tzinfo=dt.UTC)

    change_settings(seller, T, timezone="America/New_York")
    assert Seller.get_by_id(seller.id).digest_due_at == dt.datetime(2026, 5, 1, 13, 0, tzinfo=dt.UTC)

    change_settings(seller, T, digest=False)
    assert Seller.get_by_id(seller.id).digest_due_at is None
    assert send_due_digests(T + 10 * DAY) == 0


def test_a_seller_in_collections_only_still_reads_its_figures_after_a_hand_off():
    """A handed-off order leaves the open collections."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    [debit] = factories.charge_due(T)
    factories.gateway_reports(debit, T, "insufficient_funds")
    assert seller_figures(seller, T + DAY).open_collections == 1

    hand_to_collections(order, T + DAY)

    assert seller_figures(seller, T + 2 * DAY).open_collections == 0
