"""The API's request and response models, the one description of its shapes: they validate every body and
query, answers are checked against them, and /api/v1/openapi.json is produced from them (api/openapi.py).

What a value must look like is said here in the document's terms, so that the document refuses exactly what the
API refuses; what a value must be (a positive amount, a currency in use, a time the rules can work with) is a
rule of billing/, which the validators call. Refusals that depend on rows or on the clock (an unknown product, an
expired card, a due date long past) are the rules' own, answered 409 by the views.
"""

import datetime as dt
import re
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    RootModel,
    Tag,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from billing import values
from billing.errors import InvalidInput
from billing.money import CURRENCIES, MAXIMUM_AMOUNT, currency_code, parse_amount
from billing.plans import FIRST_DUE_AT_MOST_BACK, INSTALLMENTS, INTERVALS, MAX_INSTALLMENTS, SUBSCRIPTION
from billing.reminders import REMINDER_DAYS_MAX
from billing.search import MAX_PAGE_SIZE, PAGE_SIZE
from models import ChargeAttempt
from models import Installment as InstallmentRow
from models import Order as OrderRow

LANGUAGES = ("fr", "de", "en")
ZONES = tuple(sorted(available_timezones()))
ORDER_STATUSES = tuple(OrderRow.STATUSES)
INSTALLMENT_STATUSES = (InstallmentRow.SCHEDULED, InstallmentRow.OPEN, InstallmentRow.PAID, InstallmentRow.HANDED_OFF)
ATTEMPT_KINDS = (ChargeAttempt.AUTOMATIC, ChargeAttempt.RENEWAL, ChargeAttempt.CUSTOMER)
ATTEMPT_STATUSES = (
    ChargeAttempt.SCHEDULED,
    ChargeAttempt.IN_FLIGHT,
    ChargeAttempt.SUCCEEDED,
    ChargeAttempt.FAILED,
    ChargeAttempt.CANCELLED,
)


def _invalid(message: str) -> PydanticCustomError:
    # The message goes in the context: a template would read braces in it (a value the client sent) as fields.
    return PydanticCustomError("invalid", "{message}", {"message": message})


# --- the document's patterns, derived from the rules they describe ----------------------------------------


def _class(codes: list[int]) -> str:
    """A regular-expression class body naming `codes` (sorted), in ranges of \\uXXXX (alike in ECMA-262, Python
    and Rust)."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


@cache
def _characters() -> tuple[list[int], list[int]]:
    """The characters of an API text: those of the Basic Multilingual Plane a stored text may hold
    (billing.values.control_character), apart from the spaces str.strip() removes, and those spaces.

    Past the BMP a pattern would have to name every unassigned code point to agree with the rule, which makes it
    too long to generate values from: the API takes no character there."""
    other, spaces = [], []
    for code in range(0x10000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or values.control_character(char) is not None:
            continue
        (spaces if char.isspace() else other).append(code)
    return other, spaces


@cache
def text_pattern() -> str:
    """A text the API takes: its characters, one at least not a space."""
    other, spaces = _characters()
    return f"^[{_class(spaces)}]*[{_class(other)}][{_class(sorted(other + spaces))}]*$"


@cache
def search_pattern() -> str:
    """A search the API takes (billing.search): empty, or something left once stripped of spaces and a leading '#'."""
    other, spaces = _characters()
    space, anything = _class(spaces), _class(sorted(other + spaces))
    not_hash = _class([code for code in other if code != ord("#")])
    # After the spaces: a character but '#', or '#'s followed by a character or by spaces and a character.
    return f"^(?:[{space}]*(?:[{not_hash}]|#+(?:[{not_hash}]|[{space}]+[{_class(other)}]))[{anything}]*)?$"


# An amount parse_amount takes, written out: at most six digits before the point and two after it, more than 0,
# at most MAXIMUM_AMOUNT (tests/test_api_document.py checks that the two agree).
AMOUNT_PATTERN = (
    r"^(?:100000(?:\.0{1,2})?"
    r"|(?:0?[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}|000[1-9][0-9]{0,2}|0000[1-9][0-9]?|00000[1-9])(?:\.[0-9]{1,2})?"
    r"|0{1,6}\.(?:0[1-9]|[1-9][0-9]?))$"
)
# RFC 3339 with its offset, in the years whose every instant lies within the rules' range (billing.values).
TIME_PATTERN = (
    r"^20(?:0[1-9]|[1-8][0-9]|9[0-8])-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
_TIME = re.compile(TIME_PATTERN)
MONEY_PATTERN = r"^[0-9]{1,9}\.[0-9]{2}$"


# --- request values ------------------------------------------------------------------------------------


# Marks the schemas of texts, which api/openapi.py points at the one Text schema and its long pattern (pydantic
# cannot refer to a schema it does not define itself).
TEXT_MARK = "x-text"


def _stored_text(value: str) -> str:
    if (char := values.control_character(value)) is not None:
        raise _invalid(f"must not contain control characters (found U+{ord(char):04X})")
    if not re.fullmatch(text_pattern(), value):
        raise _invalid("must be a text that is not blank, in characters of the Basic Multilingual Plane")
    return value.strip()


def Text(max_length: int, **schema: Any) -> Any:  # noqa: N802 (a type, spelt like one)
    """A non-blank string of at most `max_length` characters without control characters, taken stripped."""
    return Annotated[
        str,
        Field(max_length=max_length),
        AfterValidator(_stored_text),
        WithJsonSchema({"type": "string", "maxLength": max_length, TEXT_MARK: True, **schema}),
    ]


def _email_address(value: str) -> str:
    try:
        values.email_address(value)
    except EmailNotValidError as error:
        raise _invalid(f"must be an email address like name@example.com: {error}") from None
    return value


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# The domains email-validator refuses whatever it is told (.test, .local, …): written out for the document.
SPECIAL_USE_DOMAIN = f"[@.](?:{'|'.join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)})$"
Email = Annotated[
    str,
    Field(max_length=254),
    AfterValidator(_stored_text),
    AfterValidator(_email_address),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 254,
            "format": "email",
            "not": {"pattern": SPECIAL_USE_DOMAIN},
            "description": "no special-use domain (RFC 6761: .test, .local, …)",
            TEXT_MARK: True,
        }
    ),
]


def _rule(check, value: Any, field: str) -> Any:
    """`check(value, field)` of billing/, its refusal said as a validation error (the field named by the API)."""
    try:
        return check(value, field)
    except InvalidInput as error:
        raise _invalid(error.message.strip()) from None


def _amount(value: Any) -> Decimal:
    # JSON numbers arrive as int or Decimal (api/openapi.py reads fractions as Decimal), never a float; what
    # counts is their value, as in the document: 1e3 is 1000 and 40.50 is 40.5, written out for the rule.
    if isinstance(value, Decimal):
        value = format(value.normalize(), "f")
    return _rule(parse_amount, value, "")


AmountInput = Annotated[
    Decimal,
    PlainValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN},
                {"type": "number", "exclusiveMinimum": 0, "maximum": int(MAXIMUM_AMOUNT), "multipleOf": 0.01},
            ],
            "description": f"More than 0 and at most {MAXIMUM_AMOUNT}, at most two decimal places, ASCII digits: "
            "'40', '40.5', '40.00' or the number 40.00. Numbers are read as decimals, never as binary floats; "
            "'1,99', '1e3', -5, ' 40' or '３０' are refused.",
            "examples": ["40.00"],
        }
    ),
]


def _currency(value: Any) -> str:
    return _rule(currency_code, value, "")


CurrencyInput = Annotated[
    str,
    PlainValidator(_currency),
    WithJsonSchema(
        {
            "enum": sorted(CURRENCIES),
            "description": "An ISO 4217 code that is legal tender today (CLDR, through Babel)",
            "examples": ["EUR"],
        }
    ),
]


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not _TIME.match(value):
        raise _invalid("must be an ISO 8601 time with its offset, like 2027-01-31T09:00:00+01:00")
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _invalid("must be an ISO 8601 time with its offset, like 2027-01-31T09:00:00+01:00") from None
    if not values.time_in_range(at):
        raise _invalid(f"must lie from {values.EARLIEST:%Y-%m-%d} to before {values.LATEST:%Y-%m-%d} (UTC)")
    return at.astimezone(dt.UTC)


TimeInput = Annotated[
    dt.datetime,
    PlainValidator(_time),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": TIME_PATTERN,
            "description": "with its UTC offset; default now; at most "
            f"{FIRST_DUE_AT_MOST_BACK.total_seconds() / 3600:g} hours back, in the years 2001 to 2098. Monthly plans "
            "keep its day of month in the seller's time zone (31 Jan, 28 Feb, 31 Mar).",
            "examples": ["2027-01-31T09:00:00+01:00"],
        }
    ),
]


def _integral(value: Any) -> Any:
    """A JSON number such as 781.0 is the integer 781, in the document as in the API."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_integral)]
# The constraints before the validator, or pydantic writes them into the document as they are ("ge": 1).
Id = Annotated[int, Field(ge=1, le=values.MAX_ID), BeforeValidator(_integral)]


def _digits(value: Any) -> Any:
    """A query's whole number, written in ASCII digits only (int() would read '٣' as 3)."""
    number = values.whole_number(value) if isinstance(value, str) else None
    if number is None:
        raise _invalid("must be a whole number written in digits 0-9, like 12")
    return number


def _search(q: str | None) -> str | None:
    """None for an empty search, which lists every order; else a search billing.search can run."""
    if not q:
        return None
    # fullmatch: `$` alone would let a final line break through.
    if len(q) > 200 or not re.fullmatch(search_pattern(), q):
        raise _invalid(
            "must name an order: its id, its invoice number or its customer's name, without control "
            "characters, in at most 200 characters"
        )
    return q


class Input(BaseModel):
    """A request's part: no field it does not name (422 naming the stranger), no value of another JSON type."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NewProduct(Input):
    name: Text(200)
    notification_email: Email
    support_email: Email | None = Field(
        None, description="Reply-To of the customers' emails and contact on their pages; default: the seller's email"
    )
    sepa_retry: bool = Field(
        False,
        description="R16: a SEPA debit that fails for insufficient funds is debited once more 7 days later, before "
        "the order goes to collections",
    )
    # The bounds before the validator: after it, pydantic writes them as unknown keys rather than JSON Schema's.
    reminder_days: Annotated[int, Field(ge=1, le=REMINDER_DAYS_MAX), BeforeValidator(_integral)] | None = Field(
        None, description="R14: the customer is reminded this many days before each installment; default: never"
    )


class SellerSettings(Input):
    """What a seller changes of their own settings; a field left out stays as it is."""

    language: Literal[LANGUAGES] | None = Field(None, description="of your emails")
    timezone: Literal[ZONES] | None = Field(
        None, description="IANA time zone: the times you read, and your digest's 09:00", examples=["Europe/Berlin"]
    )
    digest: bool | None = Field(
        None, description="R17: every morning at 09:00, the day's figures in your linked Slack channel"
    )


# 1 to 65535, as a pattern the document can carry: a port beyond it is no address requests could ever reach.
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"


class NewWebhookEndpoint(Input):
    url: Annotated[str, Field(max_length=2000, pattern=rf"^https?://[A-Za-z0-9.-]+(:{PORT})?(/[!-~]*)?$")] = Field(
        description="Where Tranche POSTs its events, signed per Standard Webhooks",
        examples=["https://erp.example/tranche"],
    )


class NewCustomer(Input):
    name: Text(200)
    email: Email
    language: Literal[LANGUAGES] = Field("en", description="of the customer's emails")


class CardInput(Input):
    """A card past its expiry month (exp_month/exp_year before this month) is refused (409)."""

    type: Literal["card"]
    number: Text(30, description="tokenized by the gateway, never stored")
    exp_month: Whole = Field(ge=1, le=12)
    exp_year: Whole = Field(ge=2000, le=2099)


class SepaInput(Input):
    type: Literal["sepa"]
    iban: Text(42)


class PaymentMethodToken(Input):
    """With GATEWAY=stripe: the customer's Stripe PaymentMethod, which Tranche attaches to their Stripe Customer
    (made, or reused from an earlier order of the same email). One Stripe refuses is refused (409)."""

    type: Literal["card", "sepa"]
    token: str = Field(pattern=r"^pm_[A-Za-z0-9]{1,250}$", description="a Stripe PaymentMethod id")


def _payment_method_kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    return "token" if "token" in value else value.get("type")


PaymentMethodInput = Annotated[
    Annotated[CardInput, Tag("card")] | Annotated[SepaInput, Tag("sepa")] | Annotated[PaymentMethodToken, Tag("token")],
    Discriminator(
        _payment_method_kind,
        custom_error_type="payment_method_type",
        custom_error_message="type must be card or sepa",
        custom_error_context={"discriminator": "type"},
    ),
    Field(description="Card data or an IBAN with the sandbox gateway; a Stripe PaymentMethod with GATEWAY=stripe."),
]


class _OrderInput(Input):
    product_id: Id
    customer: NewCustomer
    invoice_number: Text(100, description="unique per seller")
    interval: Literal[INTERVALS]
    amount: AmountInput
    currency: CurrencyInput = Field("EUR")
    first_due_at: TimeInput | None = None
    payment_method: PaymentMethodInput


class InstallmentPlan(_OrderInput):
    plan: Literal[INSTALLMENTS]
    installment_count: Whole = Field(ge=2, le=MAX_INSTALLMENTS)


class Subscription(_OrderInput):
    """Open-ended: it has no installment_count."""

    plan: Literal[SUBSCRIPTION]


class NewOrder(RootModel[Annotated[InstallmentPlan | Subscription, Field(discriminator="plan")]]):
    """An installment plan or a subscription, with its customer and payment method."""


# pydantic names the member of a tagged union an error lies in (payment_method.card.number): not a field.
UNION_TAGS = {(): (INSTALLMENTS, SUBSCRIPTION), ("payment_method",): ("card", "sepa", "token")}


class NewPlanChange(Input):
    amount: AmountInput
    installment_count: Whole | None = Field(None, description="refused if it differs: the count is fixed")
    interval: Literal[INTERVALS] | None = Field(None, description="refused if it differs: the interval is fixed")


# A query parameter left out is no parameter: its schema says no default (null is no string).
ABSENT = Field(None, json_schema_extra=lambda schema: schema.pop("default"))


class OrderQuery(Input):
    q: Annotated[
        str | None,
        AfterValidator(_search),
        WithJsonSchema(
            {
                "type": "string",
                "maxLength": 200,
                "pattern": search_pattern(),
                "description": "an order id, part of a customer's name or an invoice number; empty: all orders",
            }
        ),
    ] = ABSENT
    status: Annotated[
        Literal[ORDER_STATUSES] | None,
        WithJsonSchema({"enum": list(ORDER_STATUSES), "description": "only the orders in this status"}),
    ] = ABSENT
    limit: Annotated[
        int,
        BeforeValidator(_digits),
        Field(ge=1, le=MAX_PAGE_SIZE),
        WithJsonSchema(
            {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_PAGE_SIZE,
                "default": PAGE_SIZE,
                "description": "orders per page",
            }
        ),
    ] = PAGE_SIZE
    starting_after: Annotated[
        Id | None,
        BeforeValidator(_digits),
        WithJsonSchema(
            {
                "type": "integer",
                "minimum": 1,
                "maximum": values.MAX_ID,
                "description": "the id of the last order of the page before: one of yours",
            }
        ),
    ] = ABSENT


# --- answers ---------------------------------------------------------------------------------------------
# They check what api/serialize.py produces: every field required (null where it may be), none undocumented.


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


Time = Annotated[str, Field(json_schema_extra={"format": "date-time", "description": "UTC, ISO 8601"})]
Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["30.00"])]
TimeZone = Annotated[
    str, Field(description="The seller's IANA time zone, for showing the UTC times", examples=["Europe/Berlin"])
]
EmailAddress = Annotated[str, Field(json_schema_extra={"format": "email"})]


class Seller(Answer):
    """You, as Tranche knows you: your settings, and when your next digest is due (null: not opted in)."""

    id: int
    name: str
    email: EmailAddress
    language: Literal[LANGUAGES]
    timezone: TimeZone
    digest: bool
    digest_due_at: Time | None


class WebhookEndpoint(Answer):
    """An endpoint of yours: disabled_at is set once it failed for 3 days (you were told by email and in Slack)."""

    id: int
    url: str
    created_at: Time
    failing_since: Time | None
    disabled_at: Time | None


class RegisteredWebhookEndpoint(WebhookEndpoint):
    secret: str = Field(description="whsec_…: verifies each delivery's webhook-signature; shown this once")


class WebhookEndpointList(Answer):
    webhook_endpoints: list[WebhookEndpoint]


class Product(Answer):
    id: int
    name: str
    notification_email: EmailAddress
    support_email: EmailAddress | None
    sepa_retry: bool
    reminder_days: int | None


class ProductList(Answer):
    products: list[Product]


class Customer(Answer):
    name: str
    email: EmailAddress
    language: Literal[LANGUAGES]


class OrderSummary(Answer):
    id: int
    invoice_number: str
    status: Literal[ORDER_STATUSES]
    plan: Literal[INSTALLMENTS, SUBSCRIPTION]
    installment_count: int | None = Field(description="null for a subscription")
    interval: Literal[INTERVALS]
    amount: Money
    currency: str = Field(examples=["EUR"])
    customer: Customer
    created_at: Time


class CardSummary(Answer):
    type: Literal["card"]
    brand: str
    last4: str = Field(pattern=r"^[0-9]{4}$")
    exp_month: int
    exp_year: int


class SepaSummary(Answer):
    type: Literal["sepa"]
    iban: str = Field(description="masked", examples=["DE89 **** 3000"])


class Attempt(Answer):
    number: int = Field(description="automatic 1-3, renewal 4, customer charges counted apart")
    kind: Literal[ATTEMPT_KINDS]
    status: Literal[ATTEMPT_STATUSES]
    amount: Money
    due_at: Time
    settled_at: Time | None
    failure_code: str | None = Field(examples=["insufficient_funds"])
    failure_message: str | None


class Installment(Answer):
    number: int = Field(ge=1)
    due_at: Time
    amount: Money
    status: Literal[INSTALLMENT_STATUSES]
    paid_at: Time | None
    attempts: list[Attempt]


class NextAttempt(Answer):
    """The earliest scheduled attempt; while nothing is being charged, the first attempt of an active plan's next
    installment. null when nothing will be charged by itself."""

    installment: int
    number: int
    kind: Literal[ATTEMPT_KINDS]
    due_at: Time


class CollectionState(Answer):
    """listed: an open debt Tranche will not recover by itself, with that debt as it stands now. handed_off: given
    to the collection partner (when, which installments, how much; delivered_at once the partner accepted)."""

    state: Literal["listed", "handed_off"]
    reason: str
    opened_at: Time
    handed_off_at: Time | None
    installments: list[int] = Field(
        description="listed: the installment numbers due by now and unpaid; handed_off: those handed off"
    )
    amount: Money
    delivered_at: Time | None


class PlanChange(Answer):
    """A new amount for every installment not yet charged, waiting for the customer's consent within 240 hours
    (expires_at); first_due_at is the first installment it would apply to if confirmed now; reminded_at, when the
    customer was reminded, 168 hours after the proposal went unanswered (R15)."""

    id: int
    order_id: int
    status: Literal["pending", "confirmed", "declined", "expired", "superseded"]
    old_amount: Money
    new_amount: Money
    proposed_at: Time
    expires_at: Time
    first_due_at: Time | None
    reminded_at: Time | None


class ProposedPlanChange(PlanChange):
    timezone: TimeZone


class OrderProduct(Answer):
    id: int
    name: str


class ComingInstallment(Answer):
    number: int
    due_at: Time


class Order(OrderSummary):
    """The whole order: its schedule with every attempt, what comes next, and where its debt stands."""

    timezone: TimeZone
    first_due_at: Time
    product: OrderProduct
    payment_method: Annotated[CardSummary | SepaSummary, Field(discriminator="type")]
    installments: list[Installment]
    next_attempt: NextAttempt | None
    pending_change: PlanChange | None
    collections: CollectionState | None
    coming_installments: list[ComingInstallment] | None = Field(
        description="a subscription's next due dates (empty once it stopped); null for installment plans"
    )


class OrderList(Answer):
    timezone: TimeZone
    orders: list[OrderSummary]
    has_more: bool = Field(description="whether more orders follow this page")


class CollectionEntry(Answer):
    order: OrderSummary
    collection: CollectionState


class CollectionList(Answer):
    timezone: TimeZone
    collections: list[CollectionEntry]


class HandOff(CollectionEntry):
    timezone: TimeZone


class Renewal(Answer):
    order_id: int
    installment: int
    attempt: Attempt
    timezone: TimeZone


class SlackInstallLink(Answer):
    """Open it in a browser signed in to Slack: the workspace and channel chosen there are linked to you. It works
    once, within an hour."""

    url: str = Field(json_schema_extra={"format": "uri"})
    expires_at: Time


class ErrorDetail(Answer):
    code: str
    message: str
    field: str | None = Field(None, description="the field at fault; nested ones by path", examples=["customer.email"])


class Error(Answer):
    error: ErrorDetail


class InvalidDetail(Answer):
    code: Literal["invalid"]
    message: str
    field: str = Field(description="the field at fault; nested ones by path", examples=["customer.email"])


class InvalidInputError(Answer):
    error: InvalidDetail


TEXT = {
    "type": "string",
    "minLength": 1,
    "description": "Stripped of spaces around it; never blank, never with a control character (NUL, a line break…)",
}


def text_schema() -> dict:
    return {**TEXT, "pattern": text_pattern()}


# --- the events a seller's webhook endpoints receive (billing.notifications.seller_event) -----------------------


class EventData(Answer):
    order_id: int
    invoice_number: str


class PaidBy(Answer):
    attempt: int
    kind: Literal[ATTEMPT_KINDS]
    reference: str | None


class PaymentEventData(EventData):
    installment: int
    attempt: int
    kind: Literal[ATTEMPT_KINDS]
    amount: Money
    currency: str
    failure_code: str | None = Field(description="the gateway's reason (payment.failed); null once paid")
    reference: str | None = Field(
        default=None, description="the gateway's name for the charge; null or absent when it reported none"
    )
    paid_by: PaidBy | None = Field(
        default=None,
        description="payment.recovered only, when another charge had paid the installment already: that charge. "
        "The customer paid the installment twice; one of the two is to refund.",
    )


class PlanChangeEventData(EventData):
    change_id: int
    old_amount: Money
    new_amount: Money
    first_due_at: Time | None


class ListedEventData(EventData):
    reason: str


class HandedOffEventData(EventData):
    amount: Money
    currency: str
    installments: list[int]


EVENT_DATA = {
    "payment.failed": PaymentEventData,
    "payment.recovered": PaymentEventData,
    "plan.interrupted": EventData,
    "plan.completed": EventData,
    "plan_change.confirmed": PlanChangeEventData,
    "plan_change.declined": PlanChangeEventData,
    "plan_change.expired": PlanChangeEventData,
    "collections.listed": ListedEventData,
    "collections.handed_off": HandedOffEventData,
}


def event_model(event_type: str) -> type[BaseModel]:
    """The body of one event, as Standard Webhooks recommends it: its type, when its fact happened, its data."""
    name = "".join(part.capitalize() for part in re.split(r"[._]", event_type)) + "Event"
    return create_model(
        name,
        __base__=Answer,
        type=(Literal[event_type], ...),
        timestamp=(Time, ...),
        data=(EVENT_DATA[event_type], ...),
    )
