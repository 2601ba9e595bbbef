"""Emails through a real SMTP server (aiosmtpd): who hears of what, with what in it, and never twice."""

import asyncio
import contextlib
import datetime as dt
import os
import re
import socketserver
import threading
import time
from email import message_from_bytes, policy

import pytest
import requests

import runtime
from billing.collections import hand_to_collections
from billing.followups import SEND_MESSAGES
from billing.links import CARD_UPDATE, LinkExpired, verify
from emails import BOUNDARY, COMPAT32, render
from gateways import get_gateway
from jobs.work import MESSAGES_PER_CLAIM, charge, process_event, run_due_work, send_due_messages
from models import SQLITE_BUSY_TIMEOUT, GatewayEvent, Outbox, SandboxCharge, SlackLink, transaction
from runtime import queue, settings, utcnow
from tests import factories
from tests.conftest import Inbox, free_port, serve_smtp

T = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CUSTOMER = "claire@example.com"


# A test's own SMTP server, for the tests that give it a handler of their own.
served = contextlib.contextmanager(serve_smtp)


def text(mail) -> str:
    """The plain-text part of a received email."""
    return mail.get_body(("plain",)).get_content()


def notify_address(seller) -> str:
    return f"notify+{seller.id}@example.com"


def declined_card_order(language="en", anchor=T):
    seller = factories.seller()
    order = factories.order(
        seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), language=language, anchor=anchor
    )
    return seller, order


def failed_sepa_order():
    seller = factories.seller()
    order = factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS))
    run_due_work(T)
    return seller, order


def fail_three_times():
    seller, order = declined_card_order()
    for day in (0, 7, 14):
        run_due_work(T + day * DAY)
    return seller, order


def test_the_customer_is_emailed_on_each_card_failure_with_amount_attempt_next_date_and_card_link(inbox):
    """R5: three failures, three emails: €30.00, attempt n of 3, the next date, a /card/<token> link."""
    fail_three_times()

    mails = inbox.to(CUSTOMER)
    assert [m["Subject"] for m in mails] == [
        "Payment of €30.00 for Python course failed — we will try again on 8 May 2026",
        "Payment of €30.00 for Python course failed — we will try again on 15 May 2026",
        "Payment of €30.00 for Python course failed — last automatic attempt",
    ]
    bodies = [text(m) for m in mails]
    for number, body in enumerate(bodies, start=1):
        assert "€30.00" in body and "Reason: There were not enough funds on the account linked to your card." in body
        assert f"This was attempt {number} of 3." in body
        (link,) = re.findall(r"\S+/card/\S+", body)
        assert re.fullmatch(re.escape(os.environ["PUBLIC_URL"]) + r"/card/[\w.-]{20,}", link)
    assert "We will try again on 8 May 2026." in bodies[0]
    assert "We will try again on 15 May 2026." in bodies[1]
    assert "This was the last automatic attempt." in bodies[2]


def test_the_amount_is_formatted_in_the_customers_language(inbox):
    """A French customer reads 30,00 € (with a non-breaking space), as Babel formats it for fr_FR."""
    declined_card_order(language="fr")
    run_due_work(T)
    (mail,) = inbox.to(CUSTOMER)
    assert "30,00\xa0€" in mail["Subject"] and "30,00\xa0€" in text(mail)


def test_the_seller_is_emailed_on_the_third_failure_with_every_failure_reason(inbox):
    """R6: after two brief failure emails, one to the product's notification address with all three reasons."""
    seller, order = declined_card_order()
    run_due_work(T)
    run_due_work(T + 7 * DAY)
    assert [m["Subject"] for m in inbox.to(notify_address(seller))] == [
        f"Order {order.id}: a payment of €30.00 failed"
    ] * 2

    run_due_work(T + 14 * DAY)

    *_brief, mail = inbox.to(notify_address(seller))
    assert mail["Subject"] == f"Order {order.id}: the third payment attempt failed — renew or hand to collections"
    body = text(mail)
    for attempt, date in ((1, "1 May 2026"), (2, "8 May 2026"), (3, "15 May 2026")):
        assert f"- attempt {attempt}, {date}: Your card has insufficient funds. [insufficient_funds]" in body
    assert f"/renew {order.id}" in body


def test_the_seller_is_emailed_on_a_sepa_failure_with_the_reason(inbox):
    """R8: a failed SEPA debit tells the seller at once that the order is in collections."""
    seller, order = failed_sepa_order()
    (mail,) = inbox.to(notify_address(seller))
    assert mail["Subject"] == f"Order {order.id}: SEPA debit failed — listed in collections"
    body = text(mail)
    assert "- attempt 1, 1 May 2026:" in body and "[insufficient_funds]" in body
    assert "Installment 1, €30.00." in body


def test_the_seller_is_emailed_on_a_hand_off_with_the_installments_and_amount(inbox):
    """R9: the hand-off email names the installments handed over and their total."""
    seller, order = failed_sepa_order()
    hand_to_collections(order, T + 35 * DAY)
    send_due_messages((T + 35 * DAY).isoformat())

    mail = inbox.to(notify_address(seller))[-1]
    assert mail["Subject"] == f"Order {order.id} handed to the collection partner: €60.00"
    body = text(mail)
    assert "Installments: 1, 2" in body and "Amount: €60.00" in body
    assert "handed to the collection partner on 5 June 2026" in body


def test_an_event_delivered_twice_and_sent_twice_and_concurrently_makes_one_email(inbox):
    """The gateway re-delivers the failure (same id, then a new id), eight senders race, two more follow: one email."""
    declined_card_order()
    (attempt,) = factories.open_due(T)
    charge(attempt.id, T.isoformat())  # the sandbox posts its event; its job waits in Redis
    gateway = get_gateway(settings())
    body = gateway.event_body(SandboxCharge.get())
    url = f"{os.environ['PUBLIC_URL']}/webhooks/gateway"
    for webhook_id in (GatewayEvent.get().webhook_id, "evt_resent_under_a_new_id"):
        assert requests.post(url, data=body, headers=gateway.signed_headers(webhook_id, body), timeout=10).ok
    for event in GatewayEvent.select().order_by(GatewayEvent.id):
        process_event(event.id, T)
    assert inbox.messages == [] and Outbox.select().count() == 2  # the customer's email and the seller's
    start = threading.Barrier(8)

    def sender():
        start.wait()
        send_due_messages()

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    send_due_messages()
    run_due_work(T)  # the send jobs the events queued run too

    assert [e.status for e in GatewayEvent.select().order_by(GatewayEvent.id)] == ["processed", "ignored"]
    assert len(inbox.to(CUSTOMER)) == 1 and len(inbox.messages) == 2
    assert [message.attempts for message in Outbox.select()] == [1, 1]


def test_a_send_that_fails_because_the_smtp_server_is_down_is_retried_later_and_not_lost(inbox, monkeypatch):
    """SMTP down: the message stays in the outbox with the error and a later try; the tick sends it once it is up."""
    smtp_up = os.environ["SMTP_URL"]
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    now = utcnow().replace(microsecond=0)
    declined_card_order(anchor=now)

    run_due_work(now)
    message = Outbox.get()
    assert (message.sent_at, message.attempts, inbox.messages) == (None, 1, [])
    assert "Connection refused" in message.last_error and message.next_try_at > utcnow()

    monkeypatch.setenv("SMTP_URL", smtp_up)
    run_due_work(message.next_try_at - dt.timedelta(seconds=1))
    assert inbox.messages == []
    run_due_work(message.next_try_at)
    run_due_work(message.next_try_at + dt.timedelta(hours=1))

    (mail,) = inbox.to(CUSTOMER)
    assert "attempt 1 of 3" in text(mail)
    assert Outbox.get().sent_at is not None


def test_without_smtp_url_each_message_is_written_once_as_an_eml_file_in_outbox_dir(monkeypatch, tmp_path):
    """No SMTP_URL: the customer's email lands in OUTBOX_DIR as one .eml file, even if sending runs again."""
    monkeypatch.delenv("SMTP_URL", raising=False)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path))
    declined_card_order()
    run_due_work(T)
    send_due_messages()

    (eml,) = tmp_path.glob("*.payment_failed-*.eml")  # the seller's is seller_payment_failed
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert mail["To"] == CUSTOMER
    assert mail["Subject"] == "Payment of €30.00 for Python course failed — we will try again on 8 May 2026"
    assert "/card/" in text(mail)
    assert len(list(tmp_path.glob("*.eml"))) == 2
    assert Outbox.get(Outbox.template == "payment_failed").attempts == 1  # the second run did not write it again


def test_a_name_is_escaped_in_the_html_part_and_kept_as_written_in_the_plain_text(inbox):
    """A customer's name is data, never markup: the HTML shows it, the text part keeps it as it is."""
    seller = factories.seller()
    factories.order(seller, customer_name="Claire <b>Dubois</b> & Co", language="en", anchor=T)
    factories.answer_due_charges(T, "card_declined")
    send_due_messages(T.isoformat())

    (mail,) = inbox.to(CUSTOMER)
    assert "Hello Claire <b>Dubois</b> & Co," in text(mail)
    markup = mail.get_body(("html",)).get_content()
    assert "Hello Claire &lt;b&gt;Dubois&lt;/b&gt; &amp; Co," in markup and "<b>" not in markup


def test_a_name_that_spells_the_emails_part_boundary_arrives_whole_in_both_parts(inbox):
    """Every email's parts are parted by one set boundary; the text that names it is written so that no line of it
    can be read as the boundary, and both parts arrive as they were written."""
    name = f"Claire --{BOUNDARY}--"
    factories.order(factories.seller(), customer_name=name, language="en", anchor=T)
    factories.answer_due_charges(T, "card_declined")
    send_due_messages(T.isoformat())

    (mail,) = inbox.to(CUSTOMER)
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert f"Hello {name}," in text(mail)
    assert f"Hello {name}," in mail.get_body(("html",)).get_content()


@pytest.mark.parametrize(
    ("support_email", "name"),
    [(None, "Ann " + "From " * 19 + "Paris"), ("jörg@hilfe.example", "Annxx " + "From " * 19 + "Paris")],
)
def test_a_name_whose_wrapped_line_starts_with_from_arrives_as_written_in_both_parts(inbox, support_email, name):
    """A long line is wrapped for the wire; smtplib's own writing turns every line starting "From " into ">From "
    (mbox's escape), so the customer would read a ">" the name never had. The wrapped name arrives as it was given,
    in an email whose addresses are all ASCII (compat32's) and in one whose support address is not (EmailMessage's)."""
    factories.order(factories.seller(), customer_name=name, language="en", anchor=T, support_email=support_email)
    factories.answer_due_charges(T, "card_declined")
    send_due_messages(T.isoformat())

    (mail,) = inbox.to(f"{name.split()[0].lower()}@example.com")
    wire = mail.get_body(("plain",)).get_payload().splitlines()  # as encoded: the case is the wrap's, not the text's
    assert any(line.startswith("From ") for line in wire), "the name no longer wraps onto a line: lengthen it"
    assert f"Hello {name}," in text(mail)
    assert f"Hello {name}," in mail.get_body(("html",)).get_content()
    assert b">From" not in mail.as_bytes()
    assert mail["Reply-To"] == (support_email or "alice@example.com")


def test_a_card_link_lives_30_days_from_the_failure_however_late_the_email_is_sent(inbox):
    """Links are signed at the time of the fact: an email sent 20 days late does not give its link 20 more days."""
    declined_card_order(language="en")
    factories.answer_due_charges(T, "insufficient_funds")
    send_due_messages((T + 20 * DAY).isoformat())

    (mail,) = inbox.to(CUSTOMER)
    (link,) = re.findall(r"\S+/card/(\S+)", text(mail))
    assert verify(settings(), link, CARD_UPDATE, now=T + 30 * DAY)["order"] == Outbox.get().context["order_id"]
    with pytest.raises(LinkExpired):
        verify(settings(), link, CARD_UPDATE, now=T + 30 * DAY + dt.timedelta(seconds=1))


def declined_customers(count: int) -> None:
    """`count` customers of one seller whose first charge was declined at T: two messages each, due at T."""
    seller = factories.seller()
    for number in range(count):
        factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), customer_name=f"C{number} X")
    factories.answer_due_charges(T, "insufficient_funds")


def test_a_batch_of_emails_goes_out_over_one_smtp_connection(inbox):
    """Ten messages due at once (five customers, five sellers): one connection, not one per email."""
    declined_customers(5)

    send_due_messages(T.isoformat())

    assert len(inbox.messages) == Outbox.select().count() == 10
    assert len(inbox.connections) == 1


def test_a_sender_with_more_due_than_one_claim_starts_another_and_the_two_never_take_the_same_message(inbox):
    """Any number of workers share the outbox: each claim takes messages no other sender holds."""
    declined_customers(MESSAGES_PER_CLAIM // 2 + 1)
    queue().empty()

    first, second = Outbox.claim_due(T, utcnow(), MESSAGES_PER_CLAIM), Outbox.claim_due(T, utcnow(), MESSAGES_PER_CLAIM)
    assert (len(first), len(second)) == (MESSAGES_PER_CLAIM, 2) and not {m.id for m in first} & {m.id for m in second}
    Outbox.update(claimed_until=None, attempts=0).execute()

    send_due_messages(T.isoformat())

    assert len(inbox.messages) == MESSAGES_PER_CLAIM  # a claim a job: other work waits behind no backlog
    assert [job.func_name for job in queue().jobs] == [f"jobs.work.{SEND_MESSAGES}"]
    run_due_work(T)
    assert len(inbox.messages) == Outbox.select().count() == MESSAGES_PER_CLAIM + 2
    assert {message.attempts for message in Outbox.select()} == {1}


class ClosingInbox(Inbox):
    """A server that takes one message per connection and closes it when asked for a second, as some do after
    a number of them."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if session.peer in self.connections:
            server.transport.close()
            return "421 closing"
        envelope.mail_from = address
        return "250 OK"


@pytest.fixture
def closing_inbox(monkeypatch):
    yield from serve_smtp(ClosingInbox(), monkeypatch)


def test_a_connection_the_server_closed_between_two_emails_delays_neither(closing_inbox):
    """The next email of the batch goes over a new connection at once: none waits for a retry, none is sent twice."""
    declined_customers(3)

    send_due_messages(T.isoformat())

    assert len(closing_inbox.messages) == 6 and len(closing_inbox.connections) == 6
    assert [(m.sent_at is not None, m.attempts, m.last_error) for m in Outbox.select()] == [(True, 1, None)] * 6


class HangingUpInbox(Inbox):
    """A server that accepts the message (250 after DATA), then answers QUIT with 421 and drops the line."""

    async def handle_QUIT(self, server, session, envelope):
        return "421 closing the connection"


@pytest.fixture
def hanging_up_inbox(monkeypatch):
    yield from serve_smtp(HangingUpInbox(), monkeypatch)


def test_a_message_the_server_accepted_before_dropping_the_connection_is_recorded_sent_and_not_resent(
    hanging_up_inbox,
):
    """Once SMTP said 250, the send is recorded: a failure at QUIT neither marks it failed nor sends it again."""
    now = utcnow().replace(microsecond=0)
    declined_card_order(anchor=now)
    run_due_work(now)
    run_due_work(now + dt.timedelta(hours=2))  # past any retry a failed send would have been given

    (mail,) = hanging_up_inbox.to(CUSTOMER)
    message = Outbox.get()
    assert (message.sent_at is not None, message.attempts, message.last_error) == (True, 1, None)


class AnsweringWhenToldInbox(Inbox):
    """A server that answers a message's data only once told to: meanwhile the test holds the database."""

    def __init__(self):
        super().__init__()
        self.data_in, self.answer = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.data_in.set()
        await asyncio.to_thread(self.answer.wait, 60)
        return await super().handle_DATA(server, session, envelope)


def test_an_email_accepted_while_another_writer_holds_sqlite_past_its_busy_timeout_is_recorded_sent(
    monkeypatch, tmp_path
):
    """SQLite has one writer at a time. An email's record waits its turn on the writers' lock file however long the
    writer before it takes, where SQLite's own wait gives up after its busy timeout with "database is locked": the
    sending job would fail, and the email, accepted by the server, go out again."""
    if runtime.database().for_update:
        pytest.skip("PostgreSQL writes the outbox row beside any other writer's rows")
    monkeypatch.delenv("SMTP_URL", raising=False)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path))
    declined_card_order()
    run_due_work(T)
    Outbox.update(sent_at=None).execute()  # the customer's email and the seller's waiting again, for the server below
    failed = []

    def sending():
        try:
            send_due_messages()
        except Exception as error:  # noqa: BLE001 — what the job would raise is what the test reports
            failed.append(error)

    with served(AnsweringWhenToldInbox(), monkeypatch) as inbox:
        sender = threading.Thread(target=sending)
        sender.start()
        assert inbox.data_in.wait(30)
        with transaction():  # another writer, holding SQLite's write lock past the busy timeout
            inbox.answer.set()
            time.sleep(SQLITE_BUSY_TIMEOUT + 0.5)
        sender.join(60)

    assert failed == []
    assert len(inbox.messages) == 2
    assert Outbox.select().where(Outbox.sent_at.is_null()).count() == 0


class RefusingInbox(Inbox):
    """A server that refuses the customer's emails, at RCPT (no such user) or after DATA (taken for spam)."""

    def __init__(self, pipelining: bool, refuses_at: str):
        super().__init__(pipelining)
        self.refuses_at = refuses_at

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuses_at == "RCPT" and address == CUSTOMER:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuses_at == "DATA" and envelope.rcpt_tos == [CUSTOMER]:
            return "554 5.7.1 taken for spam"
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("refuses_at", ["RCPT", "DATA"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "command by command"])
def test_an_email_the_server_refuses_is_tried_again_later_and_the_batchs_other_emails_still_go(
    monkeypatch, pipelining, refuses_at
):
    """Refused at RCPT or after DATA, over a server that offers PIPELINING and over one that does not: the refused
    email is not recorded sent but kept with the server's answer for its next try; the seller's email goes."""
    inbox = RefusingInbox(pipelining, refuses_at)
    with served(inbox, monkeypatch):
        seller, _order = declined_card_order()
        factories.answer_due_charges(T, "insufficient_funds")
        send_due_messages(T.isoformat())

    assert [m["To"] for m in inbox.messages] == [notify_address(seller)]
    refused = Outbox.get(Outbox.recipient == CUSTOMER)
    assert (refused.sent_at, refused.attempts, refused.claimed_until) == (None, 1, None)
    assert refused.next_try_at is not None
    assert ("no such user" if refuses_at == "RCPT" else "taken for spam") in refused.last_error


class RateLimitingInbox(Inbox):
    """A server that takes one message, then refuses the next sender with 421 and closes the line, as a relay does
    to a client sending too fast."""

    senders = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.senders += 1
        if self.messages:
            await server.push("421 4.7.0 too many messages, slow down")
            server.transport.close()
            return "421 4.7.0 too many messages, slow down"  # aiosmtpd writes it again, to the closed line
        envelope.mail_from = address
        return "250 OK"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "command by command"])
def test_an_email_a_relay_refuses_with_421_before_closing_the_line_waits_for_its_retry(monkeypatch, pipelining):
    """The relay's refusal is kept as the email's error, and the email is not sent again at once over a new
    connection, as it is when a server closes a line it kept open (it says nothing of the email then)."""
    inbox = RateLimitingInbox(pipelining)
    with served(inbox, monkeypatch):
        declined_card_order()
        factories.answer_due_charges(T, "insufficient_funds")
        send_due_messages(T.isoformat())

    assert len(inbox.messages) == 1 and inbox.senders == 2  # no MAIL again at once on a new connection
    (refused,) = Outbox.select().where(Outbox.sent_at.is_null())
    assert refused.attempts == 1 and "slow down" in refused.last_error


class GroupingRelay(socketserver.StreamRequestHandler):
    """A relay that offers PIPELINING and answers a group of commands only once the group is whole (its DATA come),
    as relays may (RFC 2920): a client that waits for each answer before its next command gets none, and is dropped
    after a second. With `refused` set, it refuses those recipients yet answers their DATA with 354, as RFC 2920
    says some servers do."""

    timeout = 1
    refused: frozenset[bytes] = frozenset()

    def handle(self) -> None:
        def answer(*lines: str) -> None:
            self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

        self.server.connections += 1
        answer("220 relay.example")
        pending = []
        with contextlib.suppress(TimeoutError):
            while line := self.rfile.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    answer("250-relay.example", "250 PIPELINING")
                elif verb == b"MAIL":
                    pending.append("250 OK")
                elif verb == b"RCPT":
                    address = line.partition(b"<")[2].partition(b">")[0]
                    pending.append("550 no such user" if address in self.refused else "250 OK")
                elif verb == b"DATA":
                    answer(*pending, "354 go on")
                    pending = []
                    message = []
                    while (line := self.rfile.readline()) not in (b".\r\n", b""):
                        message.append(line)
                    self.server.messages.append(message_from_bytes(b"".join(message), policy=policy.default))
                    answer("250 queued")
                elif verb == b"QUIT":
                    self.server.quits += 1
                    answer("221 bye")
                    return


@contextlib.contextmanager
def grouping_relay(monkeypatch, refused=frozenset()):
    """A GroupingRelay on a free port, SMTP_URL pointing at it; it keeps the messages it took and counts the
    connections and the QUITs."""
    handler = type("Relay", (GroupingRelay,), {"refused": frozenset(refused)})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as relay:
        relay.messages, relay.connections, relay.quits = [], 0, 0
        threading.Thread(target=relay.serve_forever, daemon=True).start()
        monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{relay.server_address[1]}")
        yield relay
        relay.shutdown()


def test_a_relay_that_answers_a_group_of_commands_only_once_it_is_whole_gets_every_email(monkeypatch):
    """Each email's MAIL, RCPT and DATA go to a relay that offers PIPELINING without waiting for an answer between
    them: one wait, not three, over a relay some milliseconds away."""
    with grouping_relay(monkeypatch) as relay:
        seller, _order = declined_card_order()
        factories.answer_due_charges(T, "insufficient_funds")
        send_due_messages(T.isoformat())

    assert sorted(m["To"] for m in relay.messages) == sorted([CUSTOMER, notify_address(seller)])
    assert all(m.sent_at for m in Outbox.select())


def test_a_relay_that_takes_data_after_refusing_the_recipient_gets_an_empty_message_then_quit(monkeypatch):
    """The email is refused and tried again later; the transaction the relay opened anyway is ended with an empty
    message, so that the QUIT after it is read as QUIT, not as the message's text, and the line closes at once."""
    with grouping_relay(monkeypatch, refused={CUSTOMER.encode()}) as relay:
        seller, _order = declined_card_order()
        factories.answer_due_charges(T, "insufficient_funds")
        send_due_messages(T.isoformat())

    assert sorted(str(m["To"]) for m in relay.messages) == sorted(["None", notify_address(seller)])
    assert relay.quits == relay.connections  # each connection ended by its QUIT, none left waiting for a message
    refused = Outbox.get(Outbox.recipient == CUSTOMER)
    assert (refused.sent_at, refused.attempts) == (None, 1) and "no such user" in refused.last_error


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "command by command"])
def test_a_line_of_an_email_starting_with_a_period_arrives_with_its_period(monkeypatch, pipelining):
    """SMTP ends a message with a line holding a period alone and takes the first period off any line starting with
    one: each is sent doubled."""
    name = "Anne " + ". " * 36 + "Paris"
    with served(Inbox(pipelining), monkeypatch) as inbox:
        factories.order(factories.seller(), customer_name=name, language="en", anchor=T)
        factories.answer_due_charges(T, "card_declined")
        send_due_messages(T.isoformat())

    (mail,) = inbox.to("anne@example.com")
    wire = mail.get_body(("plain",)).get_payload().splitlines()  # as encoded: the case is the wrap's, not the text's
    assert f"Hello {name}," in text(mail)
    assert any(line.startswith(".") for line in wire), "the name no longer wraps onto a line starting with a period"


def test_every_send_of_one_outbox_message_carries_the_same_message_id(inbox):
    """A resend after a crash between acceptance and record (the claim lapsed, no sent_at) is the same email."""
    declined_card_order()
    run_due_work(T)
    # What a worker killed after SMTP's 250 and before its record leaves behind, once its claim lapsed.
    Outbox.update(sent_at=None, claimed_until=utcnow() - dt.timedelta(seconds=1)).execute()
    send_due_messages()

    first, second = inbox.to(CUSTOMER)
    assert first["Message-ID"] == second["Message-ID"]
    assert re.fullmatch(r"<outbox-\d+\.payment_failed-attempt-\d+@tranche>", first["Message-ID"])
    assert first["Date"] == second["Date"] and text(first) == text(second)


def recovered_on_day_7(seller, **order):
    """A card order of `seller` whose first charge fails on day 0 and whose retry succeeds on day 7."""
    made = factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=T, **order)
    factories.answer_due_charges(T, "insufficient_funds")
    factories.answer_due_charges(T + 7 * DAY)
    send_due_messages((T + 7 * DAY).isoformat())
    return made


def test_a_seller_without_slack_is_emailed_each_failed_payment_briefly_and_the_recovered_one(inbox):
    """R11: no linked workspace, so the notification address hears of the failure and of the recovery."""
    seller = factories.seller()
    order = recovered_on_day_7(seller)

    failed, recovered = inbox.to(notify_address(seller))
    assert failed["Subject"] == f"Order {order.id}: a payment of €30.00 failed"
    assert "Installment 1 of Claire Dubois, €30.00, failed: The bank said insufficient_funds." in text(failed)
    assert "This was attempt 1 of 3. Tranche tries again on 8 May 2026; you need to do nothing." in text(failed)
    assert recovered["Subject"] == f"Order {order.id}: a payment of €30.00 was recovered"
    assert "Installment 1 of Claire Dubois is now paid: €30.00." in text(recovered)


def test_a_seller_with_slack_hears_of_failed_and_recovered_payments_on_slack_only(inbox):
    """R11: a linked workspace gets those two on Slack; the notification address is not emailed them."""
    seller = factories.seller()
    SlackLink.create(seller=seller, team_id="T1", channel_id="C1", linked_at=T)
    recovered_on_day_7(seller)

    assert inbox.to(notify_address(seller)) == []
    slack = [m.template for m in Outbox.select().where(Outbox.channel == Outbox.SLACK).order_by(Outbox.id)]
    assert slack == ["slack_payment_failed", "slack_payment_recovered"]


def test_a_sellers_email_shows_dates_in_the_sellers_time_zone(inbox):
    """R11, R13: a failure at 02:00 UTC on 1 May is on 30 April for a seller in New York."""
    seller = factories.seller(timezone="America/New_York")
    early = dt.datetime(2026, 5, 1, 2, 0, tzinfo=dt.UTC)
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), anchor=early)
    for day in (0, 7, 14):
        factories.answer_due_charges(early + day * DAY, "insufficient_funds")
    send_due_messages((early + 14 * DAY).isoformat())

    *_brief, third = inbox.to(notify_address(seller))
    for date in ("30 April 2026", "7 May 2026", "14 May 2026"):
        assert f", {date}: The bank said insufficient_funds." in text(third)


@pytest.mark.parametrize(
    ("support_email", "reply_to"), [("help@courses.example", "help@courses.example"), (None, "alice@example.com")]
)
def test_customer_emails_carry_the_products_support_address_as_reply_to_or_else_the_sellers(
    inbox, support_email, reply_to
):
    """R11: a customer who answers a failure or a recovery email writes to support; the seller's emails have none."""
    seller = factories.seller()
    recovered_on_day_7(seller, support_email=support_email)

    assert [m["Reply-To"] for m in inbox.to(CUSTOMER)] == [reply_to, reply_to]
    assert [m["Reply-To"] for m in inbox.to(notify_address(seller))] == [None, None]


def test_a_sender_name_beyond_ascii_arrives_as_written(inbox, monkeypatch):
    """MAIL_FROM's name, RFC 2047-encoded on the wire, reads back as it was written, its address untouched."""
    monkeypatch.setenv("MAIL_FROM", "Académie Müller <billing@academie.example>")
    declined_card_order()
    run_due_work(T)
    send_due_messages()

    [mail] = inbox.to(CUSTOMER)
    assert mail["From"] == "Académie Müller <billing@academie.example>"
    assert mail["From"].addresses[0].addr_spec == "billing@academie.example"


def test_a_customer_whose_address_is_beyond_ascii_gets_the_email_over_smtputf8(inbox):
    """An address email-validator accepts (jürgen@…) goes out as written, with its French subject, in one try."""
    seller = factories.seller()
    factories.order(seller, payment=factories.card(factories.INSUFFICIENT_FUNDS), customer_name="Jürgen Weber")
    run_due_work(T)
    send_due_messages()

    [mail] = inbox.to("jürgen@example.com")
    assert mail["Subject"].startswith("Échec du paiement de 30,00")
    assert "/card/" in text(mail)
    assert Outbox.get(Outbox.template == "payment_failed").sent_at is not None


@pytest.fixture
def ascii_only_inbox(monkeypatch):
    yield from serve_smtp(Inbox(), monkeypatch, smtputf8=False)


def test_a_support_address_beyond_ascii_reaches_a_customer_through_a_server_without_smtputf8(ascii_only_inbox):
    """The envelope is all ASCII, so the email goes through a server that offers no SMTPUTF8 (many relays), in one
    try. Its Reply-To, the support address, has its domain in IDNA, which every mail client answers, not in the
    encoded word the email package writes inside an address (hilfe@=?utf-8?q?b=C3=A4ckerei?=.example), which none
    reads as an address."""
    factories.order(factories.seller(), language="en", anchor=T, support_email="hilfe@bäckerei.example")
    factories.answer_due_charges(T, "card_declined")
    send_due_messages(T.isoformat())

    (mail,) = ascii_only_inbox.to(CUSTOMER)
    assert mail["Reply-To"].addresses[0].addr_spec == "hilfe@xn--bckerei-5wa.example"
    assert Outbox.get(Outbox.recipient == CUSTOMER).attempts == 1


def test_every_email_is_written_byte_for_byte_as_the_email_packages_compat32_writes_it(inbox):
    """The short ASCII headers written as they are (emails.COMPAT32) change no byte of any email: in English and
    French, a customer's and a seller's, their subjects beyond ASCII."""
    declined_card_order(language="fr")
    fail_three_times()

    messages = list(Outbox.select().where(Outbox.channel == Outbox.EMAIL))
    emails = [render(message, settings()) for message in messages]
    assert len(emails) >= 10 and {m.language for m in messages} >= {"en", "fr"}
    assert {email.policy for email in emails} == {COMPAT32}  # what is compared is the shortcut's writing
    assert all(bytes(email) == email.as_bytes(policy=policy.compat32) for email in emails)
    assert any(not str(email["Subject"]).isascii() for email in emails)
