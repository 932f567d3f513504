"""Every page loads, stays on the appliance's origin, labels its fields, and has a screenshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from appliance.testing import ServerProcess

from tests.e2e.conftest import USERS, assert_same_origin_dom, expect, login, shot

PAGES = {
    "trainee": ["/home", "/history", "/tokens", "/password"],
    "manager": [
        "/team",
        "/live",
        "/knowledge",
        *(
            f"/editors/{k}"
            for k in ("scenarios", "personas", "rubrics", "products", "compliance-rules")
        ),
    ],
    "admin": ["/admin/users", "/admin/system", "/tokens"],
}

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 120))"""


def check_page(page: Any, origin: str, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "http" not in csp, csp
    page.wait_for_load_state("networkidle")
    assert_same_origin_dom(page, origin)
    assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {path}"
    assert page.locator("h1").count() == 1, path


@pytest.mark.parametrize("role", ["trainee", "manager", "admin"])
def test_every_page_stays_on_the_appliance(
    role: str, new_page: Callable[..., Any], e2e_server: ServerProcess
) -> None:
    page = new_page()
    login(page, USERS[role])
    for path in PAGES[role]:
        check_page(page, e2e_server.url, path)
        shot(page, f"{role}-{path.strip('/').replace('/', '-')}")
    # an error page is a page too
    page.goto("/editors/nothing" if role != "trainee" else "/practice/999999")
    assert_same_origin_dom(page, e2e_server.url)


def test_login_page_and_redirects(new_page: Callable[..., Any], e2e_server: ServerProcess) -> None:
    page = new_page()
    page.goto("/history")
    assert "/login?next=" in page.url  # a page that needs login sends the browser to it
    check_page(page, e2e_server.url, page.url.replace(e2e_server.url, ""))
    shot(page, "login")
    page.get_by_label("Username").fill(USERS["trainee"].username)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.keyboard.press("Enter")  # the form works from the keyboard
    expect(page.locator("#form-error")).to_have_text(
        "Wrong username or password."
    )  # the UI says it in its language
    page.get_by_label("Password", exact=True).fill(USERS["trainee"].password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/history")  # back where it was going
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto("/home")
    assert "/login?next=" in page.url  # the session is gone


def test_trainee_cannot_open_manager_pages(new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, USERS["trainee"])
    response = page.goto("/team")
    assert response is not None and response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed for your role"


def test_chinese_ui_and_tablet_width(
    new_page: Callable[..., Any], e2e_server: ServerProcess
) -> None:
    page = new_page(width=820, height=1180, locale="zh-CN")
    page.goto("/login")
    assert page.locator("h1").inner_text() == "登录"  # chosen by Accept-Language
    page.goto("/login?lang=en")
    assert page.locator("h1").inner_text() == "Log in"
    page.goto("/login")
    assert page.locator("h1").inner_text() == "Log in"  # remembered in a cookie
    page.goto("/login?lang=zh")
    page.get_by_label("用户名").fill(USERS["manager"].username)
    page.get_by_label("密码").fill(USERS["manager"].password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/team")
    assert page.locator("h1").inner_text().startswith("团队看板")
    page.goto("/knowledge")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, f"the knowledge page scrolls sideways at tablet width ({width}px)"
    shot(page, "knowledge-zh-tablet")
