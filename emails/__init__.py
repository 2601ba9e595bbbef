"""Emails: one function per email turns the facts stored in the outbox into its template context;
`deliver_message` renders a message and sends it through SMTP_URL, or writes it to var/outbox/."""

import datetime as dt
import smtplib
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models import Outbox
from pages.tokens import card_update_link, plan_change_link

TEMPLATES = Path(__file__).parent / "templates"
LOCALES = {"fr": "fr_FR", "de": "de_DE", "en": "en_IE"}
# A failed send is tried again 1, 2, 4 … minutes later, at most an hour apart.
CLAIM = dt.timedelta(minutes=5)
LONGEST_RETRY = dt.timedelta(hours=1)

_jinja = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=select_autoescape(["html"]),
)


def _formatters(facts: dict) -> dict:
    locale = LOCALES.get(facts.get("language", "en"), "en_IE")
    zone = ZoneInfo(facts.get("timezone", "Europe/Berlin"))

    def money(amount) -> str:
        return format_currency(Decimal(amount), facts["currency"], locale=locale)

    def date(iso: str) -> str:
        return format_date(dt.datetime.fromisoformat(iso).astimezone(zone).date(), format="long", locale=locale)

    return {"money": money, "date": date}


def payment_failed(facts: dict, settings) -> dict:
    return {**facts, "card_link": card_update_link(settings, facts["order_id"], facts["installment"])}


def customer_facts(facts: dict, settings) -> dict:
    return facts


def seller_facts(facts: dict, settings) -> dict:
    return {**facts, "order_link": f"{settings.public_url}/api/v1/orders/{facts['order_id']}"}


def plan_change_proposed(facts: dict, settings) -> dict:
    link = plan_change_link(settings, facts["change_id"], facts["order_id"], facts["new_amount"])
    return {**facts, "confirm_link": link}


CONTEXTS = {
    "plan_change_proposed": plan_change_proposed,
    "plan_change_confirmed": customer_facts,
    "seller_plan_change": seller_facts,
    "payment_failed": payment_failed,
    "payment_recovered": customer_facts,
    "seller_third_failure": seller_facts,
    "seller_sepa_failed": seller_facts,
    "seller_renewal_failed": seller_facts,
    "seller_handed_off": seller_facts,
}


def render(message: Outbox, settings) -> EmailMessage:
    facts = {**message.context, "language": message.language}
    context = {**CONTEXTS[message.template](facts, settings), **_formatters(facts)}
    email = EmailMessage()
    subject = _jinja.get_template(f"{message.template}/subject.txt").render(context)
    # Join the template's lines only: split() would also eat the non-breaking space Babel puts in amounts.
    email["Subject"] = " ".join(line.strip() for line in subject.splitlines() if line.strip())
    email["From"] = settings.mail_from
    email["To"] = message.recipient
    email["Date"] = format_datetime(message.created_at)
    # A stable id lets mail clients drop a copy should a crash between send and record resend it.
    email["Message-ID"] = f"<outbox-{message.id}.{message.dedupe_key.replace(':', '-')}@tranche>"
    email["Content-Language"] = message.language
    email.set_content(_jinja.get_template(f"{message.template}/body.txt").render(context))
    return email


def _send(email: EmailMessage, settings) -> None:
    if not settings.smtp_url:
        settings.outbox_dir.mkdir(parents=True, exist_ok=True)
        name = email["Message-ID"].strip("<>").split("@")[0]
        (settings.outbox_dir / f"{name}.eml").write_bytes(bytes(email))
        return
    url = urlsplit(settings.smtp_url)
    client = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with client(url.hostname, url.port or (465 if url.scheme == "smtps" else 25), timeout=30) as smtp:
        if url.scheme == "smtp+starttls":
            smtp.starttls()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(email)


def deliver_message(message_id: int, settings, now: dt.datetime) -> bool:
    """Send one outbox message unless it is sent or another worker holds it; True once sent."""
    claimed = (
        Outbox.update(claimed_until=now + CLAIM, attempts=Outbox.attempts + 1)
        .where(
            Outbox.id == message_id,
            Outbox.sent_at.is_null(),
            Outbox.claimed_until.is_null() | (Outbox.claimed_until < now),
        )
        .execute()
    )
    if not claimed:
        return False
    message = Outbox.get_by_id(message_id)
    try:
        _send(render(message, settings), settings)
    except (OSError, smtplib.SMTPException) as error:
        delay = min(dt.timedelta(minutes=1) * 2 ** min(message.attempts - 1, 10), LONGEST_RETRY)
        Outbox.update(claimed_until=None, next_try_at=now + delay, last_error=str(error)[:2000]).where(
            Outbox.id == message_id
        ).execute()
        return False
    Outbox.update(sent_at=now, claimed_until=None, last_error=None).where(Outbox.id == message_id).execute()
    return True
