"""The practice catalogue over HTTP on the real server: CRUD, validation codes, rubric versions,
archiving, roles and audit rows.

Real parts only: the session's `salesboost serve` and its SQLite file. Names carry a random
suffix so the tests do not see each other's rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest


def _u(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


DIMENSIONS = [
    {
        "key": "needs_discovery",
        "name": "Needs discovery",
        "weight": 2,
        "description": "Asks open questions.",
        "stages": ["NEEDS_DISCOVERY"],
    },
    {
        "key": "closing",
        "name": "Closing",
        "weight": 1,
        "description": "Asks for the decision.",
        "stages": ["CLOSING"],
    },
]


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert body["detail"]["field"] == field, body
        assert field in body["message"], body


@pytest.fixture(scope="module")
def manager(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["manager"]


@pytest.fixture(scope="module")
def refs(manager: httpx.Client) -> dict[str, int]:
    """A course, product, rubric and two personas to reference."""
    course = _created(manager.post("/api/courses", json={"name": _u("Course")}))
    product = _created(
        manager.post(
            "/api/products",
            json={
                "name": _u("Card"),
                "fees": {"annual_fee": 695},
                "waivers": [
                    {"fee": "annual_fee", "condition": "spend 25k", "min_annual_spend": 25000}
                ],
                "benefits": ["lounges"],
            },
        )
    )
    rubric = _created(
        manager.post("/api/rubrics", json={"name": _u("Rubric"), "dimensions": DIMENSIONS})
    )
    personas = [
        _created(
            manager.post(
                "/api/personas",
                json={"name": _u("Persona"), "description": "A busy owner.", "difficulty": d},
            )
        )
        for d in ("hard", "easy")
    ]
    return {
        "course": course["id"],
        "product": product["id"],
        "rubric": rubric["id"],
        "persona": personas[0]["id"],
        "persona2": personas[1]["id"],
    }


def _scenario_body(refs: dict[str, int], **over: Any) -> dict[str, Any]:
    body = {
        "name": _u("Retention"),
        "description": "The customer wants to cancel.",
        "objective": "Keep the customer.",
        "kind": "retention",
        "course_id": refs["course"],
        "product_id": refs["product"],
        "rubric_id": refs["rubric"],
        "persona_ids": [refs["persona"], refs["persona2"]],
        "knowledge_collection": "demo",
    }
    body.update(over)
    return body


def test_scenario_crud_and_archive(manager: httpx.Client, refs: dict[str, int]) -> None:
    made = _created(manager.post("/api/scenarios", json=_scenario_body(refs)))
    assert made["persona_ids"] == [refs["persona"], refs["persona2"]]
    assert made["archived"] is False and made["created_at"]
    sid = made["id"]

    got = manager.get(f"/api/scenarios/{sid}").json()
    assert got["name"] == made["name"] and got["rubric_id"] == refs["rubric"]

    patched = manager.patch(
        f"/api/scenarios/{sid}", json={"objective": "Agree a fee waiver.", "persona_ids": []}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["objective"] == "Agree a fee waiver."
    assert patched.json()["persona_ids"] == []
    assert patched.json()["name"] == made["name"]  # untouched fields stay

    assert sid in [s["id"] for s in manager.get("/api/scenarios").json()]
    assert manager.delete(f"/api/scenarios/{sid}").status_code == 204
    assert sid not in [s["id"] for s in manager.get("/api/scenarios").json()]
    listed = manager.get("/api/scenarios", params={"include_archived": "true"}).json()
    assert sid in [s["id"] for s in listed]
    still = manager.get(f"/api/scenarios/{sid}")
    assert still.status_code == 200 and still.json()["archived"] is True
    assert manager.delete(f"/api/scenarios/{sid}").status_code == 204  # idempotent
    _error(manager.get("/api/scenarios/999999"), 404, "not_found")
    _error(manager.delete("/api/scenarios/999999"), 404, "not_found")


def test_patch_clears_a_reference_with_null(manager: httpx.Client, refs: dict[str, int]) -> None:
    made = _created(manager.post("/api/scenarios", json=_scenario_body(refs)))
    r = manager.patch(f"/api/scenarios/{made['id']}", json={"product_id": None})
    assert r.status_code == 200, r.text
    assert r.json()["product_id"] is None and r.json()["rubric_id"] == refs["rubric"]


def test_references_must_exist_and_be_live(manager: httpx.Client, refs: dict[str, int]) -> None:
    for field, value in (
        ("product_id", 999999),
        ("rubric_id", 999999),
        ("course_id", 999999),
        ("persona_ids", [refs["persona"], 999999]),
    ):
        r = manager.post("/api/scenarios", json=_scenario_body(refs, **{field: value}))
        expected = "persona_ids[1]" if field == "persona_ids" else field
        _error(r, 422, "unknown_reference", expected)

    doomed = _created(
        manager.post("/api/personas", json={"name": _u("Gone"), "description": "Leaves."})
    )
    assert manager.delete(f"/api/personas/{doomed['id']}").status_code == 204
    r = manager.post("/api/scenarios", json=_scenario_body(refs, persona_ids=[doomed["id"]]))
    _error(r, 422, "unknown_reference", "persona_ids[0]")

    # a scenario that already uses a persona archived later can still be edited elsewhere
    persona = _created(
        manager.post("/api/personas", json={"name": _u("Later"), "description": "Stays."})
    )
    made = _created(
        manager.post("/api/scenarios", json=_scenario_body(refs, persona_ids=[persona["id"]]))
    )
    assert manager.delete(f"/api/personas/{persona['id']}").status_code == 204
    r = manager.patch(f"/api/scenarios/{made['id']}", json={"description": "New text."})
    assert r.status_code == 200, r.text
    assert r.json()["persona_ids"] == [persona["id"]]
    # sent again unchanged (the editor sends every field) it is no change: accepted
    r = manager.patch(f"/api/scenarios/{made['id']}", json={"persona_ids": [persona["id"]]})
    assert r.status_code == 200, r.text
    # newly adding an archived persona is refused
    r = manager.patch(
        f"/api/scenarios/{made['id']}", json={"persona_ids": [persona["id"], doomed["id"]]}
    )
    _error(r, 422, "unknown_reference", "persona_ids[1]")


def test_validation_codes(manager: httpx.Client, refs: dict[str, int]) -> None:
    _error(manager.post("/api/courses", json={"name": "   "}), 400, "empty_field", "name")
    _error(
        manager.post("/api/scenarios", json=_scenario_body(refs, objective="")),
        400,
        "empty_field",
        "objective",
    )
    _error(
        manager.post("/api/personas", json={"name": "X", "description": "Y", "initial_mood": 1.5}),
        400,
        "out_of_range",
        "initial_mood",
    )
    _error(
        manager.post("/api/personas", json={"name": "X", "description": "Y", "difficulty": "?"}),
        400,
        "invalid_request",
    )

    def rubric(dims: list[dict[str, Any]]) -> httpx.Response:
        return manager.post("/api/rubrics", json={"name": _u("R"), "dimensions": dims})

    _error(rubric([]), 400, "no_dimensions", "dimensions")
    _error(rubric([{**DIMENSIONS[0], "weight": 0}]), 400, "invalid_weight", "dimensions[0].weight")
    _error(rubric([{**DIMENSIONS[0], "weight": -1}]), 400, "invalid_weight", "dimensions[0].weight")
    _error(
        rubric([DIMENSIONS[0], {**DIMENSIONS[1], "key": "needs_discovery"}]),
        400,
        "duplicate_dimension",
        "dimensions[1].key",
    )
    _error(
        rubric([{**DIMENSIONS[0], "stages": ["OPENING", "HAGGLING"]}]),
        400,
        "unknown_stage",
        "dimensions[0].stages[1]",
    )
    _error(rubric([{**DIMENSIONS[0], "name": ""}]), 400, "empty_field", "dimensions[0].name")

    def rule(**over: Any) -> httpx.Response:
        body = {"name": _u("Rule"), "kind": "regex", "pattern": "risk[- ]free", "severity": "warn"}
        return manager.post("/api/compliance-rules", json={**body, **over})

    _error(rule(pattern="guaranteed (returns"), 400, "invalid_pattern", "pattern")
    _error(rule(pattern="a*"), 400, "invalid_pattern", "pattern")
    _error(rule(kind="phrase", pattern="  "), 400, "invalid_pattern", "pattern")
    _error(rule(severity="fatal"), 400, "invalid_request")
    made = _created(rule())
    _error(
        manager.patch(f"/api/compliance-rules/{made['id']}", json={"pattern": "(("}),
        400,
        "invalid_pattern",
        "pattern",
    )
    assert manager.get(f"/api/compliance-rules/{made['id']}").json()["pattern"] == "risk[- ]free"

    def product(**over: Any) -> httpx.Response:
        return manager.post("/api/products", json={"name": _u("P"), **over})

    _error(product(fees={"annual_fee": -5}), 400, "out_of_range", "fees.annual_fee")
    _error(
        product(fees={"annual_fee": 5}, waivers=[{"fee": "monthly_fee", "condition": "c"}]),
        422,
        "unknown_reference",
        "waivers[0].fee",
    )
    _error(product(currency="dollars"), 400, "invalid_field", "currency")
    _error(
        manager.post("/api/courses", json={"name": "x", "colour": "red"}), 400, "invalid_request"
    )
    # the server keeps serving after all that
    assert manager.get("/api/courses").status_code == 200


def test_rubric_versions(manager: httpx.Client) -> None:
    made = _created(
        manager.post("/api/rubrics", json={"name": _u("Versioned"), "dimensions": DIMENSIONS})
    )
    rid = made["id"]
    assert made["version"] == 1 and made["versions"] == [1]

    renamed = manager.patch(f"/api/rubrics/{rid}", json={"name": made["name"] + " (renamed)"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["version"] == 1  # a name alone makes no new version

    new_dims = [{**DIMENSIONS[0], "weight": 3}, DIMENSIONS[1]]
    v2 = manager.patch(f"/api/rubrics/{rid}", json={"dimensions": new_dims}).json()
    assert v2["version"] == 2 and v2["versions"] == [1, 2]
    assert v2["dimensions"][0]["weight"] == 3

    same = manager.patch(f"/api/rubrics/{rid}", json={"dimensions": new_dims}).json()
    assert same["version"] == 2  # unchanged dimensions: no new version

    latest = manager.get(f"/api/rubrics/{rid}").json()
    assert latest["version"] == 2 and latest["latest_version"] == 2
    old = manager.get(f"/api/rubrics/{rid}", params={"version": 1}).json()
    assert old["version"] == 1 and old["dimensions"][0]["weight"] == 2
    assert old["latest_version"] == 2
    _error(manager.get(f"/api/rubrics/{rid}", params={"version": 7}), 404, "not_found")

    assert manager.delete(f"/api/rubrics/{rid}").status_code == 204
    assert rid not in [r["id"] for r in manager.get("/api/rubrics").json()]
    archived_v1 = manager.get(f"/api/rubrics/{rid}", params={"version": 1})
    assert archived_v1.status_code == 200 and archived_v1.json()["archived"] is True


def test_roles(clients: dict[str, httpx.Client], anon: httpx.Client, refs: dict[str, int]) -> None:
    trainee = clients["trainee"]
    manager = clients["manager"]
    made = _created(manager.post("/api/scenarios", json=_scenario_body(refs)))
    # trainees read what they pick from
    assert trainee.get("/api/scenarios").status_code == 200
    assert trainee.get(f"/api/scenarios/{made['id']}").status_code == 200
    assert trainee.get("/api/personas").status_code == 200
    assert trainee.get("/api/courses").status_code == 200
    # but not the rest, and they write nothing
    for path in ("/api/rubrics", "/api/products", "/api/compliance-rules"):
        _error(trainee.get(path), 403, "forbidden")
    _error(trainee.post("/api/scenarios", json=_scenario_body(refs)), 403, "forbidden")
    _error(trainee.patch(f"/api/scenarios/{made['id']}", json={"name": "mine"}), 403, "forbidden")
    _error(trainee.delete(f"/api/scenarios/{made['id']}"), 403, "forbidden")
    _error(anon.get("/api/scenarios"), 401, "not_authenticated")
    # an admin may do what a manager does
    assert (
        clients["admin"].patch(f"/api/scenarios/{made['id']}", json={"kind": "other"}).status_code
        == 200
    )


def test_trainees_see_a_personas_brief_not_its_script(clients: dict[str, httpx.Client]) -> None:
    """Goals, objections and what the customer knows would spoil the exercise."""
    secret = {"goals": ["cancel today"], "objections": ["the fee is a rip-off"], "knows": ["$695"]}
    made = _created(
        clients["manager"].post(
            "/api/personas",
            json={"name": _u("Mrs Lee"), "description": "Runs a bakery.", **secret},
        )
    )
    for role in ("manager", "admin"):
        full = clients[role].get(f"/api/personas/{made['id']}").json()
        assert {k: full[k] for k in secret} == secret
    brief = clients["trainee"].get(f"/api/personas/{made['id']}")
    assert brief.status_code == 200
    assert brief.json()["name"] == made["name"]
    assert brief.json()["description"] == "Runs a bakery."
    listed = next(
        p for p in clients["trainee"].get("/api/personas").json() if p["id"] == made["id"]
    )
    for shown in (brief.json(), listed):
        assert not set(secret) & set(shown), shown
        assert "rip-off" not in str(shown)


def test_writes_are_audited(clients: dict[str, httpx.Client]) -> None:
    manager = clients["manager"]
    made = _created(manager.post("/api/courses", json={"name": _u("Audited")}))
    manager.patch(f"/api/courses/{made['id']}", json={"description": "now described"})
    assert manager.patch(f"/api/courses/{made['id']}", json={}).status_code == 200  # no-op
    manager.delete(f"/api/courses/{made['id']}")
    entries = clients["admin"].get("/api/audit", params={"limit": 1000}).json()
    mine = [e for e in entries if e["target"] == f"course:{made['id']}"]
    assert {e["action"] for e in mine} == {"course.create", "course.update", "course.archive"}
    assert all(e["actor"] == "manager1" for e in mine)
    assert len(mine) == 3  # the empty PATCH left no row
    update = next(e for e in mine if e["action"] == "course.update")
    assert update["detail"] == {"fields": ["description"]}
