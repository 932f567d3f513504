"""The first-start demo load is finished at the next start when it was interrupted, and never
runs over a catalogue an operator built themselves."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
from appliance.practice.demo.loader import FIRST_LOAD_KEY, read_pack
from appliance.testing import ServerProcess

from tests.conftest import ACCOUNTS, add_user, login

PACK_SCENARIOS = {s.name for s in read_pack().scenarios}


def _scenario_names(client: httpx.Client) -> set[str]:
    response = client.get("/api/scenarios")
    assert response.status_code == 200, response.text
    return {s["name"] for s in response.json()}


def _first_load_state(state: Path) -> str | None:
    with sqlite3.connect(state / "salesboost.db") as conn:
        row = conn.execute(
            "SELECT value FROM appliance_state WHERE key = ?", (FIRST_LOAD_KEY,)
        ).fetchone()
    return None if row is None else str(row[0])


def test_an_interrupted_first_start_load_is_finished_at_the_next_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    add_user(state, ACCOUNTS["manager"])
    demo = {"SALESBOOST__DEMO__LOAD_ON_EMPTY": "true"}
    # an operator's own catalogue: one course, made before the demo ever ran
    with ServerProcess(state) as server, closing(login(server, ACCOUNTS["manager"])) as manager:
        assert manager.post("/api/courses", json={"name": "Our own course"}).status_code == 201
    with (
        ServerProcess(state, **demo) as server,
        closing(login(server, ACCOUNTS["manager"])) as manager,
    ):
        time.sleep(3)  # the load would start right after readiness
        assert not _scenario_names(manager) & PACK_SCENARIOS, "it must not load over a catalogue"
    assert _first_load_state(state) is None
    # fault injection: what a crash in the middle of the first-start load leaves behind
    with sqlite3.connect(state / "salesboost.db") as conn:
        conn.execute(
            "INSERT INTO appliance_state (key, value) VALUES (?, 'started')", (FIRST_LOAD_KEY,)
        )
    with (
        ServerProcess(state, **demo) as server,
        closing(login(server, ACCOUNTS["manager"])) as manager,
    ):
        deadline = time.monotonic() + 60
        while not _scenario_names(manager) >= PACK_SCENARIOS and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _scenario_names(manager) >= PACK_SCENARIOS
        assert "Our own course" in {c["name"] for c in manager.get("/api/courses").json()}
        while _first_load_state(state) != "done" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _first_load_state(state) == "done"
        assert "demo pack load failed" not in server.log()
