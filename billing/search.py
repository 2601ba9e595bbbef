"""R12: a seller finds an order by id, customer name (partial, any case) or invoice number."""

from peewee import fn

from models import Customer, Order, Seller

SEARCH_LIMIT = 50


def find_orders(seller: Seller, query: str) -> list[Order]:
    """The seller's own orders matching `query`, newest first; nobody else's, ever."""
    text = (query or "").strip().lstrip("#")
    if not text:
        return []
    match = (Order.invoice_number == text) | fn.LOWER(Customer.name).contains(text.lower())
    if text.isdigit():
        match |= Order.id == int(text)
    return list(
        Order.select(Order, Customer)
        .join(Customer)
        .where(Order.seller == seller, match)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(SEARCH_LIMIT)
    )
