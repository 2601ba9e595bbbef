"""The bolt app, built from the settings on first use: Slack is on only when its variables are set, and a
change of them (a test, a deploy) gets a new app rather than a stale one."""

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

from slack_bolt import App
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient

from billing.workspaces import INSTALL_PATH
from bot import commands, linking
from bot.linking import (
    REDIRECT_PATH,
    SCOPES,
    GrantStateStore,
    LinkedWorkspaceAuthorize,
    SellerInstallFlow,
    api_url,
    identify_seller,
    installation_store,
    slack_enabled,
)
from bot.listening import ignore_repeats, on_error

# Lazy listeners run here; each is short (a rule and one Slack call), so a few threads serve many sellers.
LISTENER_THREADS = 16
NOT_INSTALLED = (
    "Tranche's Slack app has no token for this workspace: open your “Add to Slack” link again "
    "(POST /api/v1/slack/install-link), or set SLACK_BOT_TOKEN for a single workspace."
)


@dataclass(frozen=True)
class SlackSettings:
    """The settings the bolt app is built from (config.Settings' names): the key of the cache of apps."""

    slack_signing_secret: str
    slack_bot_token: str
    slack_api_url: str
    slack_client_id: str
    slack_client_secret: str
    slack_oauth: bool
    public_url: str


def bolt_app(settings) -> App | None:
    """The bolt app for these settings, or None while Slack is off."""
    if not slack_enabled(settings):
        return None
    return _build(SlackSettings(**{f.name: getattr(settings, f.name) for f in fields(SlackSettings)}))


@functools.lru_cache(maxsize=4)
def _build(settings: SlackSettings) -> App:
    store = installation_store(settings)
    client = WebClient(base_url=api_url(settings), timeout=10)
    flow = None
    if settings.slack_oauth:
        flow = SellerInstallFlow(
            client=client,
            settings=OAuthSettings(
                client_id=settings.slack_client_id,
                client_secret=settings.slack_client_secret,
                scopes=list(SCOPES),
                redirect_uri=f"{settings.public_url}{REDIRECT_PATH}",
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                installation_store=store,
                state_store=GrantStateStore(),
            ),
        )
    app = App(
        name="tranche",
        signing_secret=settings.slack_signing_secret,
        client=client,
        before_authorize=identify_seller,
        authorize=LinkedWorkspaceAuthorize(settings, store),
        user_facing_authorize_error_message=NOT_INSTALLED,
        oauth_flow=flow,
        # Passed too so that bolt does not build default OAuth settings (files under ~) from SLACK_CLIENT_ID.
        oauth_settings=flow.settings if flow else None,
        # Ack functions run in the request's thread (quick, on its database connection); the slow work runs in
        # lazy listeners, which need this mode to start only after their ack function returned.
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="slack"),
    )
    app.use(ignore_repeats)
    app.error(on_error)
    linking.register(app, store)
    for module in commands.MODULES:
        module.register(app)
    return app
