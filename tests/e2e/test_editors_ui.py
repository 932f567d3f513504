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
