"""Browser tests: Playwright for Python driving Debian's Chromium against a real appliance.

Every page a test opens is watched: a request to any origin other than the appliance's own
fails the test (the UI must work with no network). Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account, add_user

CHROMIUM = Path(os.environ.get("SALESBOOST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(
        f"{CHROMIUM} is absent: install Debian's chromium (install.sh --dev does, as root)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
TEAM = "alpha"
USERS = {
    "admin": Account("e2e-admin", "admin", "hq"),
    "manager": Account("e2e-manager", "manager", TEAM),
    "trainee": Account("e2e-trainee", "trainee", TEAM),
    "trainee2": Account("e2e-trainee2", "trainee", TEAM),
}
LOCAL_SCHEMES = ("data:", "about:", "blob:")


@pytest.fixture(scope="session")
def e2e_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real appliance for the browser tests (restartable on the same port and state)."""
    state = tmp_path_factory.mktemp("e2e-state")
    for account in USERS.values():
        add_user(state, account)
    server = ServerProcess(
        state,
        SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="100000",
        SALESBOOST__AUTH__API_RATE_PER_MINUTE="100000",
        SALESBOOST__DEMO__LOAD_ON_EMPTY="true",  # scenarios, personas, rubric, rules, documents
        SALESBOOST__PRACTICE__IDLE_CHECK_INTERVAL_S="1",  # idle sessions (60 min) seen at once
    )
    server.start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's: nothing is downloaded).

    Per module, not per session: Playwright's sync API runs an event loop in this thread
    while it is open, and later tests that call asyncio.run() must not find one running.
    """
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


class Watch:
    """Every request a browser context made, and those that left the appliance's origin."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.broken: list[str] = []

    def answered(self, response: Any) -> None:
        """A missing asset or a server error is a broken page."""
        if response.status >= 500 or (response.status >= 400 and "/static/" in response.url):
            self.broken.append(f"{response.status} {response.url}")

    def saw(self, url: str) -> None:
        """Note a request, and whether it left the appliance."""
        self.requests.append(url)
        if not (
            url.startswith(self.origin + "/") or url == self.origin or url.startswith(LOCAL_SCHEMES)
        ):
            self.foreign.append(url)


@pytest.fixture
def new_page(browser: Any, e2e_server: ServerProcess) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh browser contexts (one per user); foreign requests fail the test."""
    contexts: list[Any] = []
    watches: list[Watch] = []
    ws_origin = e2e_server.url.replace("http://", "ws://")

    def make(*, width: int = 1280, height: int = 900, locale: str = "en-US") -> Any:
        context = browser.new_context(
            base_url=e2e_server.url, viewport={"width": width, "height": height}, locale=locale
        )
        context.set_default_timeout(30_000)
        watch = Watch(e2e_server.url)
        context.on("request", lambda request: watch.saw(request.url))
        context.on("response", watch.answered)
        page = context.new_page()
        page.on("websocket", lambda ws: watch.saw(ws.url.replace(ws_origin, e2e_server.url, 1)))
        page.on("dialog", lambda dialog: dialog.accept())
        contexts.append(context)
        watches.append(watch)
        return page

    yield make
    for context in contexts:
        context.close()
    foreign = [url for w in watches for url in w.foreign]
    assert foreign == [], f"requests left the appliance: {foreign}"
    broken = [entry for w in watches for entry in w.broken]
    assert broken == [], f"missing assets or server errors: {broken}"


def login(page: Any, account: Account, password: str | None = None) -> None:
    """Log in through the login form and wait to leave it."""
    page.goto("/login")
    page.get_by_label("Username").fill(account.username)
    page.get_by_label("Password", exact=True).fill(password or account.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot under test-artifacts/e2e/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_same_origin_dom(page: Any, origin: str) -> None:
    """Every src/href/action in the page resolves to the appliance (or a data: URL)."""
    urls: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('[src],[href],[action],[poster],[srcset]')]
              .flatMap(e => ['src','href','action','poster'].filter(a => e.hasAttribute(a))
                 .map(a => new URL(e.getAttribute(a), document.baseURI).href))"""
    )
    foreign = [u for u in urls if not (u.startswith(origin + "/") or u.startswith(LOCAL_SCHEMES))]
    assert foreign == [], f"{page.url} references other origins: {foreign}"


expect = sync_api.expect
