"""Signed links: one itsdangerous salt per purpose, an action field the page checks, key rotation.

The payload is readable by anyone holding the link, so it carries ids only, never personal data.
"""

from itsdangerous import URLSafeTimedSerializer

CARD_UPDATE = "card-update"
PLAN_CHANGE = "plan-change"


def _serializer(secret_keys, purpose: str) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts all: rotation appends the new key.
    return URLSafeTimedSerializer(list(secret_keys), salt=f"tranche.{purpose}")


def card_update_link(settings, order_id: int, installment: int) -> str:
    token = _serializer(settings.secret_keys, CARD_UPDATE).dumps(
        {"action": CARD_UPDATE, "order": order_id, "installment": installment}
    )
    return f"{settings.public_url}/card/{token}"


def plan_change_link(settings, change_id: int, order_id: int, new_amount: str) -> str:
    token = _serializer(settings.secret_keys, PLAN_CHANGE).dumps(
        {"action": PLAN_CHANGE, "order": order_id, "change": change_id, "amount": new_amount}
    )
    return f"{settings.public_url}/confirm/{token}"
