"""Every state of both links, as the customer's browser shows it: screenshots for review."""

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.test_pages_links import STATES


@pytest.mark.parametrize(("state", "status", "says"), STATES, ids=[s[0].__name__ for s in STATES])
def test_every_state_of_both_links_renders_in_the_browser(page, state, status, says):
    """Each state's page loads with its status and its message, without a console error."""
    path = state(factories.seller())

    response = page.open(path)

    assert response.status == status
    expect(page.tab.locator("main")).to_contain_text(says)
    page.shoot(f"states/{state.__name__}")
