"""Linking a Slack workspace to a seller: `flask slack link` for one self-hosted workspace, and the OAuth v2
"Add to Slack" link issued per seller by the API and the CLI, installed through bolt's flow into our store."""

import datetime as dt
import re
import urllib.parse

import pytest

from billing.workspaces import link_workspace
from jobs.work import run_due_work
from models import SlackInstallation, SlackInstallGrant, SlackLink
from tests import factories
from tests.slack_api import CHANNEL, TEAM, command, fixture, signed_post

T = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=20)


def test_flask_slack_link_links_a_workspace_and_its_commands_work(runner, client, slack):
    """The operator links team and channel to a seller; that workspace's commands then act for the seller."""
    seller = factories.seller()

    result = runner.invoke(args=["slack", "link", "--seller", str(seller.id), "--team", TEAM, "--channel", CHANNEL])

    assert result.exit_code == 0, result.output
    assert f"Slack workspace {TEAM} linked to seller {seller.id}" in result.output
    link = SlackLink.get(SlackLink.team_id == TEAM)
    assert (link.seller_id, link.channel_id, link.allowed_user_ids) == (seller.id, CHANNEL, None)
    command(client, slack, "/collections")
    assert slack.wait_for("response_url")[0]["text"] == "No order is in collections."


def test_flask_slack_link_may_list_the_users_who_may_act(runner, slack):
    """--allow, repeated, keeps the Slack users who may renew and hand off."""
    seller = factories.seller()

    args = [
        "slack",
        "link",
        "--seller",
        str(seller.id),
        "--team",
        TEAM,
        "--channel",
        CHANNEL,
        "--allow",
        "U1",
        "--allow",
        "U2",
    ]
    runner.invoke(args=args)

    assert SlackLink.get(SlackLink.seller == seller).allowed_user_ids == ["U1", "U2"]


def test_relinking_moves_a_sellers_notifications_to_the_new_channel(runner, slack):
    """A seller's second link replaces the first."""
    seller = factories.seller()
    runner.invoke(args=["slack", "link", "--seller", str(seller.id), "--team", TEAM, "--channel", CHANNEL])

    runner.invoke(args=["slack", "link", "--seller", str(seller.id), "--team", TEAM, "--channel", "C0NEW"])

    assert [(link.team_id, link.channel_id) for link in SlackLink.select()] == [(TEAM, "C0NEW")]


def test_a_workspace_linked_to_one_seller_cannot_be_linked_to_another(runner, slack):
    """A workspace serves one seller: linking it to a second one fails and changes nothing."""
    alice, bob = factories.seller(), factories.seller("Bob Books")
    runner.invoke(args=["slack", "link", "--seller", str(alice.id), "--team", TEAM, "--channel", CHANNEL])

    result = runner.invoke(args=["slack", "link", "--seller", str(bob.id), "--team", TEAM, "--channel", CHANNEL])

    assert result.exit_code != 0
    assert f"Slack workspace {TEAM} is linked to another seller" in result.output
    assert SlackLink.get(SlackLink.team_id == TEAM).seller_id == alice.id


def test_flask_slack_link_refuses_an_unknown_seller(runner, slack):
    """A seller id that names nobody is an error, not a link."""
    result = runner.invoke(args=["slack", "link", "--seller", "999999", "--team", TEAM, "--channel", CHANNEL])

    assert result.exit_code != 0 and "there is no seller 999999" in result.output
    assert SlackLink.select().count() == 0


# --- OAuth v2


@pytest.fixture
def oauth(slack, monkeypatch):
    """Slack on for several workspaces: OAuth client credentials, no single-workspace token."""
    monkeypatch.setenv("SLACK_CLIENT_ID", "1111.2222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "oauth-client-secret")
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    return slack


def _install_link(client, seller) -> str:
    response = client.post("/api/v1/slack/install-link", headers={"Authorization": f"Bearer {seller.api_key}"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["url"]


def _add_to_slack(client, url: str):
    """What the seller's browser does: open the link, go to Slack, come back with a code, the state, and the
    state's cookie (set by hand: the test client drops a cookie header its own jar does not hold)."""
    browser = client.application.test_client(use_cookies=False)
    link = urllib.parse.urlsplit(url)
    page = browser.get(f"{link.path}?{link.query}")
    state = urllib.parse.parse_qs(link.query)["grant"][0]
    cookie = {"Cookie": f"slack-app-oauth-state={state}"}
    return page, state, browser.get(f"/slack/oauth_redirect?code=the-code&state={state}", headers=cookie)


def test_the_add_to_slack_link_installs_and_links_the_workspace_to_its_seller(client, oauth):
    """The API's link opens Slack's authorization; coming back, the install is stored, the workspace linked to
    the seller with the channel chosen on Slack, and its notifications use the installed token."""
    seller = factories.seller()
    url = _install_link(client, seller)

    page, state, back = _add_to_slack(client, url)

    assert page.status_code == 200
    authorize = re.search(r'href="(https://slack.com/oauth/v2/authorize\?[^"]+)"', page.get_data(as_text=True))[1]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize.replace("&amp;", "&")).query)
    assert query["state"] == [state] and query["client_id"] == ["1111.2222"]
    assert "incoming-webhook" in query["scope"][0].split(",")
    assert back.status_code == 200
    [exchange] = oauth.received("oauth.v2.access")
    assert exchange["code"] == "the-code"
    link = SlackLink.get(SlackLink.seller == seller)
    assert (link.team_id, link.channel_id) == ("T0OAUTH", "C0OAUTH")
    assert SlackInstallation.get(SlackInstallation.team_id == "T0OAUTH").installation["bot_token"].startswith("xoxb")

    factories.order(seller, payment=factories.sepa(factories.IBAN_FAILS), anchor=T)
    run_due_work(T)
    [message] = oauth.received("chat.postMessage")
    assert message["channel"] == "C0OAUTH"
    assert oauth.tokens("chat.postMessage") == ["xoxb-installed-by-oauth"]


def test_a_command_from_an_installed_workspace_is_answered_with_its_own_token(client, oauth):
    """After the install, T0OAUTH's commands act for its seller; views open with the installed token."""
    seller = factories.seller()
    _add_to_slack(client, _install_link(client, seller))

    command(client, oauth, "/update-plan", team_id="T0OAUTH")

    oauth.wait_for("views.open")
    assert oauth.tokens("views.open") == ["xoxb-installed-by-oauth"]


def test_an_add_to_slack_link_works_once(client, oauth):
    """Used once, the link's page says it expired, and replaying Slack's redirect links nothing more."""
    seller = factories.seller()
    url = _install_link(client, seller)
    _add_to_slack(client, url)
    SlackLink.delete().execute()

    page, _, back = _add_to_slack(client, url)

    assert page.status_code == 410
    assert "expired or was used" in page.get_data(as_text=True)
    assert back.status_code == 401
    assert SlackLink.select().count() == 0


def test_an_add_to_slack_link_expires_after_an_hour(client, oauth):
    """An hour later, the link no longer installs."""
    seller = factories.seller()
    url = _install_link(client, seller)
    SlackInstallGrant.update(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).execute()

    page, _, back = _add_to_slack(client, url)

    assert (page.status_code, back.status_code) == (410, 401)
    assert SlackLink.select().count() == 0


def test_the_redirect_without_the_browsers_cookie_links_nothing(client, oauth):
    """Slack's redirect opened in another browser than the one that started (no state cookie): refused."""
    seller = factories.seller()
    url = _install_link(client, seller)
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["grant"][0]

    back = client.get(f"/slack/oauth_redirect?code=the-code&state={state}")

    assert back.status_code == 400
    assert oauth.received("oauth.v2.access") == []
    assert SlackLink.select().count() == 0


def test_installing_a_workspace_linked_to_another_seller_fails_and_keeps_the_link(client, oauth):
    """Bob cannot take over the workspace Alice linked."""
    alice, bob = factories.seller(), factories.seller("Bob Books")
    link_workspace(alice, "T0OAUTH", CHANNEL, T)

    _, _, back = _add_to_slack(client, _install_link(client, bob))

    assert back.status_code == 409
    assert "T0OAUTH is linked to another seller" in back.get_data(as_text=True)
    assert SlackLink.get(SlackLink.team_id == "T0OAUTH").seller_id == alice.id
    assert SlackInstallation.select().count() == 0


def test_a_workspace_that_removes_the_app_is_unlinked_and_its_token_forgotten(client, oauth):
    """Slack's app_uninstalled event: the install and the link go; the seller may install again."""
    seller = factories.seller()
    _add_to_slack(client, _install_link(client, seller))

    response = signed_post(client, fixture("event__app_uninstalled.json"))

    assert response.status_code == 200
    assert SlackLink.select().count() == 0
    assert SlackInstallation.select().count() == 0


def test_flask_slack_install_link_prints_a_seller_link(runner, oauth):
    """The operator's way to the same link."""
    seller = factories.seller()

    result = runner.invoke(args=["slack", "install-link", "--seller", str(seller.id)])

    assert result.exit_code == 0, result.output
    assert re.search(r"http://127\.0\.0\.1:\d+/slack/install\?grant=\S+", result.output)
    assert SlackInstallGrant.get().seller_id == seller.id


def test_without_oauth_the_api_and_the_cli_say_how_to_turn_it_on(client, runner, slack):
    """A single-workspace setup has no install link: 409 from the API, an error from the CLI."""
    seller = factories.seller()

    response = client.post("/api/v1/slack/install-link", headers={"Authorization": f"Bearer {seller.api_key}"})
    result = runner.invoke(args=["slack", "install-link", "--seller", str(seller.id)])

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "slack_oauth_off"
    assert result.exit_code != 0 and "SLACK_CLIENT_ID" in result.output
