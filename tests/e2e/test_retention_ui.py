"""Deleting a practice session and erasing a person through the browser UI, each after a
confirm dialog that names what goes (declining changes nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess

from tests.e2e.conftest import USERS, expect, login, shot
from tests.integration.practice_helpers import pick_scenario


def _api(server: ServerProcess, who: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    account = USERS[who]
    client.post(
        "/api/auth/login", json={"username": account.username, "password": account.password}
    ).raise_for_status()
    return client


@pytest.fixture
def answers(browser: Any, e2e_server: ServerProcess) -> Iterator[tuple[Any, list[str], list[bool]]]:
    """A page whose confirm dialogs are recorded and answered from a list (True accepts)."""
    context = browser.new_context(base_url=e2e_server.url, locale="en-US")
    context.set_default_timeout(30_000)
    asked: list[str] = []
    replies: list[bool] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        if replies.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page = context.new_page()
    page.on("dialog", answer)
    try:
        yield page, asked, replies
    finally:
        context.close()


def test_manager_deletes_a_session_through_the_dialog(
    e2e_server: ServerProcess, answers: tuple[Any, list[str], list[bool]]
) -> None:
    page, asked, replies = answers
    with closing(_api(e2e_server, "trainee")) as trainee:
        scenario_id, persona_id = pick_scenario(trainee)
        made = trainee.post(
            "/api/sessions", json={"scenario_id": scenario_id, "persona_id": persona_id}
        )
        sid = made.raise_for_status().json()["id"]
        trainee.post(f"/api/sessions/{sid}/end").raise_for_status()

        login(page, USERS["manager"])
        page.goto("/team")
        row = page.locator(f'#team-sessions tr[data-session="{sid}"]')
        expect(row).to_contain_text(USERS["trainee"].username)
        replies.append(False)  # "no": nothing happens
        row.locator("button.delete-session").click()
        page.wait_for_timeout(500)
        assert asked and f"#{sid}" in asked[-1] and USERS["trainee"].username in asked[-1], asked
        expect(row).to_be_visible()
        assert trainee.get(f"/api/sessions/{sid}").status_code == 200

        replies.append(True)
        row.locator("button.delete-session").click()
        expect(row).to_have_count(0)
        assert trainee.get(f"/api/sessions/{sid}").status_code == 404
        shot(page, "team-session-deleted")
        page.reload()
        expect(page.locator(f'#team-sessions tr[data-session="{sid}"]')).to_have_count(0)


def test_admin_erases_a_user_through_the_dialog(
    e2e_server: ServerProcess, answers: tuple[Any, list[str], list[bool]]
) -> None:
    page, asked, replies = answers
    name = f"leaver-{uuid.uuid4().hex[:6]}"
    with closing(_api(e2e_server, "admin")) as admin:
        made = admin.post("/api/users", json={"username": name, "role": "trainee", "team": "alpha"})
        user_id = made.raise_for_status().json()["user"]["id"]
        login(page, USERS["admin"])
        page.goto("/admin/users")
        row = page.locator(f'tr[data-username="{name}"]')
        replies.append(True)
        row.locator("button.erase").click()
        expect(row).to_have_count(0)
        assert asked and name in asked[-1], asked
        assert admin.get(f"/api/users/{user_id}").status_code == 404
        # one's own row refuses, and says why
        me = page.locator(f'tr[data-username="{USERS["admin"].username}"]')
        replies.append(True)
        me.locator("button.erase").click()
        expect(me.locator(".row-msg")).to_contain_text("(self_erase)")
