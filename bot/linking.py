"""Which seller a Slack workspace belongs to, and the bot token to answer it with.

Two ways to link: the OAuth v2 install from a seller's one-time "Add to Slack" link (several workspaces; the
token comes from the install), or `flask slack link` for a single self-hosted workspace using SLACK_BOT_TOKEN.
"""

import datetime as dt
import json
import logging

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_bolt.error import BoltError
from slack_bolt.oauth import OAuthFlow
from slack_bolt.oauth.callback_options import FailureArgs
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from billing.workspaces import WorkspaceTaken, grant_hash, link_workspace, open_grant
from models import SlackInstallation, SlackInstallGrant, SlackLink, db, transaction
from runtime import utcnow

REDIRECT_PATH = "/slack/oauth_redirect"
# The bot answers commands and buttons, and posts in the channel chosen at install (incoming-webhook asks for one).
SCOPES = ("commands", "chat:write", "chat:write.public", "incoming-webhook")
logger = logging.getLogger(__name__)


def slack_enabled(settings) -> bool:
    """Slack is on when requests can be verified and answered: the signing secret, and a token or OAuth."""
    return bool(settings.slack_signing_secret and (settings.slack_bot_token or settings.slack_oauth))


def api_url(settings) -> str:
    # slack_sdk joins method names to the base URL: without the trailing slash it would drop the last segment.
    return settings.slack_api_url.rstrip("/") + "/"


def installation_store(settings) -> "PeeweeInstallationStore | None":
    return PeeweeInstallationStore(settings.slack_client_id) if settings.slack_oauth else None


class GrantStateStore(OAuthStateStore):
    """The OAuth state is the secret of a seller's install grant: valid once, until the grant expires."""

    @property
    def logger(self):
        return logger

    def issue(self, *args, **kwargs) -> str:
        # A state must name its seller: SellerInstallFlow takes it from the link, never from here.
        raise BoltError("install from a seller's link: POST /api/v1/slack/install-link or flask slack install-link")

    def consume(self, state: str) -> bool:
        now = utcnow()
        with db.connection_context():
            return SlackInstallGrant.update(used_at=now).where(open_grant(state, now)).execute() == 1


class PeeweeInstallationStore(InstallationStore):
    """bolt's installation store on our database: one row per install, the newest one per workspace counts."""

    def __init__(self, client_id: str):
        self.client_id = client_id

    @property
    def logger(self):
        return logger

    def save(self, installation: Installation):
        # Times as ISO strings: Installation(**data) reads them back (and JSON has no datetime).
        data = json.loads(json.dumps(installation.to_dict_for_copying(), default=dt.datetime.isoformat))
        with db.connection_context():
            SlackInstallation.create(
                client_id=self.client_id,
                enterprise_id=installation.enterprise_id,
                team_id=installation.team_id,
                user_id=installation.user_id,
                is_enterprise_install=installation.is_enterprise_install,
                installation=data,
                installed_at=utcnow(),
            )

    def _rows(self, enterprise_id, team_id, is_enterprise_install):
        rows = SlackInstallation.select().where(
            SlackInstallation.client_id == self.client_id,
            SlackInstallation.enterprise_id.is_null()
            if enterprise_id is None
            else SlackInstallation.enterprise_id == enterprise_id,
        )
        if not is_enterprise_install:
            rows = rows.where(SlackInstallation.team_id == team_id)
        return rows

    def find_installation(self, *, enterprise_id, team_id, user_id=None, is_enterprise_install=False):
        with db.connection_context():
            rows = self._rows(enterprise_id, team_id, is_enterprise_install)
            if user_id is not None:
                rows = rows.where(SlackInstallation.user_id == user_id)
            row = rows.order_by(SlackInstallation.installed_at.desc(), SlackInstallation.id.desc()).first()
        return Installation(**row.installation) if row else None

    def find_bot(self, *, enterprise_id, team_id, is_enterprise_install=False) -> Bot | None:
        installation = self.find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return installation.to_bot() if installation and installation.bot_token else None

    def delete_bot(self, *, enterprise_id, team_id):
        self.delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    def delete_installation(self, *, enterprise_id, team_id, user_id=None):
        with db.connection_context():
            rows = self._rows(enterprise_id, team_id, is_enterprise_install=False)
            if user_id is not None:
                rows = rows.where(SlackInstallation.user_id == user_id)
            SlackInstallation.delete().where(SlackInstallation.id.in_(rows.select(SlackInstallation.id))).execute()


class SellerInstallFlow(OAuthFlow):
    """bolt's OAuth flow, started from a seller's one-time link: the link's secret is the state, and the install
    links the workspace to that seller."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.failure_handler = self._failure

    def _failure(self, args: FailureArgs) -> BoltResponse:
        # A refused link says why (bolt's page would only say "storage_error"); other failures keep bolt's page.
        if isinstance(args.error, BoltError) and isinstance(args.error.__cause__, WorkspaceTaken):
            return BoltResponse(
                status=409,
                body=f"{args.error} Nothing was installed.",
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        return self.default_callback_options.failure(args)

    def handle_installation(self, request):
        with db.connection_context():
            usable = SlackInstallGrant.select().where(open_grant(self.issue_new_state(request), utcnow())).exists()
        if not usable:
            return BoltResponse(
                status=410,
                body="This Add to Slack link has expired or was used. Ask for a new one: "
                "POST /api/v1/slack/install-link, or flask slack install-link --seller ID.",
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        return super().handle_installation(request)

    def issue_new_state(self, request) -> str:
        return request.query.get("grant", [""])[0]

    def store_installation(self, request, installation: Installation):
        state = request.query.get("state", [""])[0]
        # The channel chosen on Slack's install page; without one, the installer's direct messages.
        channel = installation.incoming_webhook_channel_id or installation.user_id
        with db.connection_context(), transaction():
            grant = SlackInstallGrant.get(SlackInstallGrant.state_hash == grant_hash(state))
            try:
                link_workspace(grant.seller, installation.team_id, channel, utcnow())
            except WorkspaceTaken as error:
                raise BoltError(str(error)) from error
            super().store_installation(request, installation)


def bot_token(settings, team_id: str, enterprise_id: str | None, store: InstallationStore | None) -> str | None:
    """The token to answer `team_id` with: its OAuth install's, else the single workspace's SLACK_BOT_TOKEN."""
    bot = store.find_bot(enterprise_id=enterprise_id, team_id=team_id) if store else None
    return bot.bot_token if bot else settings.slack_bot_token or None


class LinkedWorkspaceAuthorize(Authorize):
    """bolt's authorize step: a linked workspace gets its token; identify_seller has already answered the rest."""

    def __init__(self, settings, store: InstallationStore | None):
        self.settings = settings
        self.store = store

    def __call__(self, *, context, enterprise_id, team_id, user_id, **_):
        token = bot_token(self.settings, team_id, enterprise_id, self.store)
        if token is None:
            return None
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token, user_id=user_id)


def register(app, store: InstallationStore | None) -> None:
    """Slack's word that the app left a workspace (removed, or its bot token revoked): its token and link go."""

    def forget_workspace(context, event):
        if event["type"] == "tokens_revoked" and not event.get("tokens", {}).get("bot"):
            return  # only user tokens, which the bot does not use
        with db.connection_context(), transaction():
            SlackLink.delete().where(SlackLink.team_id == context.team_id).execute()
            if store is not None:
                store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)

    app.event("app_uninstalled")(forget_workspace)
    app.event("tokens_revoked")(forget_workspace)


def not_linked_message(team_id: str | None) -> str:
    return (
        f"This Slack workspace ({team_id}) is not linked to a Tranche seller yet. To link it, open the one-time "
        "“Add to Slack” link from `POST /api/v1/slack/install-link` (your API key), or ask your operator for "
        f"`flask slack link --seller <id> --team {team_id} --channel <channel id>`."
    )


def identify_seller(body, context, respond, next):
    """Global middleware before authorize: find the seller linked to the workspace, or say how to link it."""
    if context.team_id is None:  # url_verification, ssl_check: no workspace to speak of
        return next()
    with db.connection_context():
        link = SlackLink.get_or_none(SlackLink.team_id == context.team_id)
    if link is None:
        message = not_linked_message(context.team_id)
        # A command shows the answer's text to its user alone; a button's answer goes through its response_url.
        if "command" not in body and context.response_url:
            respond(text=message, response_type="ephemeral", replace_original=False)
            return BoltResponse(status=200, body="")
        return BoltResponse(status=200, body=message)
    context["seller_id"] = link.seller_id
    context["allowed_user_ids"] = link.allowed_user_ids
    return next()
