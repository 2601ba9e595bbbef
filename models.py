"""The database: peewee models and the handle every process opens from DATABASE_URL."""

import atexit
import datetime as dt
import fcntl
import json
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    Insert,
    IntegerField,
    Model,
    ModelSelect,
    OperationalError,
    SmallIntegerField,
    SqliteDatabase,
    TextField,
    Value,
)
from playhouse.db_url import connect, parse
from playhouse.pool import PooledPostgresqlDatabase

db = DatabaseProxy()

CENT = Decimal("0.01")

_V = TypeVar("_V")

if TYPE_CHECKING:
    from peewee import DateTimeField as _DateTimeField
    from peewee import IntegerField as _IntegerField
else:
    # types-peewee's fields are generic in the value a row holds (CharField(null=True) is CharField[str | None]);
    # peewee's own classes cannot be subscripted at runtime, so our fields derive from these twins, which can.
    class _IntegerField(IntegerField, Generic[_V]):
        pass

    class _DateTimeField(DateTimeField, Generic[_V]):
        pass


class RecentlyCheckedPool(PooledPostgresqlDatabase):  # type: ignore[misc]  # types-peewee has no playhouse.pool
    """peewee's pool, which asks the server (SELECT 1) whether a connection it hands out is still alive: here only
    when the connection has been idle for PING_AFTER_IDLE, since that round trip was a quarter of a webhook's
    (bench/webhooks.py). A connection given back this recently was alive then; a server gone since fails the request
    that gets it, as one gone between the check and the query always did (HikariCP's aliveBypassWindowMs, 500 ms)."""

    PING_AFTER_IDLE = 1.0  # seconds

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._given_back: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        super().__init__(*args, **kwargs)

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        if not close_conn:
            self._given_back[conn] = time.monotonic()

    def _is_closed(self, conn: Any) -> bool:
        given_back = self._given_back.pop(conn, None)
        recent = given_back is not None and time.monotonic() - given_back <= self.PING_AFTER_IDLE
        # What the driver knows without asking: open, and no transaction left open or lost.
        if recent and not conn.closed and self._adapter.txn_status(conn) == self._adapter.txn_idle:
            return False
        return bool(super()._is_closed(conn))


# SQLite's own wait for its write lock, in seconds: a writer that does not take its turn on the lock file
# (transaction(), one_write()) gives up after it with "database is locked".
SQLITE_BUSY_TIMEOUT = 10


def open_database(url: str) -> None:
    """Point the shared handle at `url` (sqlite:/// or postgresql://)."""
    # Pooled: a new connection for each request and job cost more than the work itself (bench/: 3x the webhook's
    # rate on PostgreSQL; on SQLite, opening the file and setting its pragmas took half a webhook's time). The pool
    # rolls back whatever a request leaves open.
    if url.startswith("sqlite"):
        # WAL lets the web app read while a worker writes; the timeout waits out short write locks. A pooled
        # connection serves one thread at a time, but not always the thread that opened it.
        scheme, rest = url.split("://", 1)
        pragmas = {"journal_mode": "wal", "busy_timeout": round(SQLITE_BUSY_TIMEOUT * 1000), "foreign_keys": 1}
        database = connect(f"{scheme.removesuffix('+pool')}+pool://{rest}", pragmas=pragmas, check_same_thread=False)
    else:
        database = RecentlyCheckedPool(**parse(url))
    atexit.register(database.close_all)  # closed, not left to the garbage collector at exit
    db.initialize(database)


class MoneyField(_IntegerField[_V]):
    """A Decimal amount stored as integer cents, so no backend ever rounds it through a float."""

    if TYPE_CHECKING:
        # As types-peewee types its own fields: a row's value is a Decimal, or Decimal | None when null=True.
        @overload
        def __new__(cls, *, null: Literal[True], **kwargs: Any) -> "MoneyField[Decimal | None]": ...
        @overload
        def __new__(cls, *, null: Literal[False] = ..., **kwargs: Any) -> "MoneyField[Decimal]": ...
        def __new__(cls, *args: Any, **kwargs: Any) -> Any: ...

    def db_value(self, value: Decimal | int | str | None) -> int | None:
        if value is None:
            return None
        return int((Decimal(value) * 100).to_integral_exact())

    def python_value(self, value: int | None) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(value) / 100).quantize(CENT)


class UTCDateTimeField(_DateTimeField[_V]):
    """Aware UTC datetimes in, aware UTC datetimes out (stored naive, in UTC, on every backend)."""

    if TYPE_CHECKING:
        # As types-peewee types its own fields: a row's value is a datetime, or datetime | None when null=True.
        @overload
        def __new__(cls, *, null: Literal[True], **kwargs: Any) -> "UTCDateTimeField[dt.datetime | None]": ...
        @overload
        def __new__(cls, *, null: Literal[False] = ..., **kwargs: Any) -> "UTCDateTimeField[dt.datetime]": ...
        def __new__(cls, *args: Any, **kwargs: Any) -> Any: ...

    def db_value(self, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def python_value(self, value: object) -> object:
        value = super().python_value(value)  # type: ignore[no-untyped-call]  # types-peewee leaves it unannotated
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=dt.UTC)
        return value


class JSONField(TextField):
    def db_value(self, value: object) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(Model):
    # peewee adds this very field to every model without a primary key; declared, the checker knows `Order.id`.
    id = AutoField()

    class Meta:
        database = db
        legacy_table_names = False


class Seller(BaseModel):
    name = CharField()
    email = CharField()
    # sha256 of the API key: keys are 32 random bytes, so a fast hash is enough and the key is never stored.
    api_key_hash = CharField(unique=True)
    timezone = CharField(default="Europe/Berlin")
    language = CharField(default="en")  # fr, de or en: of the seller's emails (R11)
    created_at = UTCDateTimeField()
    digest = BooleanField(default=False)  # R17, opt-in
    digest_due_at = UTCDateTimeField(null=True)  # the next digest, while opted in

    if TYPE_CHECKING:
        # What the backrefs of the foreign keys below give (peewee adds them at runtime).
        orders: ModelSelect["Order"]
        products: ModelSelect["Product"]


class Product(BaseModel):
    seller = ForeignKeyField(Seller, backref="products")
    name = CharField()
    notification_email = CharField()
    # The Reply-To of the customers' emails and the contact on their pages (R11); None: the seller's email.
    support_email = CharField(null=True)
    sepa_retry = BooleanField(default=False)  # R16
    reminder_days = SmallIntegerField(null=True)  # R14: days before each installment its customer is reminded

    if TYPE_CHECKING:
        seller_id: int  # peewee's accessor for the foreign key's raw value

    @property
    def contact_email(self) -> str:
        """Where the customers write (R11): the support address, or else the seller's own."""
        return self.support_email or self.seller.email


def folded(text: str) -> str:
    """`text` as R12's search compares it: accents dropped and case folded, so 'JURGEN' meets 'Jürgen'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


class Customer(BaseModel):
    seller = ForeignKeyField(Seller, backref="customers")
    name = CharField()
    email = CharField()
    language = CharField(default="en")  # fr, de or en
    # The name folded in Python, written with it: the same search on every backend, with no database extension
    # (PostgreSQL's unaccent is not always installed, SQLite has none). Text: folding can lengthen a name.
    name_folded = TextField(default="")
    # The customer at the gateway (a Stripe Customer, cus_…): its saved payment methods are charged off-session.
    gateway_customer_id = CharField(null=True)

    if TYPE_CHECKING:
        seller_id: int  # peewee's accessor for the foreign key's raw value

    def save(self, *args: Any, **kwargs: Any) -> int:
        self.name_folded = folded(self.name)
        return super().save(*args, **kwargs)


class Order(BaseModel):
    ACTIVE = "active"
    INTERRUPTED = "interrupted"  # third automatic attempt failed: waits for the seller (renew or hand off)
    COLLECTIONS = "collections"  # open debt Tranche will not recover by itself
    HANDED_OFF = "handed_off"  # given to the collection partner: final
    COMPLETED = "completed"
    STATUSES = (ACTIVE, INTERRUPTED, COLLECTIONS, HANDED_OFF, COMPLETED)

    seller = ForeignKeyField(Seller, backref="orders")
    product = ForeignKeyField(Product, backref="orders")
    customer = ForeignKeyField(Customer, backref="orders")
    invoice_number = CharField()
    plan = CharField()  # installments | subscription
    installment_count = IntegerField(null=True)  # None for a subscription
    interval = CharField()  # weekly | monthly
    amount = MoneyField()
    currency = CharField(default="EUR")
    anchor_at = UTCDateTimeField()
    method = CharField()  # card | sepa
    card_token = CharField(null=True)
    card_brand = CharField(null=True)
    card_last4 = CharField(null=True)
    card_exp_month = SmallIntegerField(null=True)
    card_exp_year = SmallIntegerField(null=True)
    sepa_mandate = CharField(null=True)
    iban_masked = CharField(null=True)
    status = CharField(default=ACTIVE, index=True)
    created_at = UTCDateTimeField()

    class Meta:
        indexes = ((("seller", "invoice_number"), True),)

    if TYPE_CHECKING:
        seller_id: int  # peewee's accessor for the foreign key's raw value
        installments: ModelSelect["Installment"]
        plan_changes: ModelSelect["PlanChange"]


class Installment(BaseModel):
    SCHEDULED = "scheduled"  # not charged yet: a confirmed plan change still applies to it
    OPEN = "open"  # being charged or in dunning
    PAID = "paid"
    HANDED_OFF = "handed_off"

    # Its index is (order, number)'s, which starts with it: one of its own only added to each write (migration 0021).
    order = ForeignKeyField(Order, backref="installments", on_delete="CASCADE", index=False)
    number = IntegerField()
    due_at = UTCDateTimeField(index=True)
    amount = MoneyField()
    status = CharField(default=SCHEDULED, index=True)
    paid_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("order", "number"), True),)

    if TYPE_CHECKING:
        order_id: int  # peewee's accessor for the foreign key's raw value
        attempts: ModelSelect["ChargeAttempt"]


# The tick reads the scheduled installments in due order, a batch at a time (billing.plans): only those, which a
# million plans keep few of at any moment, since paid ones are most (migration 0015).
Installment.add_index(
    Installment.index(
        Installment.due_at, Installment.id, name="installment_due_scheduled", where=SQL("status = 'scheduled'")
    )
)


class ChargeAttempt(BaseModel):
    AUTOMATIC = "automatic"
    CUSTOMER = "customer"
    RENEWAL = "renewal"

    SCHEDULED = "scheduled"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    # Its index is (installment, kind, number)'s, which starts with it (migration 0021).
    installment = ForeignKeyField(Installment, backref="attempts", on_delete="CASCADE", index=False)
    # Counted per kind: automatic 1-3, the renewal 4, customer-initiated charges 1, 2, … on their own.
    number = IntegerField()
    kind = CharField(default=AUTOMATIC)
    idempotency_key = CharField(unique=True)
    due_at = UTCDateTimeField(index=True)
    status = CharField(default=SCHEDULED, index=True)
    amount = MoneyField()
    requested_at = UTCDateTimeField(null=True)
    reference = CharField(null=True, index=True)
    failure_code = CharField(null=True)
    failure_message = TextField(null=True)
    # The gateway's advice on a decline (Stripe's advice_code), when it gives one.
    advice_code = CharField(null=True)
    settled_at = UTCDateTimeField(null=True)
    # R10: the method a customer's charge was asked with, kept here until it succeeds (then it becomes the
    # order's): a declined card must never replace the card on file. None: the order's method at claim time.
    method = CharField(null=True)  # card | sepa
    card_token = CharField(null=True)
    card_brand = CharField(null=True)
    card_last4 = CharField(null=True)
    card_exp_month = SmallIntegerField(null=True)
    card_exp_year = SmallIntegerField(null=True)
    sepa_mandate = CharField(null=True)
    iban_masked = CharField(null=True)

    class Meta:
        indexes = ((("installment", "kind", "number"), True),)

    if TYPE_CHECKING:
        installment_id: int  # peewee's accessor for the foreign key's raw value


# What the charge jobs claim (billing.charging.due_attempts): the scheduled attempts by due time, and the ones in
# flight by the time they were sent, each a small part of a table that keeps every attempt ever made.
ChargeAttempt.add_index(
    ChargeAttempt.index(ChargeAttempt.due_at, name="charge_attempt_due_scheduled", where=SQL("status = 'scheduled'"))
)
ChargeAttempt.add_index(
    ChargeAttempt.index(
        ChargeAttempt.requested_at, name="charge_attempt_sent_in_flight", where=SQL("status = 'in_flight'")
    )
)


class PlanChange(BaseModel):
    """R3, R4: a new amount for the remaining installments, waiting for the customer's consent."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # a newer change replaced it: its link no longer works

    order = ForeignKeyField(Order, backref="plan_changes", on_delete="CASCADE")
    old_amount = MoneyField()
    new_amount = MoneyField()
    proposed_at = UTCDateTimeField()
    expires_at = UTCDateTimeField(index=True)
    status = CharField(default=PENDING, index=True)
    decided_at = UTCDateTimeField(null=True)
    reminded_at = UTCDateTimeField(null=True)  # R15

    if TYPE_CHECKING:
        order_id: int  # peewee's accessor for the foreign key's raw value


class GatewayEvent(BaseModel):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"  # understood, changes nothing (a duplicate outcome, a failure after payment)
    UNMATCHED = "unmatched"  # names an order or installment we do not know: kept for operators
    FAILED = "failed"  # its application raised: note holds the error, next_try_at the retry (None: given up)

    webhook_id = CharField(unique=True)
    type = CharField()
    body = TextField()
    received_at = UTCDateTimeField()
    status = CharField(default=RECEIVED, index=True)
    note = TextField(null=True)
    processed_at = UTCDateTimeField(null=True)
    tries = IntegerField(default=0)  # failed applications so far
    next_try_at = UTCDateTimeField(null=True, index=True)
    # Set while a worker holds the received event (claimed()); a killed worker's claim lapses at this time.
    claimed_until = UTCDateTimeField(null=True)


class CollectionCase(BaseModel):
    order = ForeignKeyField(Order, backref="collection_cases", unique=True, on_delete="CASCADE")
    reason = TextField()
    opened_at = UTCDateTimeField()
    handed_off_at = UTCDateTimeField(null=True)
    handed_off_amount = MoneyField(null=True)
    handed_off_installments = JSONField(null=True)  # installment numbers
    delivered_at = UTCDateTimeField(null=True)
    delivery_attempts = IntegerField(default=0)
    next_delivery_at = UTCDateTimeField(null=True, index=True)
    last_delivery_error = TextField(null=True)


class WebhookEndpoint(BaseModel):
    """A seller's own system, which hears of Tranche's events (SPEC: seller webhook endpoints)."""

    seller = ForeignKeyField(Seller, backref="webhook_endpoints", on_delete="CASCADE")
    url = CharField(max_length=2000)
    secret = CharField()  # whsec_…: signs every delivery; the seller reads it once, when registering
    created_at = UTCDateTimeField()
    failing_since = UTCDateTimeField(null=True)  # the first failure since the last delivery that went through
    disabled_at = UTCDateTimeField(null=True)

    if TYPE_CHECKING:
        seller_id: int  # peewee's accessor for the foreign key's raw value


class Outbox(BaseModel):
    """A message to send, written in the transaction of the fact it reports; a job sends it."""

    EMAIL = "email"
    SLACK = "slack"
    WEBHOOK = "webhook"  # an event for a seller's endpoint: the recipient is the endpoint's id

    channel = CharField(default=EMAIL)
    template = CharField()
    recipient = CharField()
    language = CharField(default="en")
    context = JSONField()
    # One message per fact: the key names the fact (template and the row it reports on).
    dedupe_key = CharField(unique=True)
    created_at = UTCDateTimeField()
    sent_at = UTCDateTimeField(null=True, index=True)
    claimed_until = UTCDateTimeField(null=True)
    attempts = IntegerField(default=0)
    next_try_at = UTCDateTimeField(index=True)
    last_error = TextField(null=True)

    # How long a sender holds a message: another may take it over after, should the first have died.
    HOLD = dt.timedelta(minutes=5)

    @classmethod
    def _take(cls, rows: "ModelSelect[Outbox]", now: dt.datetime) -> list[int]:
        """Claim the unsent messages among `rows` that no other sender holds; returns their ids."""
        unheld = rows.where(cls.sent_at.is_null(), cls.claimed_until.is_null() | (cls.claimed_until < now))
        return claimed(unheld, {cls.claimed_until: now + cls.HOLD, cls.attempts: cls.attempts + 1})

    @classmethod
    def claim(cls, message_id: int, now: dt.datetime) -> bool:
        """Take an unsent message for sending, unless another sender holds it; True when taken."""
        return bool(cls._take(cls.select(cls.id).where(cls.id == message_id), now))

    @classmethod
    def claim_due(cls, by: dt.datetime, now: dt.datetime, limit: int) -> list["Outbox"]:
        """Take up to `limit` of the unsent messages due by `by` that no other sender holds, oldest first."""
        ids = cls._take(cls.select(cls.id).where(cls.next_try_at <= by).order_by(cls.id).limit(limit), now)
        return list(cls.select().where(cls.id.in_(ids)).order_by(cls.id)) if ids else []

    # A sender records each message in its own statement the moment the peer answered, never failing for SQLite's
    # write lock (yielding_write): a job failing after the peer took the message would send it again.

    @classmethod
    def record_sent(cls, message_id: int, now: dt.datetime, note: str | None = None) -> None:
        """The message sent, or with `note` given up on (why)."""
        yielding_write(lambda: update_row(cls, message_id, sent_at=now, claimed_until=None, last_error=note))

    @classmethod
    def record_failure(cls, message_id: int, next_try_at: dt.datetime, error: object) -> None:
        """The message not sent this time, tried again at `next_try_at`."""
        failure = {"claimed_until": None, "next_try_at": next_try_at, "last_error": str(error)[:2000]}
        yielding_write(lambda: update_row(cls, message_id, **failure))


class SandboxCharge(BaseModel):
    """The sandbox gateway's own ledger: one charge per idempotency key, as a real gateway keeps."""

    idempotency_key = CharField(unique=True)
    reference = CharField(unique=True)
    order_id = IntegerField()
    installment = IntegerField()
    amount = MoneyField()
    currency = CharField()
    method = CharField()
    failure_code = CharField(null=True)
    occurred_at = UTCDateTimeField()


class SlackLink(BaseModel):
    """A Slack workspace linked to one seller (R11): its channel hears of the seller's orders, and its users act
    on that seller's orders only."""

    seller = ForeignKeyField(Seller, backref="slack_links", unique=True, on_delete="CASCADE")
    team_id = CharField(unique=True)
    channel_id = CharField()
    # When set, only these Slack user ids may renew or hand off; everyone in the workspace may look.
    allowed_user_ids = JSONField(null=True)
    linked_at = UTCDateTimeField()

    if TYPE_CHECKING:
        seller_id: int  # peewee's accessor for the foreign key's raw value


class SlackInstallation(BaseModel):
    """A workspace's OAuth install (its bot token and scopes), kept for bolt's installation store; newest wins."""

    client_id = CharField()
    enterprise_id = CharField(null=True)
    team_id = CharField(null=True)
    user_id = CharField(null=True)
    is_enterprise_install = BooleanField(default=False)
    installation = JSONField()  # slack_sdk's Installation.to_dict_for_copying(), times as ISO strings
    installed_at = UTCDateTimeField()

    class Meta:
        indexes = ((("client_id", "enterprise_id", "team_id", "installed_at"), False),)


class SlackInstallGrant(BaseModel):
    """A seller's one-time "Add to Slack" link: its secret is the OAuth state that ties the install to the seller."""

    seller = ForeignKeyField(Seller, backref="slack_install_grants", on_delete="CASCADE")
    state_hash = CharField(unique=True)  # sha256 of the state: the secret itself is never stored
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)


class SlackMessage(BaseModel):
    """A Slack message that waits for an order's outcome (it shows buttons, or says the outcome follows): a channel
    message (channel_id, ts) or a command's ephemeral answer (response_url). Once the outcome is known it is
    updated in place, so no stale button stays."""

    seller = ForeignKeyField(Seller, backref="slack_messages", on_delete="CASCADE")
    order = ForeignKeyField(Order, backref="slack_messages", on_delete="CASCADE")
    channel_id = CharField(null=True)
    ts = CharField(null=True)
    response_url = TextField(null=True)
    blocks = JSONField()  # as shown, buttons left out: the update adds the outcome to them
    created_at = UTCDateTimeField()
    settled_at = UTCDateTimeField(null=True, index=True)

    class Meta:
        indexes = ((("channel_id", "ts"), True),)


class SlackRequest(BaseModel):
    """A Slack request acted on (a command's or click's trigger, an event's id, a submitted form): the row, not
    Redis, makes Slack's retry of it act no more, even after a Redis restart."""

    key = CharField(unique=True)
    seen_at = UTCDateTimeField(index=True)


class Clock(BaseModel):
    """Outside production, how far the one clock every process reads runs ahead of the wall clock (`flask clock`):
    a row, so the web app, the workers and the CLI all travel together. No row: the wall clock."""

    offset_us = BigIntegerField()


class Heartbeat(BaseModel):
    """When a process of the Procfile was last seen doing its work (the tick's job, each run), on the wall clock:
    readiness and `flask status` say it is missing when it is older than they allow."""

    name = CharField(unique=True)
    seen_at = UTCDateTimeField()


MODELS = [
    Clock,
    Heartbeat,
    Seller,
    Product,
    Customer,
    Order,
    Installment,
    ChargeAttempt,
    PlanChange,
    GatewayEvent,
    CollectionCase,
    Outbox,
    SandboxCharge,
    SlackLink,
    SlackInstallation,
    SlackInstallGrant,
    SlackMessage,
    SlackRequest,
    WebhookEndpoint,
]


def update_row(model: type[BaseModel], row_id: int, **values: Any) -> int:
    """UPDATE one row by id, writing `values` (by field name); the rows changed (0 or 1)."""
    return _run_built_once("update", model, values, row_id)


def unless_taken(query: Insert) -> Insert:
    """`query`, an INSERT, leaving out each row whose unique value a row holds already, and only those: on SQLite,
    peewee's on_conflict_ignore() is INSERT OR IGNORE, which as silently leaves out a row missing a required value,
    as if it were a duplicate (an event answered "duplicate" and lost)."""
    return query.on_conflict("NOTHING")


def insert_new(model: type[BaseModel], **values: Any) -> int:
    """INSERT a row of `values` (by field name; a field left out takes its default, as peewee's insert gives it) unless
    a row holds one of its unique values already; the rows inserted (0 or 1)."""
    defaults = {
        field.name: field.default() if callable(field.default) else field.default
        for field in model._meta.sorted_fields
        if field.default is not None and field.name not in values
    }
    return _run_built_once("insert", model, {**defaults, **values})


def _run_built_once(kind: str, model: type[BaseModel], values: dict[str, Any], *row_id: int) -> int:
    """For the statements run once per webhook, event or email: peewee builds a statement's SQL anew each time, which
    cost more than running it (bench/: 0.21 ms an UPDATE against 0.09), so its SQL is built by peewee once per
    table and set of fields."""
    fields = model._meta.fields
    sql, names = _sql_built_once(kind, model, tuple(values), db.obj)
    cursor = db.execute_sql(sql, [*(fields[name].db_value(values[name]) for name in names), *row_id])
    return int(cursor.rowcount)


@lru_cache(maxsize=256)
def _sql_built_once(
    kind: str, model: type[BaseModel], names: tuple[str, ...], _database: object
) -> tuple[str, list[str]]:
    """The SQL of update_row or insert_new, by the database it runs on (its placeholders and quotes), and the fields
    in the order of its placeholders: peewee's own, each field set to its position in `names`, which peewee's SQL
    may list in another order."""
    positions = {name: Value(position, converter=False) for position, name in enumerate(names)}
    if kind == "update":
        sql, params = model.update(positions).where(model.id == 0).sql()
    else:  # every default given by insert_new: none of peewee's, computed once here, stays in the SQL
        sql, params = unless_taken(model.insert(positions)).returning().sql()  # no RETURNING: a rowcount
    return str(sql), [names[position] for position in params[: len(names)]]


def lock(model: type[BaseModel], row_id: int) -> None:
    """Inside a transaction, hold the row until it ends, so two writers of the same order take turns.

    PostgreSQL locks the row; SQLite's IMMEDIATE transaction (see transaction()) already holds the database."""
    if db.for_update:
        model.select(model.id).where(model.id == row_id).for_update().get()


def hold(rows: "ModelSelect[Any]") -> None:
    """Inside a transaction, hold the rows `rows` selects until it ends: lock, for rows named otherwise than by id."""
    if db.for_update:
        list(rows.for_update())


def skipping_locked(rows: "ModelSelect[Any]", of: type[BaseModel] | None = None) -> "ModelSelect[Any]":
    """Inside a transaction: `rows`, held until it ends, leaving out those another transaction holds (FOR UPDATE
    SKIP LOCKED, of the table `of` when rows joins others), so claims side by side take different rows; SQLite's
    IMMEDIATE transaction already holds the database (see transaction())."""
    return rows.for_update(of=of, skip_locked=True) if db.for_update else rows


def claimed(rows: "ModelSelect[Any]", claim: dict[Any, Any]) -> list[int]:
    """Take the rows `rows` selects (ids, with a limit), writing `claim` to them (a time they are held until);
    returns their ids.

    Any number of workers on any number of machines claim side by side: on PostgreSQL a claim skips the rows
    another claim is taking (FOR UPDATE SKIP LOCKED) instead of waiting for it; SQLite's IMMEDIATE transaction
    makes claims take turns. `rows` must leave out rows held until later than now, so that the claims of a
    killed worker come back when their time passes."""
    model = rows.model
    with transaction():
        ids = [row.id for row in skipping_locked(rows)]
        if ids:
            model.update(claim).where(model.id.in_(ids)).execute()
    return ids


def transaction() -> AbstractContextManager[object, bool | None]:
    """One use case, all or nothing. SQLite takes its write lock up front so two writers never deadlock."""
    if _whole.get():
        return nullcontext()
    if isinstance(db.obj, SqliteDatabase) and not db.in_transaction():
        return _sqlite_writing()
    return db.atomic()  # on SQLite inside a transaction: a savepoint, under the lock the outermost one holds


# Set inside whole_transaction(): the transactions begun within it are part of it.
_whole: ContextVar[bool] = ContextVar("whole", default=False)


@contextmanager
def whole_transaction() -> Iterator[None]:
    """A transaction whose nested ones (each rule's own) are part of it rather than savepoints, two statements
    fewer each: for a batch that, should any part of it fail, is rolled back whole and done again another way."""
    with transaction():
        whole = _whole.set(True)
        try:
            yield
        finally:
            _whole.reset(whole)


def one_write() -> AbstractContextManager[object, bool | None]:
    """Around a single statement that writes, all or nothing by itself: on PostgreSQL nothing, since a transaction
    would only add BEGIN's and COMMIT's round trips (two of a webhook's four, bench/webhooks.py); on SQLite a
    transaction, so that the statement waits its turn with the other writers rather than in SQLite's polling wait."""
    return transaction() if isinstance(db.obj, SqliteDatabase) else nullcontext()


def yielding_write(write: Callable[[], _V]) -> _V:
    """A single statement that writes, from a worker, after the fact it records happened (a message sent): on SQLite
    first in SQLite's own wait, whose polling lets the writers taking turns on the lock file (a webhook) go first, for
    YIELDING_FOR at most; then in its turn on the lock file, however long the writers before it take, so that the job
    never fails for it. Taking its turn at once cut the webhooks accepted beside the workers by a sixth (bench/);
    SQLite's wait alone may lose to them for its whole busy timeout each time, past the claim of a batch of 100."""
    if not isinstance(db.obj, SqliteDatabase) or db.in_transaction():
        return write()
    try:
        with _sqlite_waiting(YIELDING_FOR):
            return write()
    except OperationalError as error:
        if "database is locked" not in str(error):
            raise
    with transaction():
        return write()


YIELDING_FOR = 0.5  # seconds


@contextmanager
def _sqlite_waiting(seconds: float) -> Iterator[None]:
    """SQLite's own wait for its write lock cut to `seconds`, on this connection, for the statements within."""
    db.execute_sql(f"PRAGMA busy_timeout = {round(seconds * 1000)}")
    try:
        yield
    finally:
        db.execute_sql(f"PRAGMA busy_timeout = {round(SQLITE_BUSY_TIMEOUT * 1000)}")


@contextmanager
def _sqlite_writing() -> Iterator[object]:
    """SQLite's write lock, taken in turn: writers that find it held wait in the kernel on a lock file beside the
    database, and the one woken takes it at once. SQLite's own wait polls, sleeping up to 100 ms between tries,
    so a worker committing events back to back would keep it from every webhook for seconds."""
    with open(f"{db.obj.database}-writer", "a") as turn:  # a file of its own per writer: threads take turns too
        fcntl.flock(turn, fcntl.LOCK_EX)
        with db.atomic("IMMEDIATE") as atomic:
            yield atomic
