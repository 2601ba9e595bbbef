"""The sandbox gateway: the SPEC's test cards and IBANs, answering like a real gateway would.

A charge is recorded once per idempotency key and its outcome is delivered as a signed event to
`POST /webhooks/gateway`, the path a real gateway uses. Asking again with the same key re-delivers the
same event (same webhook-id) and charges nothing new.
"""

import datetime as dt
import json
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import Future

import certifi
import urllib3
from standardwebhooks import Webhook

from billing.charging import ChargeRequest
from billing.plans import PaymentMethod
from gateways import CHARGES_AT_ONCE, Attached, Payer, PaymentMethodRejected, side_by_side
from models import SandboxCharge, one_write, unless_taken

# Test card number → failure code (None: the charge succeeds).
TEST_CARDS = {
    "4242424242424242": None,
    "4000000000009995": "insufficient_funds",
    "4000000000000002": "card_declined",
    "4000000000000069": "expired_card",
    # Hard declines (SPEC "Declines"): never retried.
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
}
TEST_IBANS = {
    "DE89370400440532013000": None,
    "DE62370400440532013001": "insufficient_funds",
}
FAILURE_MESSAGES = {
    ("card", "insufficient_funds"): "Your card has insufficient funds.",
    ("card", "card_declined"): "Your card was declined.",
    ("card", "expired_card"): "Your card has expired.",
    ("card", "lost_card"): "Your card was reported lost.",
    ("card", "stolen_card"): "Your card was reported stolen.",
    ("sepa", "insufficient_funds"): "Your bank account has insufficient funds.",
}
_OK = "ok"
DELIVERY_TRIES = 3


def _token(prefix: str, failure_code: str | None) -> str:
    # The token carries the test outcome, never the number: the sandbox's stand-in for a gateway vault.
    return f"{prefix}_{failure_code or _OK}_{secrets.token_hex(6)}"


def _failure_code(token: str) -> str | None:
    code = token.split("_", 1)[1].rsplit("_", 1)[0]
    return None if code == _OK else code


def _charges(requests: Sequence[ChargeRequest]) -> dict[str, SandboxCharge]:
    """By idempotency key, the charge each of `requests` names: recorded now, in one statement for them all, when its
    key is new; else the one charged before under it (a resend). A look-up records nothing, and may find nothing."""
    new = {request.idempotency_key: _new_charge(request) for request in requests if not request.look_up_only}
    recorded = 0
    if new:
        with one_write():  # in its turn with the other writers, on SQLite
            recorded = unless_taken(SandboxCharge.insert_many(list(new.values()))).as_rowcount().execute()
    if recorded == len(requests):
        return {key: SandboxCharge(**charge) for key, charge in new.items()}
    # Read only then: a read of every batch's keys, planned once while the table was near empty, scanned it whole.
    named = SandboxCharge.idempotency_key.in_([request.idempotency_key for request in requests])
    return {charge.idempotency_key: charge for charge in SandboxCharge.select().where(named)}


def _new_charge(request: ChargeRequest) -> dict[str, object]:
    return dict(
        idempotency_key=request.idempotency_key,
        reference=f"ch_{secrets.token_hex(8)}",
        order_id=request.order_id,
        installment=request.installment,
        amount=request.amount,
        currency=request.currency,
        method=request.method,
        failure_code=_failure_code(request.token),
        occurred_at=request.at,
    )


def _failed(error: Exception, requests: Sequence[ChargeRequest]) -> "list[Future[str | None]]":
    """charge_all's answer when the batch could not be recorded: each charge failed with `error`, none sent."""
    answers: list[Future[str | None]] = [Future() for _ in requests]
    for answer in answers:
        answer.set_exception(error)
    return answers


class SandboxGateway:
    # The card page takes the test card numbers and IBANs itself (tokenize_card, sepa_mandate).
    browser_setup = None

    def __init__(self, webhook_url: str, webhook_secret: str):
        self.webhook_url = webhook_url
        self.signer = Webhook(webhook_secret)
        # Connections kept open for every event of a batch of charges, one for each charge a job has here at once.
        # urllib3 itself, not requests over it: requests' session reads the proxies from the environment and merges
        # its settings on each request, half a millisecond of CPU a POST here, a tenth of a charge's cost
        # (bench/scale.py).
        # certifi's authorities, which requests trusts by default, not the machine's, which a slim image may lack.
        self.pool = urllib3.PoolManager(maxsize=CHARGES_AT_ONCE, retries=False, timeout=10.0, ca_certs=certifi.where())

    def tokenize_card(self, number: str, exp_month: int, exp_year: int) -> PaymentMethod:
        digits = "".join(str(number).split())
        if digits not in TEST_CARDS:
            raise PaymentMethodRejected("This is not one of the sandbox's test cards.")
        return PaymentMethod(
            method="card",
            token=_token("tok", TEST_CARDS[digits]),
            brand="visa",
            last4=digits[-4:],
            exp_month=exp_month,
            exp_year=exp_year,
        )

    def sepa_mandate(self, iban: str) -> PaymentMethod:
        compact = "".join(str(iban).split()).upper()
        if compact not in TEST_IBANS:
            raise PaymentMethodRejected("This is not one of the sandbox's test IBANs.")
        return PaymentMethod(
            method="sepa",
            token=_token("mdt", TEST_IBANS[compact]),
            iban_masked=f"{compact[:4]} **** {compact[-4:]}",
        )

    def attach(self, kind: str, token: str, payer: Payer) -> Attached:
        raise PaymentMethodRejected(
            "The sandbox takes its test card numbers and IBANs; a payment method token is Stripe's (GATEWAY=stripe)."
        )

    def charge(self, request: ChargeRequest) -> str | None:
        return self.charge_all([request])[0].result()

    def charge_all(self, requests: Sequence[ChargeRequest]) -> "list[Future[str | None]]":
        try:
            charges = _charges(requests)
        except Exception as error:  # none of them charged: each is resent after RESEND_AFTER
            return _failed(error, requests)
        return side_by_side(lambda request: self._answer(charges.get(request.idempotency_key)), requests)

    def _answer(self, charge: SandboxCharge | None) -> str | None:
        if charge is None:
            return None
        self._deliver(charge)
        return charge.reference

    def event_body(self, charge: SandboxCharge) -> str:
        data = {
            "order_id": charge.order_id,
            "installment": charge.installment,
            "amount": str(charge.amount),
            "currency": charge.currency,
            "method": charge.method,
            "reference": charge.reference,
            "occurred_at": charge.occurred_at.isoformat(),
        }
        if charge.failure_code:
            data["failure_code"] = charge.failure_code
            data["failure_message"] = FAILURE_MESSAGES[charge.method, charge.failure_code]
        kind = "payment.failed" if charge.failure_code else "payment.succeeded"
        return json.dumps({"type": kind, "data": data})

    def signed_headers(self, webhook_id: str, body: str) -> dict:
        now = dt.datetime.now(dt.UTC)
        return {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(webhook_id, now, body),
        }

    def _deliver(self, charge: SandboxCharge) -> None:
        body = self.event_body(charge)
        for attempt in range(DELIVERY_TRIES):
            headers = self.signed_headers(f"evt_{charge.reference}", body)
            try:
                response = self.pool.request("POST", self.webhook_url, body=body.encode(), headers=headers)
                # A 2xx only, as gateways count it: urllib3 without retries follows no redirect, and a redirect
                # taken as delivered would lose the event.
                if 200 <= response.status < 300:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.2 * 2**attempt)
        raise ConnectionError(f"the webhook endpoint {self.webhook_url} did not accept the event")
