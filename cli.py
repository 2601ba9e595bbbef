"""The `flask …` commands for operators: sellers, the tick, demo data, migrations, unmatched events, Stripe."""

import datetime as dt
import re
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import click
import stripe
from flask import Flask
from flask.cli import AppGroup

from billing.sellers import DEFAULT_TIMEZONE, create_seller
from billing.values import EARLIEST, LATEST, control_character, identifier, time_in_range
from bot.cli import slack
from demo import demo_command
from gateways.stripe import EVENT_TYPES as STRIPE_EVENT_TYPES
from gateways.stripe import StripeGateway
from i18n import DEFAULT_LANGUAGE, LANGUAGES
from jobs.work import NotReplayable, replay_event, run_due_work
from migrations import pending
from models import GatewayEvent
from ops.status import status
from progress import showing_progress, summary
from runtime import set_clock, settings, utcnow

sellers = AppGroup("sellers", help="Manage sellers.")
events = AppGroup("events", help="Inspect gateway events.")
db_group = AppGroup("db", help="Database schema.")
stripe_group = AppGroup("stripe", help="Connect a Stripe account.")
clock = AppGroup("clock", help="Travel in time outside production: one clock for the web app, workers and CLI.")
DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
DURATION_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


def _plain_text(_ctx, param, value: str) -> str:
    value = value.strip()
    if not value or control_character(value) is not None:
        raise click.BadParameter(f"{param.name} must be a non-empty line of text without control characters")
    return value


def _time_zone(_ctx, _param, value: str) -> str:
    if value not in available_timezones():
        raise click.BadParameter(f"{value!r} is not an IANA time zone, e.g. Europe/Berlin or America/New_York")
    return value


@sellers.command("create")
@click.option("--name", required=True, callback=_plain_text)
@click.option("--email", required=True, callback=_plain_text)
@click.option(
    "--language",
    type=click.Choice(LANGUAGES),
    default=DEFAULT_LANGUAGE,
    show_default=True,
    help="Of the seller's emails.",
)
@click.option(
    "--timezone",
    default=DEFAULT_TIMEZONE,
    show_default=True,
    callback=_time_zone,
    help="The seller's IANA time zone: emails and Slack show times in it.",
)
def sellers_create(name, email, language, timezone):
    """Create a seller and print its API key (shown only now)."""
    seller, key = create_seller(name, email, utcnow(), language=language, timezone=timezone)
    click.echo(f"seller {seller.id} created\nAPI key: {key}")


def _parse_at(_ctx, _param, value):
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-12-01T09:00:00+01:00") from None
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if not time_in_range(at):
        raise click.BadParameter(f"{value!r} lies outside {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}, the rules' range")
    return at


def _event_id(_ctx, _param, value: str) -> int:
    number = identifier(value)
    if number is None:
        raise click.BadParameter(f"{value!r} is not an event id (a positive whole number, as `events failed` shows)")
    return number


def _travel(at: dt.datetime | None) -> dt.datetime:
    """Move the one clock, outside production only; returns the time it shows now."""
    if settings().production:
        raise click.ClickException("TRANCHE_ENV=production runs on the wall clock: time travel is refused")
    if at is not None and not time_in_range(at):
        raise click.ClickException(
            f"{at.isoformat()} lies outside {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}, the rules' range"
        )
    if pending():
        raise click.ClickException("the database is behind this code: run `flask db upgrade` first")
    return set_clock(at)


def _show_clock(at: dt.datetime | None) -> None:
    now = _travel(at)
    click.echo(f"clock: {now.isoformat(timespec='seconds')}" + ("" if at else " (the wall clock)"))


def _duration(_ctx, _param, value: str) -> dt.timedelta:
    found = DURATION.fullmatch(value.strip())
    if not value.strip() or found is None:
        raise click.BadParameter(f"{value!r} is not a duration like 7d, 36h, 1w2d or 90m")
    try:
        return dt.timedelta(**{unit: int(n) for unit, n in zip(DURATION_UNITS, found.groups(), strict=True) if n})
    except OverflowError:
        raise click.BadParameter(f"{value!r} is longer than any calendar") from None


@clock.command("set")
@click.argument("at", callback=_parse_at)
def clock_set(at):
    """Set the time every process reads to AT (ISO 8601; no offset means UTC)."""
    _show_clock(at)


@clock.command("advance")
@click.argument("duration", callback=_duration)
def clock_advance(duration):
    """Move the time every process reads forward by DURATION (7d, 36h, 1w2d, 90m)."""
    _show_clock(utcnow() + duration)


@clock.command("reset")
def clock_reset():
    """Put every process back on the wall clock."""
    _show_clock(None)


@click.command("status")
@click.pass_context
def status_command(ctx):
    """What waits, fails or is stuck; exits 1 when something needs an operator (a cron or monitoring check)."""
    report = status(utcnow())
    click.echo(report.render())
    ctx.exit(1 if report.needs_operator else 0)


@click.command("tick")
@click.option("--at", callback=_parse_at, help="ISO time to move the clock to first (default: now). No offset: UTC.")
def tick_command(at):
    """Run all work due by now, or by --at, which moves the one clock there (charges, retries, emails, hand-offs)."""
    if at is not None:
        _travel(at)
    at = at or utcnow()
    with showing_progress(f"tick at {at.isoformat(timespec='seconds')}") as jobs:
        ran = run_due_work(at, on_job=jobs)
    click.echo(f"tick at {at.isoformat()}: all due work done, {ran} jobs run by this process")
    click.echo(summary(at, jobs))


@events.command("unmatched")
def events_unmatched():
    """List gateway events that name an order or installment Tranche does not know."""
    for event in GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.UNMATCHED).order_by(GatewayEvent.id):
        click.echo(f"{event.received_at.isoformat()} {event.webhook_id} {event.type}: {event.note}")


def _describe(event: GatewayEvent) -> str:
    next_try = event.next_try_at.isoformat() if event.next_try_at else "none (tries used up: replay it)"
    return (
        f"{event.id} {event.webhook_id} {event.type} tries={event.tries} next try: {next_try}\n"
        f"    last error: {event.note}"
    )


@events.command("failed")
def events_failed():
    """List gateway events whose application failed: id, webhook-id, type, tries, next try, last error."""
    for event in GatewayEvent.select().where(GatewayEvent.status == GatewayEvent.FAILED).order_by(GatewayEvent.id):
        click.echo(_describe(event))


@events.command("replay")
@click.argument("event_id", callback=_event_id)
def events_replay(event_id):
    """Apply a failed gateway event now, once."""
    try:
        event = replay_event(event_id, utcnow())
    except NotReplayable as error:
        raise click.ClickException(str(error)) from None
    if event.status == GatewayEvent.FAILED:
        raise click.ClickException(f"replay failed again:\n{_describe(event)}")
    click.echo(f"event {event.id} {event.webhook_id}: {event.status}" + (f" ({event.note})" if event.note else ""))


@db_group.command("upgrade")
def db_upgrade():
    """Apply every pending migration (a database made by an earlier version upgrades in place)."""
    from migrations import upgrade

    applied = upgrade()
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


def _web_url(_ctx, _param, value: str) -> str:
    if urlsplit(value).scheme not in ("https", "http") or not urlsplit(value).netloc:
        raise click.BadParameter(f"{value!r} is not a web address, e.g. https://billing.example.com/webhooks/stripe")
    return value


@stripe_group.command("webhook-endpoint")
@click.option("--url", required=True, callback=_web_url, help="Where Stripe posts: this app's /webhooks/stripe.")
def stripe_webhook_endpoint(url):
    """Register --url with Stripe for the events Tranche needs, and print the endpoint's signing secret."""
    secret_key = settings().stripe_secret_key
    if not secret_key:
        raise click.ClickException("set STRIPE_SECRET_KEY first: the Stripe account's secret key (sk_test_… to try)")
    try:
        endpoint_id, secret = StripeGateway(secret_key, settings().stripe_api_base).create_webhook_endpoint(url)
    except stripe.StripeError as error:
        raise click.ClickException(f"Stripe refused the endpoint: {error.user_message or error}") from None
    click.echo(f"webhook endpoint {endpoint_id}: {url} receives {', '.join(STRIPE_EVENT_TYPES)}")
    click.echo(f"STRIPE_WEBHOOK_SECRET={secret}")


def register_commands(app: Flask) -> None:
    for command in (sellers, events, db_group, stripe_group, clock, status_command, tick_command, demo_command, slack):
        app.cli.add_command(command)
