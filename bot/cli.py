"""`flask slack …`: link a seller's Slack workspace, for a single self-hosted workspace or through OAuth."""

import click
from flask.cli import AppGroup

from billing.workspaces import WorkspaceTaken, install_link, link_workspace
from models import Seller
from runtime import settings, utcnow

slack = AppGroup("slack", help="Link sellers to Slack workspaces.")


def _seller(seller_id: int) -> Seller:
    seller = Seller.get_or_none(Seller.id == seller_id)
    if seller is None:
        raise click.BadParameter(f"there is no seller {seller_id}", param_hint="--seller")
    return seller


@slack.command("link")
@click.option("--seller", "seller_id", type=int, required=True, help="The seller's id.")
@click.option("--team", required=True, help="The Slack workspace (team) id, like T0123ABCD.")
@click.option("--channel", required=True, help="The channel id for the notifications, like C0123ABCD.")
@click.option("--allow", multiple=True, help="A Slack user id allowed to renew and hand off (repeat; default all).")
def slack_link(seller_id, team, channel, allow):
    """Link a workspace to a seller (a single workspace answered with SLACK_BOT_TOKEN)."""
    try:
        link_workspace(_seller(seller_id), team.strip(), channel.strip(), utcnow(), list(allow) or None)
    except WorkspaceTaken as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Slack workspace {team} linked to seller {seller_id}; notifications go to channel {channel}.")


@slack.command("install-link")
@click.option("--seller", "seller_id", type=int, required=True, help="The seller's id.")
def slack_install_link(seller_id):
    """Print a one-time "Add to Slack" link for a seller (OAuth: SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)."""
    if not settings().slack_oauth:
        raise click.ClickException("Slack OAuth is off: set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET.")
    url, expires_at = install_link(settings().public_url, _seller(seller_id), utcnow())
    click.echo(f"{url}\n(works once, until {expires_at.isoformat()})")
