"""Defects of the catalogue and user administration found by QA, each pinned by a test.

- a scenario without a rubric could be saved and never started: a rubric is now required
  (``empty_field`` on ``rubric_id``), and older rows without one are not offered to trainees;
- a scenario whose course or persona was archived could not be saved again with its own,
  unchanged references (what the editor sends);
- ``PATCH /api/users/{id} {"team": null}`` answered "Saved" and left the team; a team of only
  spaces was created as a blank-looking team.

Real parts only: the session's `salesboost serve`, its SQLite file (written directly once, to
make a row as an older version stored it) and real logged-in clients.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import httpx
from appliance.testing import ServerProcess

from tests.conftest import PASSWORD
from tests.integration.test_domain_api import _created as _made
from tests.integration.test_domain_api import _error

DIMENSIONS = [{"key": "rapport", "name": "Rapport", "weight": 1, "description": "Builds rapport."}]


def _u(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _rubric(manager: httpx.Client) -> int:
    made = _made(
        manager.post("/api/rubrics", json={"name": _u("Rubric"), "dimensions": DIMENSIONS})
    )
    return int(made["id"])


def _persona(manager: httpx.Client, language: str = "en") -> int:
    body = {"name": _u("Persona"), "description": "A careful saver.", "language": language}
    return int(_made(manager.post("/api/personas", json=body))["id"])


def _scenario_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": _u("Scenario"),
        "description": "The customer wants to cancel.",
        "objective": "Keep the customer.",
    }
    body.update(over)
    return body


# --- 1. a scenario needs a rubric --------------------------------------------------------------


def test_a_scenario_cannot_be_saved_without_a_rubric(clients: dict[str, httpx.Client]) -> None:
    manager = clients["manager"]
    _error(
        manager.post("/api/scenarios", json=_scenario_body(rubric_id=None)),
        400,
        "empty_field",
        "rubric_id",
    )
    missing = manager.post("/api/scenarios", json=_scenario_body())
    assert missing.status_code == 400 and "rubric_id" in missing.text, missing.text
    rubric = _rubric(manager)
    made = _made(manager.post("/api/scenarios", json=_scenario_body(rubric_id=rubric)))
    # an update cannot clear it either
    _error(
        manager.patch(f"/api/scenarios/{made['id']}", json={"rubric_id": None}),
        400,
        "empty_field",
        "rubric_id",
    )
    assert manager.get(f"/api/scenarios/{made['id']}").json()["rubric_id"] == rubric


def test_an_older_scenario_without_a_rubric_is_not_offered_to_trainees(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    manager, trainee = clients["manager"], clients["trainee"]
    rubric = _rubric(manager)
    persona = _persona(manager)
    made = _made(
        manager.post("/api/scenarios", json=_scenario_body(rubric_id=rubric, persona_ids=[persona]))
    )
    sid = made["id"]
    # as a version before the rubric was required stored it
    with sqlite3.connect(server.state_dir / "salesboost.db", timeout=30) as db:
        db.execute("UPDATE scenarios SET rubric_id = NULL WHERE id = ?", (sid,))
    db.close()

    assert sid not in [s["id"] for s in trainee.get("/api/scenarios").raise_for_status().json()]
    listed = {s["id"]: s for s in manager.get("/api/scenarios").raise_for_status().json()}
    assert listed[sid]["rubric_id"] is None  # managers still see it, to fix it
    refused = trainee.post("/api/sessions", json={"scenario_id": sid, "persona_id": persona})
    assert refused.status_code == 422, refused.text
    # any edit asks for a rubric; picking one makes it startable again
    _error(
        manager.patch(f"/api/scenarios/{sid}", json={"objective": "Agree a waiver."}),
        400,
        "empty_field",
        "rubric_id",
    )
    fixed = manager.patch(f"/api/scenarios/{sid}", json={"rubric_id": rubric})
    assert fixed.status_code == 200, fixed.text
    assert sid in [s["id"] for s in trainee.get("/api/scenarios").json()]
    started = trainee.post("/api/sessions", json={"scenario_id": sid, "persona_id": persona})
    assert started.status_code == 201, started.text
    trainee.post(f"/api/sessions/{started.json()['id']}/end")


# --- 2. unchanged references that were archived since -------------------------------------------


def test_unchanged_archived_references_do_not_block_an_edit(
    clients: dict[str, httpx.Client],
) -> None:
    manager = clients["manager"]
    course = _made(manager.post("/api/courses", json={"name": _u("Course")}))["id"]
    other_course = _made(manager.post("/api/courses", json={"name": _u("Course")}))["id"]
    rubric = _rubric(manager)
    persona, other_persona = _persona(manager), _persona(manager)
    made = _made(
        manager.post(
            "/api/scenarios",
            json=_scenario_body(course_id=course, rubric_id=rubric, persona_ids=[persona]),
        )
    )
    sid = made["id"]
    for path in (
        f"/api/courses/{course}",
        f"/api/courses/{other_course}",
        f"/api/personas/{persona}",
        f"/api/personas/{other_persona}",
        f"/api/rubrics/{rubric}",
    ):
        assert manager.delete(path).status_code == 204, path

    # the editor's save: every field, the archived ones unchanged
    full = {
        k: made[k]
        for k in (
            "name",
            "description",
            "objective",
            "kind",
            "language",
            "course_id",
            "product_id",
            "rubric_id",
            "persona_ids",
            "knowledge_collection",
        )
    }
    saved = manager.patch(f"/api/scenarios/{sid}", json={**full, "objective": "Agree a waiver."})
    assert saved.status_code == 200, saved.text
    assert saved.json()["objective"] == "Agree a waiver."
    assert (saved.json()["course_id"], saved.json()["persona_ids"]) == (course, [persona])

    # setting a different archived row is still refused
    _error(
        manager.patch(f"/api/scenarios/{sid}", json={**full, "course_id": other_course}),
        422,
        "unknown_reference",
        "course_id",
    )
    _error(
        manager.patch(
            f"/api/scenarios/{sid}", json={**full, "persona_ids": [persona, other_persona]}
        ),
        422,
        "unknown_reference",
        "persona_ids[1]",
    )
    live_rubric = _rubric(manager)
    moved = manager.patch(f"/api/scenarios/{sid}", json={**full, "rubric_id": live_rubric})
    assert moved.status_code == 200, moved.text
    _error(
        manager.patch(f"/api/scenarios/{sid}", json={**full, "rubric_id": rubric}),
        422,
        "unknown_reference",
        "rubric_id",
    )  # the archived rubric is no longer the stored one: setting it back is a change
    assert manager.get(f"/api/scenarios/{sid}").json()["rubric_id"] == live_rubric


# --- 3. clearing a user's team, blank team names ---------------------------------------------


def _user(admin: httpx.Client, team: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": f"qa3-{uuid.uuid4().hex[:8]}", "role": "trainee"}
    if team is not None:
        body["team"] = team
    made = admin.post("/api/users", json={**body, "password": PASSWORD})
    assert made.status_code == 201, made.text
    user: dict[str, Any] = made.json()["user"]
    return user


def test_null_or_blank_team_clears_it_and_an_absent_one_keeps_it(
    clients: dict[str, httpx.Client],
) -> None:
    admin = clients["admin"]
    user = _user(admin, "qa3-team")
    assert user["team"] == "qa3-team"
    url = f"/api/users/{user['id']}"

    kept = admin.patch(url, json={"display_name": "Someone"})
    assert kept.status_code == 200 and kept.json()["team"] == "qa3-team", kept.text
    cleared = admin.patch(url, json={"team": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["team"] is None
    assert admin.get(url).json()["team"] is None

    assert admin.patch(url, json={"team": "  qa3-team  "}).json()["team"] == "qa3-team"
    for blank in ("", "   "):
        again = admin.patch(url, json={"team": blank})
        assert again.status_code == 200 and again.json()["team"] is None, again.text
        assert admin.patch(url, json={"team": "qa3-team"}).json()["team"] == "qa3-team"

    audit = admin.get("/api/audit", params={"action": "team_changed"}).json()
    mine = [e for e in audit if e["target"] == f"user:{user['username']}"]
    assert any(e["detail"] == {"from": "qa3-team", "to": None} for e in mine), mine


def test_a_team_of_spaces_is_no_team_and_names_are_stripped(
    clients: dict[str, httpx.Client],
) -> None:
    admin = clients["admin"]
    assert _user(admin, "   ")["team"] is None
    assert _user(admin, "")["team"] is None
    assert _user(admin, "  qa3-padded ")["team"] == "qa3-padded"
    teams = {u["team"] for u in admin.get("/api/users").json()}
    assert not [t for t in teams if t is not None and t != t.strip()], teams
    assert "" not in teams
