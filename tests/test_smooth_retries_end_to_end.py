import datetime as dt

from jobs.work import run_due_work
from models import ChargeAttempt, Order
from tests import factories

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)


def test_a_declined_card_is_retried_on_day_7_and_14_then_the_plan_is_interrupted(inbox):
    """Three automatic attempts at T, T+7 d, T+14 d, through the sandbox and the webhook, then a halt."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS))

    run_due_work(T)
    run_due_work(T + dt.timedelta(days=7))
    run_due_work(T + dt.timedelta(days=14))

    attempts = list(ChargeAttempt.select().order_by(ChargeAttempt.number))
    assert [(a.number, a.status, a.due_at) for a in attempts] == [
        (1, "failed", T),
        (2, "failed", T + dt.timedelta(days=7)),
        (3, "failed", T + dt.timedelta(days=14)),
    ]
    assert Order.get_by_id(order.id).status == Order.INTERRUPTED
    customer_mails = inbox.to("claire@example.com")
    assert len(customer_mails) == 3
    # The customer is French (the factory's default language).
    assert "tentative 1 sur 3" in customer_mails[0].get_body(("plain",)).get_content()
    seller_mails = inbox.to(f"notify+{seller.id}@example.com")
    # Without Slack, the seller hears of the first two failures briefly, then of the third with what to do.
    assert len(seller_mails) == 3
    assert "third payment attempt failed" in seller_mails[2]["Subject"]


def test_a_lost_card_is_not_retried_and_the_customer_is_asked_in_their_language_for_another(inbox):
    """SPEC "Declines" through the sandbox and the webhook: one attempt, an interrupted plan, a customer email
    asking for another card, and the seller's email without the renewal it would refuse."""
    seller = factories.seller()
    order = factories.order(seller, payment=factories.card(factories.LOST))

    run_due_work(T)
    run_due_work(T + dt.timedelta(days=30))

    assert [(a.number, a.status, a.failure_code) for a in ChargeAttempt.select()] == [(1, "failed", "lost_card")]
    assert Order.get_by_id(order.id).status == Order.INTERRUPTED
    [customer_mail] = inbox.to("claire@example.com")
    text = customer_mail.get_body(("plain",)).get_content()
    assert "refusé cette carte définitivement" in text and "/card/" in text
    assert "tentative" not in text
    [seller_mail] = inbox.to(f"notify+{seller.id}@example.com")
    assert "the bank refused the card for good" in seller_mail["Subject"]
    assert "/renew" not in seller_mail.get_body(("plain",)).get_content()
