"""/update-plan, its form and the "Update plan" button: R3, a new amount for the remaining installments,
which the customer confirms by email within 10 days (R4).

`/update-plan <order> <amount>` proposes at once; `/update-plan` alone, or with an order only, opens the form.
The form's answer is checked while Slack waits, so a refusal shows beside the field it is about.
"""

import json

from slack_bolt.context.respond import Respond

from billing import plan_changes
from billing.errors import BillingError, OrderNotFound, Refused
from billing.orders import find_order, order_view
from bot import blocks, parsing
from bot.listening import LATER, in_background, register_button, register_command, say, seller
from bot.once import first_time, forget
from models import Order, PlanChange, db
from runtime import utcnow


def register(app) -> None:
    register_command(app, "/update-plan", parsing.plan_change, update_plan_command)
    register_button(app, blocks.UPDATE_PLAN, open_form_button)
    app.view(blocks.UPDATE_PLAN_VIEW)(ack=submit_form, lazy=[confirm_form])


def _propose(order: Order, amount_text: str | None, count=None, interval=None) -> PlanChange:
    amount = None
    if amount_text is not None:
        amount, currency = parsing.amount(amount_text)
        if currency and currency != order.currency:
            raise Refused(f"Order {order.id} is billed in {order.currency}, not {currency}.", "currency")
    change = plan_changes.propose_plan_change(order, amount, utcnow(), installment_count=count, interval=interval)
    return change


def _proposed(change: PlanChange) -> str:
    order = change.order
    return (
        f"Order {order.id}: {blocks.money(change.new_amount, order.currency)} instead of "
        f"{blocks.money(change.old_amount, order.currency)} for the remaining installments is proposed. "
        f"{order.customer.name} is emailed a link to confirm it by "
        f"{blocks.when(change.expires_at, order.seller.timezone)}; you will hear here whether they do."
    )


def _open_form(client, trigger_id: str, order: Order | None, response_url: str | None) -> None:
    # The form's answer goes where the request came from: the command's or the button's response_url.
    metadata = json.dumps({"order_id": order.id if order else None, "response_url": response_url})
    card = order_view(order, utcnow()) if order else None
    client.views_open(trigger_id=trigger_id, view=blocks.plan_modal(card, metadata))


def update_plan_command(request: parsing.PlanChangeRequest, context, command, respond, client) -> None:
    order = find_order(seller(context), request.order, by_invoice_number=True) if request.order else None
    if order is None or (request.amount, request.installment_count, request.interval) == (None, None, None):
        _open_form(client, command["trigger_id"], order, command["response_url"])
        return
    say(respond, _proposed(_propose(order, request.amount, request.installment_count, request.interval)))


def open_form_button(ref: str, context, body, respond, client) -> None:
    _open_form(
        client, body["trigger_id"], find_order(seller(context), ref, by_invoice_number=True), body.get("response_url")
    )


def submit_form(ack, view, context) -> None:
    """Runs while Slack waits (3 s): the rule's refusal goes back into the form, next to its field."""
    metadata = json.loads(view["private_metadata"])
    values = view["state"]["values"]
    ref = str(metadata["order_id"] or values[blocks.ORDER_BLOCK]["value"]["value"] or "")
    # One proposal per form: a second submit of the same form (a double click) changes nothing more.
    submitted = f"view:{view['id']}"
    if not first_time(submitted, utcnow()):
        return ack()
    try:
        with db.connection_context():
            order = find_order(seller(context), ref, by_invoice_number=True)
            change = _propose(order, values[blocks.AMOUNT_BLOCK]["value"]["value"] or "")
            context[LATER] = _proposed(change)
    except (BillingError, parsing.Malformed) as error:
        forget(submitted)  # refused: the seller may correct the form and submit it again
        about_order = isinstance(error, OrderNotFound) and not metadata["order_id"]
        return ack(
            response_action="errors", errors={blocks.ORDER_BLOCK if about_order else blocks.AMOUNT_BLOCK: error.message}
        )
    return ack()


@in_background
def confirm_form(context, view) -> None:
    response_url = json.loads(view["private_metadata"])["response_url"]
    if context.get(LATER) and response_url:
        say(Respond(response_url=response_url), context[LATER])
