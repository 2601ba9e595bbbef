"""R12: a seller finds an order by id, customer name (partial, any case, any accents) or invoice number (whole or
its start), and lists their orders a page at a time; nobody else's, ever."""

from dataclasses import dataclass

from peewee import Expression, ModelSelect

from billing.errors import InvalidInput
from billing.values import identifier
from models import Customer, Order, Seller, folded

SEARCH_LIMIT = 50
PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    orders: list[Order]
    has_more: bool


def _newest_first(seller: Seller) -> "ModelSelect[Order]":  # quoted: peewee's class takes no [] at runtime
    return (
        Order.select(Order, Customer)
        .join(Customer)
        .where(Order.seller == seller)
        .order_by(Order.created_at.desc(), Order.id.desc())
    )


def _matching(query: str) -> Expression | None:
    """The condition an order meets to be found by `query`; None for a blank query, which finds nothing."""
    text = query.strip().lstrip("#")
    if not text:
        return None
    match = Order.invoice_number.startswith(text) | Customer.name_folded.contains(folded(text))
    if (order_id := identifier(text)) is not None:
        match |= Order.id == order_id
    return match


def find_orders(seller: Seller, query: str | None) -> list[Order]:
    """The seller's own orders matching `query`, newest first, at most SEARCH_LIMIT."""
    match = _matching(query or "")
    return list(_newest_first(seller).where(match).limit(SEARCH_LIMIT)) if match is not None else []


def list_orders(
    seller: Seller,
    *,
    query: str | None = None,
    status: str | None = None,
    starting_after: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """A page of the seller's own orders, newest first: those matching `query` and in `status` when given, from
    the one after the order `starting_after` (the last of the page before)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("limit", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    if status is not None and status not in Order.STATUSES:
        raise InvalidInput("status", f"status must be one of {', '.join(Order.STATUSES)}")
    orders = _newest_first(seller)
    if query is not None:
        match = _matching(query)
        if match is None:
            raise InvalidInput("q", "q must name an order: its id, its invoice number or its customer's name")
        orders = orders.where(match)
    if status is not None:
        orders = orders.where(Order.status == status)
    if starting_after is not None:
        after = Order.get_or_none(Order.id == starting_after, Order.seller == seller)
        if after is None:
            raise InvalidInput("starting_after", f"There is no order {starting_after}.")
        orders = orders.where(
            (Order.created_at < after.created_at) | ((Order.created_at == after.created_at) & (Order.id < after.id))
        )
    found = list(orders.limit(limit + 1))
    return Page(orders=found[:limit], has_more=len(found) > limit)
