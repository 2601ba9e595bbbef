"""The bolt app, built from the settings on first use: Slack is on only when its variables are set, and a
change of them (a test, a deploy) gets a new app rather than a stale one.

An ack answers Slack from the web process at once; the lazy work it starts (the rule, its queries, the Slack Web
API calls) runs in RQ's workers, from Slack's own queue, which they take first. Run in the web process's threads,
that work held the GIL against the acks of later commands: at 100 commands/s the ack p99 was 2.9 s
(bench/SLACK_ACK.md). A worker hands the same request back to the bolt app, marked as bolt marks a lazy request,
and bolt runs only the named lazy function (as its AWS Lambda adapter does).
"""

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

from slack_bolt import App, BoltRequest
from slack_bolt.lazy_listener import LazyListenerRunner
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
from bot.listening import LATER, ignore_repeats, on_error
from runtime import database, settings, slack_queue

logger = logging.getLogger(__name__)
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
        # bot/web.py checks each request's signature on its raw bytes before bolt sees it; a job may run after the
        # five minutes a signature is good for.
        request_verification_enabled=False,
    )
    app.listener_runner.lazy_listener_runner = InWorkers()
    app.use(ignore_repeats)
    app.error(on_error)
    linking.register(app, store)
    for module in commands.MODULES:
        module.register(app)
    return app


class InWorkers(LazyListenerRunner):
    """Queues each lazy function with the request that started it; bolt's `run` runs it in the worker's job."""

    def __init__(self) -> None:
        self.logger = logger

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        headers = {
            **request.headers,
            "x-slack-bolt-lazy-only": ["1"],
            "x-slack-bolt-lazy-function-name": [request.lazy_function_name],
        }
        later = request.context.get(LATER)
        slack_queue().enqueue(run_lazy_work, request.raw_body, headers, later, result_ttl=0, failure_ttl=86400)


def run_lazy_work(raw_body: str, headers: dict, later: object = None) -> None:
    """The job: the bolt app of this process's settings runs the request's lazy function, on its own connection."""
    app = bolt_app(settings())
    if app is None:
        logger.warning("Slack was turned off before a request's work ran: it is dropped")
        return
    with database().connection_context():
        response = app.dispatch(BoltRequest(body=raw_body, headers=headers, context={LATER: later}))
    if response.status != 200:
        raise RuntimeError(f"bolt answered {response.status} to a request's lazy work: {response.body}")
