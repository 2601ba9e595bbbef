"""GATEWAY=stripe: charges through localstripe end to end (its webhooks delivered to this run's app and verified),
and, where localstripe does not act as Stripe does, through Stripe's recorded answers (tests/stripe_api.py)."""

import datetime as dt
import os
import subprocess

import pytest

from config import MissingSetting
from gateways.stripe import FAILED, SUCCEEDED
from jobs.work import charge, run_due_work
from models import ChargeAttempt, GatewayEvent, Installment, Order, Seller
from runtime import queue
from tests import factories
from tests.conftest import ROOT, at_once
from tests.stripe_api import recorded

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
RESEND = T + dt.timedelta(minutes=11)  # past charging.RESEND_AFTER: an unanswered attempt is sent again
CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
# localstripe attaches it, then declines every charge on it.
ATTACHES_THEN_FAILS = {**CARD, "card": {**CARD["card"], "number": "4000000000000341"}}
PAYMENT_INTENT = "pi_3QfRecorded0001"


def sepa(iban: str) -> dict:
    return {"type": "sepa_debit", "sepa_debit": {"iban": iban}, "billing_details": {"name": "Claire Dubois"}}


def attempts():
    return [
        (a.number, a.status, a.due_at, a.failure_code, a.reference)
        for a in ChargeAttempt.select().order_by(ChargeAttempt.id)
    ]


def installment_status(order: Order) -> str:
    return order.installments.order_by(Installment.number).first().status


# --- through localstripe ------------------------------------------------------------------------------------------


def test_a_card_charge_makes_one_off_session_payment_intent_and_pays_the_installment_once(localstripe):
    """Stripe's answer pays it; localstripe's webhook for the same outcome, verified, is a duplicate."""
    customer, payment_method = localstripe.customer_with(CARD)
    order = factories.stripe_order(customer, token=payment_method.id)

    run_due_work(T)

    (payment_intent,) = localstripe.payment_intents()
    assert (payment_intent.status, payment_intent.amount, payment_intent.currency) == ("succeeded", 3000, "eur")
    assert (payment_intent.customer, payment_intent.payment_method) == (customer, payment_method.id)
    assert payment_intent.metadata.to_dict() == {
        "tranche_order_id": str(order.id),
        "tranche_installment": "1",
        "tranche_attempt": f"tranche-{order.id}-1-automatic-1",
    }
    assert attempts() == [(1, "succeeded", T, None, payment_intent.id)]
    assert installment_status(order) == "paid"
    localstripe.delivered(SUCCEEDED)  # answered 2xx by this app: its signature verified
    run_due_work(T)
    assert [(e.webhook_id, e.status) for e in GatewayEvent.select()] == [
        (f"{payment_intent.id}:{SUCCEEDED}", "processed")
    ]


def test_a_card_that_attached_then_declines_fails_the_attempt_and_schedules_the_retry(localstripe):
    """4000000000000341: the CardError at confirm is the outcome; the webhook that follows changes nothing."""
    customer, payment_method = localstripe.customer_with(ATTACHES_THEN_FAILS)
    order = factories.stripe_order(customer, token=payment_method.id)

    run_due_work(T)

    (payment_intent,) = localstripe.payment_intents()
    assert payment_intent.status == "requires_payment_method"
    assert attempts() == [
        (1, "failed", T, "card_declined", payment_intent.id),
        (2, "scheduled", T + dt.timedelta(days=7), None, None),
    ]
    assert ChargeAttempt.get(ChargeAttempt.number == 1).failure_message == "Your card was declined."
    localstripe.delivered(FAILED)
    run_due_work(T)
    assert GatewayEvent.select().count() == 1
    assert Order.get_by_id(order.id).status == "active"


def test_a_card_whose_bank_wants_3d_secure_off_session_fails_as_authentication_required(localstripe):
    """4000002500003155: the PaymentIntent waits for a customer who is not there; the attempt fails at once."""
    customer, payment_method = localstripe.customer_with(
        {**CARD, "card": {**CARD["card"], "number": "4000002500003155"}}
    )
    factories.stripe_order(customer, token=payment_method.id)

    run_due_work(T)

    (payment_intent,) = localstripe.payment_intents()
    assert payment_intent.status == "requires_action"
    assert [a[:4] for a in attempts()] == [
        (1, "failed", T, "authentication_required"),
        (2, "scheduled", T + dt.timedelta(days=7), None),
    ]


def test_a_sepa_debit_in_flight_until_stripe_reports_its_failure_by_webhook_goes_to_collections(localstripe):
    """DE62…3001 is `processing` at first: nothing is applied until localstripe's payment_failed arrives."""
    customer, payment_method = localstripe.customer_with(sepa("DE62370400440532013001"))
    order = factories.stripe_order(customer, "sepa", token=payment_method.id)

    run_due_work(T)

    assert [a[:2] for a in attempts()] == [(1, "in_flight")]
    assert GatewayEvent.select().count() == 0
    localstripe.delivered(FAILED)  # the webhook alone tells it
    run_due_work(T)
    (payment_intent,) = localstripe.payment_intents()
    assert attempts() == [(1, "failed", T, "card_declined", payment_intent.id)]
    assert Order.get_by_id(order.id).status == "collections"


def test_a_sepa_debit_that_succeeds_pays_the_installment(localstripe):
    customer, payment_method = localstripe.customer_with(sepa("DE89370400440532013000"))
    order = factories.stripe_order(customer, "sepa", token=payment_method.id)

    run_due_work(T)

    assert installment_status(order) == "paid"
    localstripe.delivered(SUCCEEDED)


def test_two_workers_sending_one_attempt_at_once_make_one_payment_intent(localstripe):
    """localstripe ignores Idempotency-Key: only Tranche's claim keeps two ticks' charge jobs from charging twice."""
    customer, payment_method = localstripe.customer_with(CARD)
    factories.stripe_order(customer, token=payment_method.id)
    (attempt,) = factories.open_due(T)
    at_once(2, lambda: charge(attempt.id, T.isoformat()))

    assert len(localstripe.payment_intents()) == 1
    run_due_work(T)
    assert [a[:2] for a in attempts()] == [(1, "succeeded")]


# --- through Stripe's recorded answers ----------------------------------------------------------------------------


def in_flight_order(stripe_api, answer: dict, status: int = 200) -> Order:
    """A card order of the recorded customer whose first charge Stripe answers with `answer`, sent at T."""
    order = factories.stripe_order("cus_Recorded0001")
    payment_intent = answer["error"]["payment_intent"] if "error" in answer and status == 402 else answer
    if "metadata" in payment_intent:
        payment_intent["metadata"].update(
            tranche_order_id=str(order.id), tranche_attempt=f"tranche-{order.id}-1-automatic-1"
        )
    stripe_api.answer("POST", "/v1/payment_intents", answer, status)
    run_due_work(T)
    return order


def test_each_charge_is_sent_with_the_attempts_idempotency_key_off_session_with_its_metadata(stripe_api):
    order = in_flight_order(stripe_api, recorded("payment_intent__succeeded"))

    (sent,) = stripe_api.sent("POST", "/v1/payment_intents")
    assert sent.headers["Idempotency-Key"] == f"tranche-{order.id}-1-automatic-1"
    assert sent.fields == {
        "amount": "3000",
        "currency": "eur",
        "customer": "cus_Recorded0001",
        "payment_method": "pm_Recorded0001",
        "allowed_payment_method_types[0]": "card",
        "confirm": "true",
        "off_session": "true",
        "metadata[tranche_order_id]": str(order.id),
        "metadata[tranche_installment]": "1",
        "metadata[tranche_attempt]": f"tranche-{order.id}-1-automatic-1",
    }
    assert installment_status(order) == "paid"


def test_a_stripe_5xx_is_sent_again_at_once_with_the_same_idempotency_key(stripe_api):
    stripe_api.answer("POST", "/v1/payment_intents", recorded("api_error"), 500)
    order = in_flight_order(stripe_api, recorded("payment_intent__succeeded"))

    keys = [r.headers["Idempotency-Key"] for r in stripe_api.sent("POST", "/v1/payment_intents")]
    assert keys == [f"tranche-{order.id}-1-automatic-1"] * 2
    assert installment_status(order) == "paid"


def test_a_429_leaves_the_attempt_in_flight_and_the_resend_looks_for_it_before_sending_the_same_key(stripe_api):
    """Stripe refused (rate limit): nothing is known, so the resend first asks for a PaymentIntent of this attempt."""
    order = in_flight_order(stripe_api, recorded("rate_limit"), 429)
    assert [a[:2] for a in attempts()] == [(1, "in_flight")]
    assert queue().failed_job_registry.count == 1  # the charge job failed, for an operator to see

    stripe_api.answer("GET", "/v1/payment_intents", recorded("payment_intent_list__empty"))
    payment_intent = recorded("payment_intent__succeeded")
    payment_intent["metadata"]["tranche_order_id"] = str(order.id)
    stripe_api.answer("POST", "/v1/payment_intents", payment_intent)
    run_due_work(RESEND)

    sent = [(r.method, r.path, r.headers.get("Idempotency-Key")) for r in stripe_api.sent()]
    key = f"tranche-{order.id}-1-automatic-1"
    assert sent == [("POST", "/v1/payment_intents", key), ("GET", "/v1/payment_intents", None)] + [
        ("POST", "/v1/payment_intents", key)
    ]
    assert stripe_api.sent("GET", "/v1/payment_intents")[0].fields == {"customer": "cus_Recorded0001", "limit": "100"}
    assert installment_status(order) == "paid"


def test_a_resend_that_finds_the_attempts_payment_intent_by_its_metadata_sends_nothing_new(stripe_api):
    """A worker died before recording Stripe's answer (or Stripe forgot the key after 24 hours): it is found."""
    order = in_flight_order(stripe_api, recorded("rate_limit"), 429)
    found = recorded("payment_intent__succeeded")
    found["metadata"].update(tranche_order_id=str(order.id), tranche_attempt=f"tranche-{order.id}-1-automatic-1")
    other = recorded("payment_intent__succeeded", id="pi_3QfOtherAttempt")
    other["metadata"]["tranche_attempt"] = f"tranche-{order.id}-1-customer-1"
    listed = recorded("payment_intent_list__empty", data=[other, found])
    stripe_api.answer("GET", "/v1/payment_intents", listed)

    run_due_work(RESEND + dt.timedelta(days=2))

    assert [r.method for r in stripe_api.sent()] == ["POST", "GET"]
    assert attempts() == [(1, "succeeded", T, None, PAYMENT_INTENT)]


def test_a_resend_of_a_charge_no_longer_owed_only_looks_for_its_payment_intent_and_finding_none_sends_nothing(
    stripe_api,
):
    """Stripe never answered the first send, and the installment was paid since by another charge: the resend lists
    the customer's PaymentIntents, finds none of this attempt, creates none (it would charge twice) and cancels it."""
    order = in_flight_order(stripe_api, recorded("rate_limit"), 429)
    Installment.update(status=Installment.PAID).where(Installment.order == order, Installment.number == 1).execute()
    stripe_api.answer("GET", "/v1/payment_intents", recorded("payment_intent_list__empty"))

    run_due_work(RESEND)

    assert [(r.method, r.path) for r in stripe_api.sent()] == [("POST", "/v1/payment_intents")] + [
        ("GET", "/v1/payment_intents")
    ]
    assert [a[:2] for a in attempts()] == [(1, "cancelled")]


def test_a_sepa_debit_processing_for_days_stays_in_flight_and_is_looked_up_never_sent_again(stripe_api):
    """Real SEPA debits take days: the resends only retrieve the PaymentIntent, and no second charge starts (R2)."""
    order = factories.stripe_order("cus_Recorded0001", "sepa")
    processing = recorded("payment_intent__processing_sepa")
    processing["metadata"]["tranche_order_id"] = str(order.id)
    stripe_api.answer("POST", "/v1/payment_intents", processing)
    run_due_work(T)
    for day in range(1, 4):
        stripe_api.answer("GET", f"/v1/payment_intents/{PAYMENT_INTENT}", processing)
        run_due_work(T + dt.timedelta(days=day))

    assert [(r.method, r.path) for r in stripe_api.sent()] == [("POST", "/v1/payment_intents")] + [
        ("GET", f"/v1/payment_intents/{PAYMENT_INTENT}")
    ] * 3
    assert attempts() == [(1, "in_flight", T, None, PAYMENT_INTENT)]
    assert GatewayEvent.select().count() == 0


def test_a_payment_method_stripe_no_longer_has_fails_the_attempt_for_good_and_asks_for_another_card(stripe_api):
    """Detached or deleted at Stripe: no retry can charge it, so it is a hard decline (SPEC "Declines") at once,
    not an attempt left in flight and sent again every 10 minutes."""
    order = in_flight_order(stripe_api, recorded("invalid_request__payment_method_missing"), 400)

    failed = ChargeAttempt.get(ChargeAttempt.number == 1)
    assert (failed.status, failed.failure_code, failed.advice_code) == (
        "failed",
        "resource_missing",
        "do_not_try_again",
    )
    assert failed.failure_message == "No such PaymentMethod: 'pm_Recorded0001'"
    assert Order.get_by_id(order.id).status == "interrupted"
    run_due_work(RESEND)
    assert len(stripe_api.sent("POST", "/v1/payment_intents")) == 1


def test_a_request_stripe_refuses_for_another_reason_stays_in_flight_for_an_operator(stripe_api):
    """A 400 that names no payment method may be Tranche's own mistake: the customer is not failed for it; the
    charge job fails (an operator sees it) and the attempt waits, in flight, to be sent again."""
    in_flight_order(stripe_api, recorded("invalid_request__parameter_unknown"), 400)

    assert [a[:2] for a in attempts()] == [(1, "in_flight")]
    assert queue().failed_job_registry.count == 1


def test_a_sepa_debit_whose_payment_intent_was_canceled_at_stripe_fails_and_stops_being_looked_up(stripe_api):
    """Canceled in Stripe's dashboard while processing: no money will come, and no webhook Tranche takes says so.
    The next look-up reads it as the attempt's failure (SEPA: collections), and nothing is asked again."""
    order = factories.stripe_order("cus_Recorded0001", "sepa")
    processing = recorded("payment_intent__processing_sepa")
    processing["metadata"]["tranche_order_id"] = str(order.id)
    stripe_api.answer("POST", "/v1/payment_intents", processing)
    run_due_work(T)
    stripe_api.answer("GET", f"/v1/payment_intents/{PAYMENT_INTENT}", {**processing, "status": "canceled"})
    run_due_work(RESEND)
    run_due_work(RESEND + dt.timedelta(days=1))

    assert attempts() == [(1, "failed", T, "canceled", PAYMENT_INTENT)]
    assert Order.get_by_id(order.id).status == "collections"
    assert len(stripe_api.sent()) == 2


@pytest.mark.parametrize(
    ("answer", "code", "advice", "order_status"),
    [
        ("card_error__insufficient_funds", "insufficient_funds", "try_again_later", "active"),
        ("card_error__do_not_try_again", "generic_decline", "do_not_try_again", "interrupted"),
    ],
)
def test_a_decline_at_confirm_gives_the_attempt_stripes_codes_and_message(
    stripe_api, answer, code, advice, order_status
):
    """Stripe's decline_code is the failure code, its advice_code the advice (do_not_try_again: a hard decline)."""
    order = in_flight_order(stripe_api, recorded(answer), 402)

    failed = ChargeAttempt.select().order_by(ChargeAttempt.id).first()
    assert (failed.status, failed.failure_code, failed.advice_code) == ("failed", code, advice)
    assert (failed.reference, failed.failure_message) == (PAYMENT_INTENT, recorded(answer)["error"]["message"])
    assert Order.get_by_id(order.id).status == order_status


def test_flask_stripe_webhook_endpoint_registers_the_two_events_and_prints_the_signing_secret(stripe_api, runner):
    """localstripe has no /v1/webhook_endpoints (only its own /_config/webhooks): Stripe's recorded answer stands in."""
    stripe_api.answer("POST", "/v1/webhook_endpoints", recorded("webhook_endpoint"))

    result = runner.invoke(args=["stripe", "webhook-endpoint", "--url", "https://billing.example.com/webhooks/stripe"])

    assert result.exit_code == 0, result.output
    assert "STRIPE_WEBHOOK_SECRET=whsec_RecordedSigningSecret0001" in result.output
    (sent,) = stripe_api.sent()
    assert sent.fields["url"] == "https://billing.example.com/webhooks/stripe"
    assert [sent.fields[f"enabled_events[{i}]"] for i in range(2)] == [SUCCEEDED, FAILED]
    assert sent.headers["Authorization"] == "Bearer sk_test_recorded"


def test_flask_stripe_webhook_endpoint_says_what_stripe_refused(stripe_api, runner):
    result = runner.invoke(args=["stripe", "webhook-endpoint", "--url", "https://billing.example.com/webhooks/stripe"])
    assert result.exit_code == 1
    assert "Stripe refused the endpoint" in result.output


@pytest.mark.parametrize("url", ["billing.example.com/webhooks/stripe", "ftp://example.com/x", "https://"])
def test_flask_stripe_webhook_endpoint_refuses_what_is_no_web_address(stripe_api, runner, url):
    result = runner.invoke(args=["stripe", "webhook-endpoint", "--url", url])
    assert result.exit_code == 2 and "is not a web address" in result.output
    assert stripe_api.sent() == []


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_gateway_stripe_without_a_key_refuses_to_start_the_web_app_naming_it(stripe_api, monkeypatch, missing):
    from app import create_app

    monkeypatch.delenv(missing)
    with pytest.raises(MissingSetting, match=f"GATEWAY=stripe needs {missing}"):
        create_app()


def test_an_unknown_gateway_refuses_to_start(monkeypatch):
    from app import create_app

    monkeypatch.setenv("GATEWAY", "paypal")
    with pytest.raises(MissingSetting, match="GATEWAY='paypal' is not supported"):
        create_app()


def test_gateway_stripe_without_a_key_refuses_to_start_the_procfiles_worker_naming_it(stripe_api):
    env = {**os.environ}
    del env["STRIPE_WEBHOOK_SECRET"]
    worker = subprocess.run(  # noqa: S603 (our own command line)
        [str(ROOT / ".venv" / "bin" / "rq"), "worker", "--worker-class", "runtime.Worker", "--burst"]
        + ["--url", os.environ["REDIS_URL"], queue().name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 1
    assert "worker: GATEWAY=stripe needs STRIPE_WEBHOOK_SECRET" in worker.stderr


def test_make_runs_first_start_on_stripe_loads_no_demo(stripe_api, capsys):
    """The demo's orders are the sandbox's test cards, which Stripe does not know: a fresh run starts empty."""
    import run

    assert run.prepare() is None
    assert Seller.select().count() == 0
    assert "no demo data" in capsys.readouterr().out
