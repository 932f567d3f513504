"""A manager edits the practice catalogue in the browser; the API's validation shows at the field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import USERS, expect, login, shot


def test_persona_editor_shows_validation_inline_then_saves(new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/editors/personas")
    expect(page.locator("#delete")).to_be_hidden()  # nothing to delete in a new item
    expect(page.get_by_label("Difficulty")).to_have_value("medium")  # the API's defaults
    name = f"Ms. Test {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name *").fill(name)
    page.get_by_label("Description *").fill("A careful buyer who compares every fee.")
    page.get_by_label("Objections").fill("The fee is too high\nI never travel")
    page.get_by_label("Initial mood (0-1)").fill("5")  # out of range
    page.get_by_role("button", name="Save").click()

    expect(page.locator("#form-error")).to_contain_text("initial_mood")
    expect(page.locator("#err-initial_mood")).not_to_be_empty()
    expect(page.get_by_label("Initial mood (0-1)")).to_have_attribute("aria-invalid", "true")
    shot(page, "editor-validation")

    page.get_by_label("Initial mood (0-1)").fill("0.4")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-status")).to_have_text("Saved.")
    expect(page.locator("#form-heading")).to_contain_text("Edit #")
    expect(page.locator("#delete")).to_be_visible()
    expect(page.locator("#items button", has_text=name)).to_be_visible()
    stored = [p for p in page.request.get("/api/personas").json() if p["name"] == name]
    assert len(stored) == 1
    assert stored[0]["objections"] == ["The fee is too high", "I never travel"]
    assert stored[0]["initial_mood"] == 0.4


def test_rubric_editor_reports_bad_json_and_api_errors(new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/editors/rubrics")
    page.get_by_label("Name *").fill(f"Rubric {uuid.uuid4().hex[:6]}")
    page.get_by_label("Dimensions *").fill("[{not json")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#err-dimensions")).to_contain_text("JSON")

    page.get_by_label("Dimensions *").fill("[]")  # the API wants at least one dimension
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-error")).not_to_be_empty()
    expect(page.locator("#err-dimensions")).not_to_be_empty()


def test_a_scenario_picks_its_course_product_rubric_and_personas_by_name(
    new_page: Callable[..., Any],
) -> None:
    """A manager set a scenario's course, product, rubric and personas by typing their ids
    ("Persona ids: 1, 2, 3"), with no way to see which id was which. They are picked by name
    now; a course is made in its own tab; a persona archived later stays on the scenario,
    marked archived, until the manager unticks it."""
    page = new_page()
    login(page, USERS["manager"])
    tag = uuid.uuid4().hex[:6]
    page.goto("/editors/courses")
    page.get_by_label("Name *").fill(f"Course {tag}")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-status")).to_have_text("Saved.")
    course = next(
        c for c in page.request.get("/api/courses").json() if c["name"] == f"Course {tag}"
    )

    made = page.request.post(
        "/api/personas",
        data={"name": f"Mr. Short-lived {tag}", "description": "Archived after he is picked."},
    )
    assert made.status == 201, made.text()
    doomed = made.json()
    demo_personas = [p for p in page.request.get("/api/personas").json() if p["language"] == "en"]
    product = page.request.get("/api/products").json()[0]
    rubric = page.request.get("/api/rubrics").json()[0]

    page.goto("/editors/scenarios")
    expect(page.locator("#f-knowledge_collection")).to_have_value("default")
    page.get_by_label("Name *").fill(f"Picked by name {tag}")
    page.get_by_label("Description *").fill("A scenario set up without knowing any id.")
    page.get_by_label("Objective *").fill("Agree a next step.")
    page.get_by_label("Course").select_option(label=f"Course {tag}")
    page.get_by_label("Product").select_option(label=product["name"])
    page.get_by_label("Rubric").select_option(label=rubric["name"])
    persona_box = page.locator("#f-persona_ids")
    persona_box.get_by_label(f"Mr. Short-lived {tag}", exact=False).check()
    first = demo_personas[0]
    persona_box.get_by_label(first["name"] + " · English (en)").check()
    shot(page, "editor-scenario-by-name")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-status")).to_have_text("Saved.")

    saved = next(
        s for s in page.request.get("/api/scenarios").json() if s["name"] == f"Picked by name {tag}"
    )
    assert saved["course_id"] == course["id"]
    assert saved["product_id"] == product["id"] and saved["rubric_id"] == rubric["id"]
    assert sorted(saved["persona_ids"]) == sorted([doomed["id"], first["id"]])

    page.request.delete(f"/api/personas/{doomed['id']}")  # archived
    page.goto("/editors/scenarios")
    page.locator("#items button", has_text=f"Picked by name {tag}").click()
    archived = persona_box.get_by_label(f"#{doomed['id']} (archived)")
    expect(archived).to_be_checked()
    expect(persona_box.get_by_label(first["name"] + " · English (en)")).to_be_checked()
    expect(page.get_by_label("Course")).to_have_value(str(course["id"]))
    archived.uncheck()
    page.get_by_label("Course").select_option(label="(none)")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-status")).to_have_text("Saved.")
    again = page.request.get(f"/api/scenarios/{saved['id']}").json()
    assert again["persona_ids"] == [first["id"]] and again["course_id"] is None
    page.request.delete(f"/api/scenarios/{saved['id']}")
    page.request.delete(f"/api/courses/{course['id']}")
