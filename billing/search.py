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
    # isdigit() also takes '²', which int() refuses; past 18 digits no id of ours matches (and SQLite overflows).
    if text.isdecimal() and len(text) <= 18:
        match |= Order.id == int(text)
    return list(
        Order.select(Order, Customer)
        .join(Customer)
        .where(Order.seller == seller, match)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(SEARCH_LIMIT)
    )
