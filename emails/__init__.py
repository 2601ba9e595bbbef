"""Emails: one function per email turns the facts stored in the outbox into its template context;
`render` makes a plain-text and an HTML part in the recipient's language, and `deliver_message` sends it
through a `Mailer`: over SMTP_URL, one connection for a batch, or written to var/outbox/.

Templates live in templates/<email>/{subject.txt, body.txt, body.html}; their messages are the "emails"
Babel domain (translations/<lang>/LC_MESSAGES/emails.po; extract with emails/babel.cfg).
"""

import binascii
import contextlib
import datetime as dt
import io
import re
import smtplib
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import format_datetime, formataddr, parseaddr
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import css_inline
from email_validator import EmailNotValidError
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from billing.links import card_update_link, plan_change_link
from billing.retries import DELIVERY_RETRIES, METHOD_GONE
from billing.values import email_address
from i18n import Formats, language_of, translations
from models import Outbox

TEMPLATES = Path(__file__).parent / "templates"
DOMAIN = "emails"
# Mail clients drop <style> blocks or ignore them: every rule is written into the elements' style attributes.
# Nothing is fetched from the network while rendering.
_inliner = css_inline.CSSInliner(load_remote_stylesheets=False)


def N_(message: str) -> str:
    """Marks a message for the catalog where it is defined; the template translates it where it is shown."""
    return message


# R5: the reason in plain words, by the gateway's failure code (the sandbox's, Stripe's decline codes); the
# gateway's own text is English only.
_NO_REASON = N_("Your bank declined the payment without giving us a reason. Your bank can tell you more.")
_LOST = N_("Your bank reported this card as lost or stolen and refuses every payment with it.")
_REFUSED_FOR_GOOD = N_("Your bank refuses every payment with this card.")
_UNUSABLE = N_("This card or account can no longer be charged: please give another one.")
FAILURE_REASONS = {
    "insufficient_funds": N_("There were not enough funds on the account linked to your card."),
    "card_declined": _NO_REASON,
    "generic_decline": _NO_REASON,
    "expired_card": N_("The card we have on file has expired."),
    "lost_card": _LOST,
    "stolen_card": _LOST,
    "pickup_card": _REFUSED_FOR_GOOD,
    "restricted_card": _REFUSED_FOR_GOOD,
    "fraudulent": _REFUSED_FOR_GOOD,
    "authentication_required": N_(
        "Your bank asks you to confirm this payment yourself: update your card below and confirm it with your bank."
    ),
    "card_velocity_exceeded": N_("The card has reached its spending limit for now."),
    "processing_error": N_("Your bank could not process the payment because of an error on its side."),
    **dict.fromkeys(METHOD_GONE, _UNUSABLE),
}
UNKNOWN_FAILURE_REASON = N_("Your bank or card issuer did not accept the payment. Your bank can tell you more.")


def failure_reason(code: str | None) -> str:
    return FAILURE_REASONS.get(code or "", UNKNOWN_FAILURE_REASON)


@cache
def _environment(language: str) -> Environment:
    """One environment per language, its catalog installed once: rendering never switches a shared one."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        # Each template is compiled once per process and language: a deploy restarts the workers, so none asks the
        # disk again whether a template changed (a stat per template per email).
        auto_reload=False,
    )
    environment.install_gettext_translations(translations(language, DOMAIN), newstyle=True)
    # `_` is gettext itself, not jinja2.ext's alias that looks gettext up in each render's context to call it: that
    # lets a render bring a gettext of its own, which none does here, and was a tenth of rendering an email.
    environment.globals["_"] = environment.globals["gettext"]
    return environment


# --- One function per email: its context, from the facts the outbox row recorded ---
# Links are signed at the time of the fact (the row's created_at), so a link lives as long as what it acts
# on however late the email goes out, and a resend after an SMTP failure carries the very same link.


def payment_failed(message: Outbox, settings) -> dict:
    """R5: which attempt of three, the reason in plain words, the next date (None: the last), the card link."""
    facts = message.context
    return {
        **facts,
        "reason": failure_reason(facts["code"]),
        "card_link": card_update_link(settings, facts["order_id"], facts["installment"], now=message.created_at),
    }


def before_installment(message: Outbox, settings) -> dict:
    """R14: the installment soon due, and the link to give another card or account before it is charged."""
    facts = message.context
    link = card_update_link(settings, facts["order_id"], facts["installment"], now=message.created_at)
    return {**facts, "card_link": link}


def as_recorded(message: Outbox, settings) -> dict:
    """An email that shows its facts as the outbox row recorded them, with no link to sign."""
    return message.context


def plan_change_proposed(message: Outbox, settings) -> dict:
    """R3: both amounts, the first due date at the new one, the deadline, the link bound to this change. The link
    is signed at the proposal, so that R15's reminder carries the very same one."""
    facts = message.context
    proposed_at = dt.datetime.fromisoformat(facts["proposed_at"])
    link = plan_change_link(settings, facts["change_id"], facts["order_id"], facts["new_amount"], now=proposed_at)
    return {**facts, "confirm_link": link}


def plan_change_reminder(message: Outbox, settings) -> dict:
    """R15: the proposal again, with the time left to answer when the reminder was written."""
    facts = plan_change_proposed(message, settings)
    return {**facts, "time_left": dt.datetime.fromisoformat(facts["expires_at"]) - message.created_at}


def seller_news(message: Outbox, settings) -> dict:
    """R4, R9, R11: a plan change confirmed, declined or expired; a hand-off. The facts and the order's link."""
    return {**message.context, "order_link": f"{settings.public_url}/api/v1/orders/{message.context['order_id']}"}


def seller_payment_failed(message: Outbox, settings) -> dict:
    """R11, a seller without Slack: a failed payment in brief, with its reason and the next attempt."""
    news = seller_news(message, settings)
    return {**news, "reason": failure_reason(news["code"])}


def seller_debt_given_up(message: Outbox, settings) -> dict:
    """R6, R7, R8, Declines: the third failure, a hard decline, the failed renewal, the failed SEPA debit — each
    with every reason."""
    news = seller_news(message, settings)
    return {**news, "failures": [{**f, "reason": failure_reason(f["code"])} for f in news["failures"]]}


CONTEXTS = {
    "payment_failed": payment_failed,
    "card_expiring": before_installment,
    "installment_reminder": before_installment,
    "sepa_debit_retried": payment_failed,
    "payment_recovered": as_recorded,
    "plan_change_proposed": plan_change_proposed,
    "plan_change_reminder": plan_change_reminder,
    "plan_change_confirmed": as_recorded,
    "seller_payment_failed": seller_payment_failed,
    "seller_payment_recovered": seller_news,
    "seller_third_failure": seller_debt_given_up,
    "seller_hard_decline": seller_debt_given_up,
    "seller_renewal_failed": seller_debt_given_up,
    "seller_sepa_failed": seller_debt_given_up,
    "seller_plan_change": seller_news,
    "seller_handed_off": seller_news,
    "seller_endpoint_disabled": as_recorded,
}


def render(message: Outbox, settings) -> Message:
    """One outbox message as an email in its language: a plain-text part and an HTML one, styles inlined."""
    language = language_of(message.language)
    facts = message.context
    formats = Formats(language, facts["timezone"], facts["currency"])
    context = {**CONTEXTS[message.template](message, settings), "language": language, "formats": formats}
    environment = _environment(language)
    subject = environment.get_template(f"{message.template}/subject.txt").render(context)
    # Join the template's lines only: split() would also eat the non-breaking space Babel puts in amounts.
    subject = " ".join(line.strip() for line in subject.splitlines() if line.strip())
    text = environment.get_template(f"{message.template}/body.txt").render(context)
    html = environment.get_template(f"{message.template}/body.html").render(context, subject=subject)
    headers = {
        "Subject": subject,
        "From": settings.mail_from,
        "To": message.recipient,
        # A customer's email: answers go to the product's support address (R11).
        "Reply-To": facts.get("reply_to"),
        "Date": format_datetime(message.created_at),
        # A stable id lets mail clients drop a copy should a crash between send and record resend it.
        "Message-ID": f"<outbox-{message.id}.{message.dedupe_key.replace(':', '-')}@tranche>",
    }
    return _email({name: value for name, value in headers.items() if value}, language, text, _inliner.inline(html))


ADDRESSES = ("From", "To", "Reply-To")
# Set, not drawn: the generator draws a random one for each email and compiles a regular expression to search both
# parts for it, a tenth of sending an email. A quoted-printable part can never hold this one, since it writes every
# "=" of its text as "=3D": no line of it starts "--=_".
BOUNDARY = "=_tranche-alternative"


class _Compat32(Compat32):
    """compat32, writing as it is a header that needs neither encoding nor folding (ASCII, on one short line): compat32
    runs email.header.Header over every header, which costs more than the rest of flattening an email."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii() and "\r" not in value and "\n" not in value:
            line = f"{name}: {value}"
            if len(line) <= (self.max_line_length or 78):
                return line + self.linesep
        folded: str = super()._fold(name, value, sanitize)  # type: ignore[misc]  # compat32's own, untyped
        return folded


COMPAT32 = _Compat32()


def _email(headers: dict[str, str], language: str, text: str, html: str) -> Message:
    """The email, its plain text and HTML as alternatives. Built with the email package's legacy classes
    (compat32) when every address is ASCII: EmailMessage parses and refolds each header it is given, 1.4 ms an
    email against 0.4 (bench/). An address beyond ASCII takes EmailMessage, which smtplib sends over SMTPUTF8
    by turning its policy to UTF-8, which compat32 has not."""
    addresses = {name: _readable(parseaddr(headers[name])) for name in ADDRESSES if name in headers}
    if all(address.isascii() for _name, address in addresses.values()):
        email: Message = MIMEMultipart("alternative", boundary=BOUNDARY, policy=COMPAT32)
        for name, value in headers.items():
            # A name beyond ASCII is encoded alone: the address itself must stay readable to every server.
            email[name] = formataddr(addresses[name], "utf-8") if name in addresses else value
        email["Content-Language"] = language
        for body, subtype in ((text, "plain"), (html, "html")):
            email.attach(_quoted_printable(body, subtype))
        return email
    international = EmailMessage()
    for name, value in headers.items():
        readable = name in addresses and addresses[name][1].isascii()  # its domain in IDNA, if it was beyond ASCII
        international[name] = formataddr(addresses[name]) if readable else value
    international.set_content(text)
    international.add_alternative(html, subtype="html")
    # After add_alternative, which moves every Content-* header set before it into the text part.
    international["Content-Language"] = language
    return international


def _readable(address: tuple[str, str]) -> tuple[str, str]:
    """`address` (name, addr-spec) with its domain in IDNA (xn--…) when only the domain is beyond ASCII: every client
    and relay reads that, without SMTPUTF8, where none reads the encoded word the email package writes inside an
    address."""
    name, spec = address
    if spec.isascii():
        return address
    try:
        return (name, email_address(spec).ascii_email or spec)
    except EmailNotValidError:
        return address


def _quoted_printable(body: str, subtype: str) -> Message:
    """A UTF-8 text part in quoted-printable, as EmailMessage chooses for these texts: readable in the raw message,
    and no spam filter's penalty for base64 text. Encoded by binascii, in C: MIMEText's encoder, email.quoprimime,
    runs in Python a character at a time."""
    part = MIMENonMultipart("text", subtype, policy=COMPAT32, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode(), istext=True).decode("ascii"))
    return part


class Mailer:
    """Sends emails through SMTP_URL, over one connection for as many as it is given (a batch of the outbox), or
    writes them to OUTBOX_DIR. Use it as a context manager: the connection is opened at the first email and
    closed at the end."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            _hang_up(self._smtp)
            self._smtp = None

    def send(self, email: Message, accepted: Callable[[], None]) -> None:
        """Hand `email` over; `accepted` runs as soon as the peer has taken it."""
        if not self.settings.smtp_url:
            self.settings.outbox_dir.mkdir(parents=True, exist_ok=True)
            name = email["Message-ID"].strip("<>").split("@")[0]
            (self.settings.outbox_dir / f"{name}.eml").write_bytes(bytes(email))
            accepted()
            return
        reused = self._smtp is not None
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            sender, recipient, data, options = _on_the_wire(email)
            self._smtp.ehlo_or_helo_if_needed()
            if options and not self._smtp.has_extn("smtputf8"):
                # As send_message refuses: smtplib would drop the option for a server that knows no EHLO, then fail
                # to write the address.
                raise smtplib.SMTPNotSupportedError("an address beyond ASCII, and the server offers no SMTPUTF8")
            if self._smtp.has_extn("pipelining"):
                _send_pipelined(self._smtp, sender, recipient, data, options)
            else:
                self._smtp.sendmail(sender, [recipient], data, options)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            self.close()
            if not reused:
                raise
            # A server may close a connection it kept open a while, or after so many messages: that says nothing
            # of this message, which goes over a new connection at once instead of waiting for its retry.
            self.send(email, accepted)
            return
        except (OSError, smtplib.SMTPException):
            self.close()  # a connection that failed a message is not trusted with the next one
            raise
        accepted()

    def _connect(self) -> smtplib.SMTP:
        url = urlsplit(self.settings.smtp_url)
        client = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        smtp = client(url.hostname, url.port or (465 if url.scheme == "smtps" else 25), timeout=30)
        try:
            if url.scheme == "smtp+starttls":
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
        except (OSError, smtplib.SMTPException):
            smtp.close()
            raise
        return smtp


def _on_the_wire(email: Message) -> tuple[str, str, bytes, tuple[str, ...]]:
    """The envelope, bytes and options smtplib's send_message sends for `email`, but for mbox's escape, which it
    applies to a legacy (compat32) email: each line starting "From " (a text's own, or one its wrapping made) written
    ">From ", a ">" the reader would see. Over SMTPUTF8 when the envelope's addresses are beyond ASCII, as there."""
    sender, recipient = parseaddr(email["From"])[1], parseaddr(email["To"])[1]
    international = not (sender.isascii() and recipient.isascii())
    policy = email.policy.clone(linesep="\r\n")
    if international:
        policy = policy.clone(utf8=True)
    with io.BytesIO() as wire:
        BytesGenerator(wire, mangle_from_=False, policy=policy).flatten(email)
        data = wire.getvalue()
    return sender, recipient, data, ("SMTPUTF8", "BODY=8BITMIME") if international else ()


_LINE_STARTING_WITH_A_PERIOD = re.compile(rb"^\.", re.MULTILINE)


def _send_pipelined(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes, options: tuple[str, ...]) -> None:
    """smtplib's sendmail in two round trips instead of four, for a server that offers PIPELINING (RFC 2920), as
    Postfix and Exim do by default: MAIL, RCPT and DATA go in one write and their answers are read together, then
    the message: a relay some milliseconds away keeps a connection waiting half as long an email. It raises what
    sendmail raises."""
    if smtp.has_extn("size"):
        options = (*options, f"SIZE={len(data)}")
    commands = f"MAIL FROM:{smtplib.quoteaddr(sender)}{''.join(' ' + o for o in options)}\r\n"
    commands += f"RCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n"
    smtp.send(commands.encode("utf-8" if "SMTPUTF8" in options else "ascii"))
    answers: list[tuple[int, bytes]] = []
    try:
        while len(answers) < 3:
            answers.append(smtp.getreply())
    except smtplib.SMTPServerDisconnected:
        # A server that refuses MAIL or RCPT may close the line at once (421 must): its refusal says why, and a
        # server that refused this email is not one to send it to again at once.
        if all(code in (250, 251) for code, _ in answers):
            raise
    (mail, mail_reply), (rcpt, rcpt_reply), (go_on, go_on_reply) = answers + [(0, b"")] * (3 - len(answers))
    if go_on == 354 and (mail != 250 or rcpt not in (250, 251)):
        # Some servers take DATA after refusing every recipient (RFC 2920 warns of them): an empty message ends that
        # transaction, so that the QUIT after it is not read as the message's text. The refusal is what to tell.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.send(b".\r\n")
            smtp.getreply()
    if mail != 250:
        raise smtplib.SMTPSenderRefused(mail, mail_reply, sender)
    if rcpt not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({recipient: (rcpt, rcpt_reply)})
    if go_on != 354:
        raise smtplib.SMTPDataError(go_on, go_on_reply)
    smtp.send(_LINE_STARTING_WITH_A_PERIOD.sub(b"..", data) + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def _hang_up(smtp: smtplib.SMTP) -> None:
    """QUIT without `with smtplib.SMTP(...)`, whose exit raises when the answer to QUIT is not 221: the messages
    are accepted and recorded by then, and a server that errs or drops the line now must not make them resent."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def deliver_message(message: Outbox, mailer: Mailer, now: dt.datetime) -> bool:
    """Send one outbox message its caller claimed (Outbox.claim_due); True once sent.

    The send is recorded, in its own statement, the moment the SMTP server accepts the message: only a crash
    between the two sends it again, with the same Message-ID (at-least-once delivery)."""
    try:
        mailer.send(render(message, mailer.settings), accepted=lambda: Outbox.record_sent(message.id, now))
    except (OSError, smtplib.SMTPException) as error:
        Outbox.record_failure(message.id, DELIVERY_RETRIES.next_try(message.attempts, now), error)
        return False
    return True
