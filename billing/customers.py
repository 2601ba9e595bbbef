"""The seller's customers as a gateway that keeps customers of its own knows them."""

from peewee import fn

from models import Customer, Seller


def gateway_customer_of(seller: Seller, email: str) -> str | None:
    """The gateway's customer an earlier order of this email at this seller was charged as: one person paying
    two orders is one customer at the gateway, with all their payment methods."""
    earlier = (
        Customer.select(Customer.gateway_customer_id)
        .where(
            Customer.seller == seller,
            fn.LOWER(Customer.email) == email.lower(),
            Customer.gateway_customer_id.is_null(False),
        )
        .order_by(Customer.id.desc())
        .first()
    )
    return earlier.gateway_customer_id if earlier else None
