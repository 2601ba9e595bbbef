"""GET|POST /confirm/<token> (R3, R4) and GET|POST /card/<token> (R10): the customer's two pages.

GET and HEAD only show: mail scanners open links. Only a POST acts, and only with the form's signed token
(see billing.links.form_token). Every link that cannot act gets a page in the customer's language saying
why, with a 4xx status, and changes nothing.
"""

from decimal import Decimal, InvalidOperation

from flask import Blueprint, Response, jsonify, redirect, request, url_for

from billing.card_updates import check_card_update, update_card_and_charge
from billing.errors import Refused
from billing.links import CARD_UPDATE, PLAN_CHANGE, LinkExpired, LinkInvalid, form_token, form_token_valid, verify
from billing.plan_changes import (
    ChangeNotOpen,
    check_change_open,
    confirm_plan_change,
    decline_plan_change,
    first_due_at,
)
from billing.plans import PaymentMethod
from billing.retries import METHOD_GONE
from billing.sellers import DEFAULT_TIMEZONE
from billing.values import identifier
from gateways import BrowserScript, GatewayUnavailable, PaymentMethodRejected, SetupFor, get_gateway
from i18n import DEFAULT_LANGUAGE, LANGUAGES, Formats, language_of
from models import ChargeAttempt, Installment, Order, PlanChange
from pages import forms
from pages.rendering import N_, render, translate
from runtime import settings, touched, utcnow

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/pages/static")

# A page waiting for the gateway's answer reloads itself this often (seconds).
REFRESH_EVERY = 3
_DECLINED = N_("The bank declined the card.")
_UNUSABLE = N_("This card or account can no longer be charged: please give another one.")
_LOST = N_("The bank reported the card as lost or stolen.")
_REFUSED_FOR_GOOD = N_("The bank refuses every payment with this card.")
# By the gateway's failure code (the sandbox's, Stripe's decline codes).
FAILURE_REASONS = {
    "insufficient_funds": N_("There was not enough money on the account."),
    "card_declined": _DECLINED,
    "generic_decline": _DECLINED,
    "expired_card": N_("The card has expired."),
    "lost_card": _LOST,
    "stolen_card": _LOST,
    "pickup_card": _REFUSED_FOR_GOOD,
    "restricted_card": _REFUSED_FOR_GOOD,
    "fraudulent": _REFUSED_FOR_GOOD,
    "authentication_required": N_("The bank asks you to confirm the payment: use the card again and confirm it."),
    "card_velocity_exceeded": N_("The card has reached its spending limit for now."),
    "processing_error": N_("The bank could not process the payment."),
    **dict.fromkeys(METHOD_GONE, _UNUSABLE),
}
UNKNOWN_FAILURE = N_("The bank refused the payment.")
REJECTED = N_("This payment method could not be used. Please try another one.")
# Why a link cannot act, and its status: 404 for what we never signed, 410 for what is gone for good.
STATUSES = {
    "invalid": 404,
    "expired": 410,
    "confirmed": 410,
    "declined": 410,
    "superseded": 410,
    "closed": 410,
    "paid": 410,
    "handed_off": 410,
    "form": 400,
    "pending": 409,
    "unavailable": 503,
}
# The title of the page a link gets instead of acting, which the card page's script shows when its setup is refused.
TITLES = {
    "invalid": N_("This link does not work"),
    "expired": N_("This link has expired"),
    "confirmed": N_("You already confirmed this change"),
    "declined": N_("You already declined this change"),
    "superseded": N_("This proposal was replaced"),
    "closed": N_("This payment is handled by the seller"),
    "paid": N_("This installment is paid"),
    "handed_off": N_("This payment is no longer handled here"),
    "pending": N_("A payment is already in progress"),
    "form": N_("This page has expired"),
    "unavailable": N_("The payment service did not answer"),
}
PLAN_CLOSED = N_("This plan can no longer change")
POLICY = {
    "default-src": ("'none'",),
    "style-src": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
    "base-uri": ("'none'",),
}
# Beside the gateway's script, the page's own (pages/static/card.js), and its fetch of a setup from this app.
OWN_SOURCES = {"script-src": ("'self'",), "connect-src": ("'self'",)}


class LinkRefused(Exception):
    """The page a link gets instead of acting: `reason` is a key of STATUSES."""

    def __init__(self, reason: str, purpose: str, language: str, order: Order | None = None, **facts):
        super().__init__(reason)
        self.reason, self.purpose, self.language, self.order, self.facts = reason, purpose, language, order, facts

    @property
    def title(self) -> str:
        return PLAN_CLOSED if (self.reason, self.purpose) == ("closed", PLAN_CHANGE) else TITLES[self.reason]


def _content_security_policy(script: BrowserScript | None) -> str:
    policy = dict(POLICY)
    for directive, sources in (script.sources if script else {}).items():
        policy[directive] = (*OWN_SOURCES.get(directive, ()), *sources)
    return "; ".join(f"{directive} {' '.join(sources)}" for directive, sources in policy.items())


def _page(
    template: str,
    language: str,
    order: Order | None,
    status: int = 200,
    script: BrowserScript | None = None,
    **context,
) -> Response:
    timezone = order.seller.timezone if order else DEFAULT_TIMEZONE
    html = render(
        template,
        language,
        order=order,
        seller=order.seller.name if order else None,
        product=order.product.name if order else None,
        fmt=Formats(language, timezone),
        script=script,
        **context,
    )
    response = Response(html, status, content_type="text/html; charset=utf-8")
    # The token in the address is the key to the page: keep it out of caches, referrers and search engines.
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex",
            "Content-Language": language,
            "Content-Security-Policy": _content_security_policy(script),
        }
    )
    return response


@bp.errorhandler(LinkRefused)
def _refused(refused: LinkRefused):
    return _page(
        "refused.html",
        refused.language,
        refused.order,
        STATUSES[refused.reason],
        reason=refused.reason,
        purpose=refused.purpose,
        title=refused.title,
        request_url=request.base_url,
        **refused.facts,
    )


def _verified(token: str, purpose: str) -> tuple[dict, bool]:
    """The link's payload, and whether it is past its age: a used link says so even once it is old."""
    try:
        return verify(settings(), token, purpose, utcnow()), False
    except LinkExpired as expired:
        return expired.payload, True
    except LinkInvalid:
        raise LinkRefused("invalid", purpose, _browser_language()) from None


def _browser_language() -> str:
    # An unreadable link names no customer: the browser's language if we speak it, else English.
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)


def _check_form(token: str, purpose: str, language: str, order: Order) -> None:
    if not form_token_valid(settings(), token, request.form.get("form_token", ""), utcnow()):
        raise LinkRefused("form", purpose, language, order)


# --- /confirm/<token>: the customer's consent to a new amount (R3, R4) ---


def _linked_change(token: str) -> PlanChange:
    """The change the link names, bound to its order and amount; LinkRefused if it cannot be acted on."""
    payload, too_old = _verified(token, PLAN_CHANGE)
    change = PlanChange.get_or_none(PlanChange.id == payload["change"])
    try:
        amount = Decimal(str(payload.get("amount")))
    except InvalidOperation:
        amount = None
    if change is None or change.order_id != payload["order"] or change.new_amount != amount:
        raise LinkRefused("invalid", PLAN_CHANGE, _browser_language())
    touched(order=change.order_id)
    order = change.order
    language = language_of(order.customer.language)
    # Read-only, for GET and POST alike: the tick records the expiry, a page never does.
    try:
        check_change_open(change, utcnow())
    except ChangeNotOpen as shut:
        raise LinkRefused(shut.code, PLAN_CHANGE, language, order, decided_at=change.decided_at) from None
    except Refused:
        raise LinkRefused("closed", PLAN_CHANGE, language, order) from None
    if too_old:
        raise LinkRefused("expired", PLAN_CHANGE, language, order)
    return change


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    change = _linked_change(token)
    order = change.order
    language = language_of(order.customer.language)
    if request.method == "POST":
        _check_form(token, PLAN_CHANGE, language, order)
        decide = {"confirm": confirm_plan_change, "decline": decline_plan_change}.get(request.form.get("decision"))
        if decide is None:
            raise LinkRefused("form", PLAN_CHANGE, language, order)
        try:
            change = decide(change.id, utcnow())
        except ChangeNotOpen as late:
            raise LinkRefused(late.code, PLAN_CHANGE, language, order, decided_at=late.change.decided_at) from None
        except Refused:
            raise LinkRefused("closed", PLAN_CHANGE, language, order) from None
        return _page("confirm_done.html", language, change.order, change=change, first_due_at=first_due_at(change))
    return _page(
        "confirm.html",
        language,
        order,
        change=change,
        first_due_at=first_due_at(change),
        token=token,
        form_token=form_token(settings(), token, utcnow()),
    )


# --- /card/<token>: a new card or SEPA mandate, then the open installment charged at once (R10) ---


def _linked_installment(token: str) -> Installment:
    payload, too_old = _verified(token, CARD_UPDATE)
    installment = Installment.get_or_none(
        Installment.order == payload["order"], Installment.number == payload["installment"]
    )
    if installment is None:
        raise LinkRefused("invalid", CARD_UPDATE, _browser_language())
    touched(order=installment.order_id)
    if too_old and installment.status != Installment.PAID:
        raise LinkRefused("expired", CARD_UPDATE, language_of(installment.order.customer.language), installment.order)
    return installment


def _card_refused(refused: Refused, language: str, order: Order) -> LinkRefused:
    # Links are only ever sent for an open installment: one not due yet is not a link we made.
    return LinkRefused("invalid" if refused.code == "not_due" else refused.code, CARD_UPDATE, language, order)


def _check_payable(installment: Installment, language: str) -> None:
    """LinkRefused when the customer may not pay this installment now (R10); reads only."""
    try:
        check_card_update(installment.order, installment, utcnow())
    except Refused as refused:
        raise _card_refused(refused, language, installment.order) from None


def _shown_attempt(installment: Installment) -> ChargeAttempt | None:
    """The customer's own charge the page was sent back to after paying (?attempt=<id>), if it is this link's."""
    attempt_id = identifier(request.args.get("attempt"))
    if attempt_id is None:
        return None
    return ChargeAttempt.get_or_none(
        ChargeAttempt.id == attempt_id,
        ChargeAttempt.installment == installment,
        ChargeAttempt.kind == ChargeAttempt.CUSTOMER,
    )


def _schedule(installment: Installment) -> dict:
    attempts = list(installment.attempts.order_by(ChargeAttempt.due_at, ChargeAttempt.id))
    coming = [a for a in attempts if a.kind != ChargeAttempt.CUSTOMER and a.status == ChargeAttempt.SCHEDULED]
    return {
        "attempts": [a for a in attempts if a.status not in (ChargeAttempt.SCHEDULED, ChargeAttempt.CANCELLED)],
        "next_attempt": coming[0] if coming else None,
        "reasons": FAILURE_REASONS,
        "unknown_failure": UNKNOWN_FAILURE,
    }


def _posted_method(language: str, order: Order) -> str:
    method = request.form.get("method")
    if method not in ("card", "sepa"):
        raise LinkRefused("form", CARD_UPDATE, language, order)
    return method


def _setup_for(installment: Installment) -> SetupFor:
    order = installment.order
    return SetupFor(order.customer.gateway_customer_id, order.id, installment.number)


def _payment_method(method: str, installment: Installment, now) -> tuple[PaymentMethod | None, dict[str, str]]:
    """The gateway's token for the submitted card or IBAN, or for what the browser set up with the gateway's own
    script, or the errors to show beside the form's fields ("setup": beside the browser's setup)."""
    gateway = get_gateway(settings())
    if gateway.browser_setup is not None:
        setup_id = request.form.get("setup_intent", "")
        try:
            return gateway.browser_setup.finish_setup(setup_id, method, _setup_for(installment)), {}
        except PaymentMethodRejected:
            return None, {"setup": REJECTED}
    if method == "card":
        card, errors = forms.read_card(request.form, now.date())
        if errors:
            return None, errors
        try:
            return gateway.tokenize_card(card.number, card.exp_month, card.exp_year), {}
        except PaymentMethodRejected:
            return None, {"number": REJECTED}
    iban, errors = forms.read_iban(request.form)
    if errors:
        return None, errors
    try:
        return gateway.sepa_mandate(iban), {}
    except PaymentMethodRejected:
        return None, {"iban": REJECTED}


def _pay(token: str, installment: Installment, language: str):
    """Store the submitted card or mandate and charge the installment; the form again, with errors, if not."""
    order = installment.order
    now = utcnow()
    method = _posted_method(language, order)
    try:
        payment, errors = _payment_method(method, installment, now)
    except GatewayUnavailable:
        raise LinkRefused("unavailable", CARD_UPDATE, language, order) from None
    if errors:
        return _card_form(token, installment, language, None, errors, method, 422)
    try:
        attempt = update_card_and_charge(order, installment.number, payment, now)
    except Refused as refused:
        raise _card_refused(refused, language, order) from None
    # See-other to a page that follows the charge: a reload never submits the card twice.
    return redirect(url_for(".card", token=token, attempt=attempt.id), 303)


def _card_form(token, installment, language, outcome, errors=None, method=None, status=200):
    """The card page's form, under the schedule; `outcome` is the customer's failed charge it came back to."""
    setup = get_gateway(settings()).browser_setup
    return _page(
        "card.html",
        language,
        installment.order,
        status,
        script=setup.script if setup else None,
        installment=installment,
        token=token,
        outcome=outcome,
        errors=errors or {},
        method=method,
        values=request.form if request.method == "POST" else {},
        form_token=form_token(settings(), token, utcnow()),
        **_schedule(installment),
    )


@bp.route("/card/<token>", methods=["GET", "POST"])
def card(token: str):
    installment = _linked_installment(token)
    order = installment.order
    language = language_of(order.customer.language)
    posted = request.method == "POST"
    shown = None if posted else _shown_attempt(installment)
    if shown and shown.status == ChargeAttempt.SUCCEEDED:
        return _page("card_paid.html", language, order, installment=installment, attempt=shown)
    try:
        _check_payable(installment, language)
    except LinkRefused as refused:
        if refused.reason == "pending" and not posted:
            return _page("card_pending.html", language, order, installment=installment, refresh=REFRESH_EVERY)
        raise
    if posted:
        _check_form(token, CARD_UPDATE, language, order)
        return _pay(token, installment, language)
    return _card_form(token, installment, language, shown)


def _answer(body: dict, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/card/<token>/setup-intent", methods=["POST"])
def card_setup(token: str):
    """A setup of the customer's new card or mandate at the gateway, which the page's script completes with the
    gateway's own (Stripe.js): {"client_secret"} as JSON, or {"error"} in the customer's language with a 4xx
    (503 when the gateway did not answer). Asked for on submit only: a GET of the page never makes one."""
    setup = get_gateway(settings()).browser_setup
    language = _browser_language()
    try:
        if setup is None:  # the sandbox's page takes the card number itself
            raise LinkRefused("invalid", CARD_UPDATE, language)
        installment = _linked_installment(token)
        order = installment.order
        language = language_of(order.customer.language)
        _check_payable(installment, language)
        _check_form(token, CARD_UPDATE, language, order)
        method = _posted_method(language, order)
        try:
            secret = setup.start_setup(method, _setup_for(installment))
        except GatewayUnavailable:
            raise LinkRefused("unavailable", CARD_UPDATE, language, order) from None
    except LinkRefused as refused:
        return _answer({"error": translate(refused.language, refused.title)}, STATUSES[refused.reason])
    except PaymentMethodRejected:
        return _answer({"error": translate(language, REJECTED)}, 422)
    return _answer({"client_secret": secret})
