"""A seller's Slack workspace: the one-time "Add to Slack" grant that decides which seller a workspace serves,
and the link itself (a workspace serves one seller; a seller's new link replaces its old one)."""

import datetime as dt
import hashlib
import secrets
from urllib.parse import urlencode

from peewee import Expression

from models import Seller, SlackInstallGrant, SlackLink, transaction

INSTALL_PATH = "/slack/install"
# An "Add to Slack" link works once, within this time: it decides which seller sees a workspace's orders.
GRANT_LIFETIME = dt.timedelta(hours=1)


class WorkspaceTaken(Exception):
    """The workspace is linked to another seller: a workspace serves one seller."""


def link_workspace(
    seller: Seller, team_id: str, channel_id: str, now: dt.datetime, allowed_user_ids: list[str] | None = None
) -> SlackLink:
    """Link `team_id` to `seller`, its notifications to `channel_id`; a seller's new link replaces its old one."""
    with transaction():
        taken = SlackLink.get_or_none(SlackLink.team_id == team_id)
        if taken is not None and taken.seller_id != seller.id:
            raise WorkspaceTaken(f"Slack workspace {team_id} is linked to another seller (seller {taken.seller_id}).")
        # types-peewee declares Model.delete as a generic attribute, which mypy will not read through the class.
        SlackLink.delete().where(SlackLink.seller == seller).execute()  # type: ignore[misc]
        return SlackLink.create(
            seller=seller, team_id=team_id, channel_id=channel_id, allowed_user_ids=allowed_user_ids, linked_at=now
        )


def grant_hash(state: str) -> str:
    """What the database keeps of a grant's secret: whoever reads the table cannot install with it."""
    return hashlib.sha256(state.encode()).hexdigest()


def install_link(public_url: str, seller: Seller, now: dt.datetime) -> tuple[str, dt.datetime]:
    """A one-time "Add to Slack" link for `seller`, and when it expires. Only the seller (API key) or an operator
    (CLI) gets one: whoever opens it links their workspace to this seller."""
    state = secrets.token_urlsafe(32)
    expires_at = now + GRANT_LIFETIME
    SlackInstallGrant.create(seller=seller, state_hash=grant_hash(state), expires_at=expires_at)
    return f"{public_url}{INSTALL_PATH}?{urlencode({'grant': state})}", expires_at


def open_grant(state: str | None, now: dt.datetime) -> Expression:
    """Where a grant for `state` is still good: unused and not expired."""
    return (
        (SlackInstallGrant.state_hash == grant_hash(state or ""))
        & SlackInstallGrant.used_at.is_null()
        & (SlackInstallGrant.expires_at > now)
    )
