"""A practice page left open on a session the server ended for lack of lines says why, also
after a reload, and links the report."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

from appliance.testing import ServerProcess

from tests.e2e.conftest import USERS, expect, login, shot
from tests.e2e.test_practice_ui import start_practice


def test_the_page_says_the_server_ended_an_idle_session(
    e2e_server: ServerProcess, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    login(page, USERS["trainee"])
    sid = start_practice(page)
    two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 7200))
    with closing(sqlite3.connect(e2e_server.state_dir / "salesboost.db", timeout=10)) as db, db:
        db.execute("UPDATE practice_sessions SET updated_at = ? WHERE id = ?", (two_hours_ago, sid))
    ended = page.locator("#ended")
    expect(ended).to_contain_text("nothing was said in it for a long time", timeout=60_000)
    expect(page.locator("#report-link")).to_be_visible(timeout=60_000)
    expect(page.locator("#say")).to_be_disabled()
    shot(page, "practice-ended-idle")
    page.reload()
    expect(ended).to_contain_text("nothing was said in it for a long time", timeout=30_000)
    expect(ended).to_contain_text("The report is ready.")
