"""Headless Chromium (Debian's `chromium`) driven by Playwright against the app served at PUBLIC_URL.

The browser runs in the test thread; the app runs in the server thread the root conftest started.
Screenshots of every page go to var/screenshots/, at a desktop and at a phone-sized viewport."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW_TO_INSTALL = (
    "the browser tests need Chromium at /usr/bin/chromium: install it with "
    "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu), not with `playwright install`"
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(HOW_TO_INSTALL)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request):
    return request.param


class Page:
    """A browser tab on the live app that keeps what went wrong beyond the page itself (a CSP violation, a
    stylesheet that did not load) and takes screenshots."""

    def __init__(self, tab, viewport: str):
        self.tab = tab
        self.viewport = viewport
        self.problems = []
        # A 4xx page is logged as a failed load too: the document's status is each test's to check.
        tab.on(
            "console",
            lambda message: (
                message.type == "error"
                and not message.text.startswith("Failed to load resource")
                and self.problems.append(message.text)
            ),
        )
        tab.on(
            "response",
            lambda response: (
                response.request.resource_type != "document"
                and response.status >= 400
                and self.problems.append(f"{response.status} {response.url}")
            ),
        )

    def open(self, path: str):
        return self.tab.goto(os.environ["PUBLIC_URL"] + path)

    def shoot(self, name: str) -> Path:
        path = SCREENSHOTS / f"{name}--{self.viewport}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tab.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def _tab(browser, viewport: str):
    context = browser.new_context(**VIEWPORTS[viewport])
    tab = Page(context.new_page(), viewport)
    yield tab
    context.close()
    assert tab.problems == []


@pytest.fixture
def page(browser, viewport):
    with _tab(browser, viewport) as tab:
        yield tab


@pytest.fixture
def phone(browser):
    """A tab in the phone's viewport only: for what a phone shows before any scrolling."""
    with _tab(browser, "phone") as tab:
        yield tab
