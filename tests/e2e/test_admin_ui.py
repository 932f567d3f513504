"""An admin creates a user in the browser; that user logs in, must change the password, and can."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.conftest import Account
from tests.e2e.conftest import USERS, login, shot


def test_admin_creates_a_user_who_can_log_in(new_page: Callable[..., Any]) -> None:
    admin = new_page()
    login(admin, USERS["admin"])
    admin.goto("/admin/users")
    name = f"newbie-{uuid.uuid4().hex[:6]}"
    admin.get_by_label("Username", exact=True).fill(name)
    admin.get_by_label("Display name").fill("New Bie")
    admin.get_by_label("Role", exact=True).select_option("trainee")
    admin.get_by_label("Team", exact=True).fill("alpha")
    admin.get_by_role("button", name="Create").click()
    password = admin.locator("#new-password").inner_text()  # generated, shown once
    assert len(password) >= 12
    shot(admin, "admin-user-created")
    admin.locator("#reload-users").click()  # the password stays until the admin moves on
    admin.wait_for_selector(f'tr[data-username="{name}"]')

    user = new_page()
    login(user, Account(name, "trainee", "alpha", password))
    user.wait_for_url("**/password")  # a generated password must be changed first
    user.get_by_label("Current password").fill(password)
    user.get_by_label("New password", exact=True).fill("a brand new passphrase 42")
    user.get_by_label("Repeat the new password").fill("a brand new passphrase 42")
    user.get_by_role("button", name="Save").click()
    user.wait_for_url("**/home")
    assert user.locator("header .user").inner_text() == "New Bie"

    # the admin disables them: their next page view goes back to the login page
    admin.reload()
    with admin.expect_navigation():  # the page reloads once the change is saved
        admin.locator(f'tr[data-username="{name}"] button.toggle').click()
    assert "Disabled" in admin.locator(f'tr[data-username="{name}"]').inner_text()
    user.goto("/history")
    assert "/login" in user.url


def test_api_token_shown_once(new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/tokens")
    page.get_by_label("Token name").fill("ci script")
    page.get_by_role("button", name="Create").click()
    token = page.locator("#new-token").inner_text()
    assert len(token) > 20
    page.reload()
    assert token not in page.content()  # only its prefix is listed
    assert page.locator("td", has_text="ci script").count() == 1
