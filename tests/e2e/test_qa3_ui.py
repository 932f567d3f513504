# ruff: noqa: RUF001 - Chinese UI text uses full-width punctuation on purpose
"""Regressions of the trainee home page, the scenario editor and the practice page's
compliance flags found by QA; each test names the defect it pins.

The appliance (demo pack loaded), its SQLite file and the browser are real. One scenario row
is written straight into the database, as a version before a rubric was required stored it.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from appliance.testing import ServerProcess

from tests.e2e.conftest import USERS, expect, login, shot
from tests.e2e.test_practice_ui import TURN_TIMEOUT_MS
from tests.e2e.test_ui_qa import login_zh


def _wait_for_demo(page: Any) -> None:
    for _ in range(120):
        if page.request.get("/api/scenarios").json():
            return
        page.wait_for_timeout(500)
    raise AssertionError("the demo pack did not load")


@contextmanager
def _scenario(page: Any, **fields: Any) -> Iterator[dict[str, Any]]:
    """A scenario made through the API (as the page's user, a manager), archived afterwards."""
    body = {
        "name": f"QA3 {uuid.uuid4().hex[:6]}",
        "description": "A customer calls about the annual fee.",
        "objective": "Keep the customer.",
        "rubric_id": page.request.get("/api/rubrics").json()[0]["id"],
        **fields,
    }
    made = page.request.post("/api/scenarios", data=body)
    assert made.status == 201, made.text()
    scenario: dict[str, Any] = made.json()
    try:
        yield scenario
    finally:
        page.request.delete(f"/api/scenarios/{scenario['id']}")


def test_home_offers_only_personas_of_the_scenarios_language(
    new_page: Callable[..., Any], e2e_server: ServerProcess
) -> None:
    """A scenario with no personas ticked listed every persona, Chinese ones for an English
    scenario too; picking one failed with language_mismatch. A scenario stored without a
    rubric (older data) was offered and could never start."""
    manager = new_page()
    login(manager, USERS["manager"])
    _wait_for_demo(manager)
    personas = manager.request.get("/api/personas").json()
    english = sorted(p["name"] for p in personas if p["language"] == "en")
    chinese = [p["name"] for p in personas if p["language"] == "zh"]
    assert english and chinese  # the demo pack has both
    with (
        _scenario(manager, language="en", persona_ids=[]) as anyone,
        _scenario(manager, language="en", name=f"QA3 old {uuid.uuid4().hex[:6]}") as old,
    ):
        with sqlite3.connect(e2e_server.state_dir / "salesboost.db", timeout=30) as db:
            db.execute("UPDATE scenarios SET rubric_id = NULL WHERE id = ?", (old["id"],))
        db.close()

        trainee = new_page()
        login(trainee, USERS["trainee"])
        trainee.goto("/home")
        card = trainee.locator(f'article.scenario[data-scenario="{anyone["id"]}"]')
        expect(card).to_be_visible()
        offered = card.locator("select option").all_inner_texts()
        assert sorted(o.split(" · ")[0] for o in offered) == english, offered
        assert not [o for o in offered if any(name in o for name in chinese)], offered
        # the scenario without a rubric is not offered to a trainee at all
        expect(trainee.locator(f'article.scenario[data-scenario="{old["id"]}"]')).to_have_count(0)
        shot(trainee, "qa3-home-personas-by-language")

        # each persona offered starts a session (none is refused for its language)
        for index in range(len(offered)):
            trainee.goto("/home")
            card.locator("select").select_option(index=index)
            card.locator("button.start").click()
            trainee.wait_for_url(re.compile(r"/practice/\d+$"))
            session_id = trainee.url.rsplit("/", 1)[1]
            assert trainee.request.post(f"/api/sessions/{session_id}/end").status == 202

        # a manager sees it, marked as not ready, with no start
        manager.goto("/home")
        marked = manager.locator(f'article.scenario[data-scenario="{old["id"]}"]')
        expect(marked.locator(".no-rubric")).to_contain_text("no rubric")
        expect(marked.locator("button.start")).to_be_disabled()


def test_scenario_editor_requires_a_rubric_and_saves_with_an_archived_course(
    new_page: Callable[..., Any],
) -> None:
    """The rubric select offered "(none)", and a scenario saved so could never start; a
    scenario whose course was archived could not be saved again (the editor sends every
    field, the API re-checked the unchanged course)."""
    page = new_page()
    login(page, USERS["manager"])
    _wait_for_demo(page)
    rubric = page.request.get("/api/rubrics").json()[0]
    page.goto("/editors/scenarios")
    select = page.locator("#f-rubric_id")
    expect(select.locator("option", has_text=rubric["name"])).to_have_count(1)
    options = select.locator("option").all_inner_texts()
    assert "(none)" not in options, options
    expect(select.locator("option").first).to_have_text("(pick one)")
    expect(select.locator("option").first).to_be_disabled()
    expect(page.locator("#f-product_id option").first).to_have_text(
        "(none)"
    )  # optional ones keep it

    name = f"QA3 editor {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name *").fill(name)
    page.get_by_label("Description *").fill("A customer calls about the fee.")
    page.get_by_label("Objective *").fill("Keep the customer.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#err-rubric_id")).to_contain_text("rubric")
    expect(select).to_have_attribute("aria-invalid", "true")
    assert not [s for s in page.request.get("/api/scenarios").json() if s["name"] == name]

    course = page.request.post("/api/courses", data={"name": f"QA3 course {uuid.uuid4().hex[:6]}"})
    assert course.status == 201, course.text()
    course_id = course.json()["id"]
    with _scenario(page, course_id=course_id, name=name) as scenario:
        assert page.request.delete(f"/api/courses/{course_id}").status == 204
        page.goto("/editors/scenarios")
        page.locator("#items button", has_text=name).click()
        expect(page.locator("#f-course_id")).to_have_value(str(course_id))  # kept, marked archived
        expect(select).to_have_value(str(scenario["rubric_id"]))
        expect(select.locator("option", has_text="(pick one)")).to_have_count(0)
        page.get_by_label("Objective *").fill("Agree a fee waiver.")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#form-status")).to_have_text("Saved.")
        expect(page.locator("#form-error")).to_be_empty()
        stored = page.request.get(f"/api/scenarios/{scenario['id']}").json()
        assert (stored["objective"], stored["course_id"]) == ("Agree a fee waiver.", course_id)


def test_chinese_compliance_flag_names_severity_speaker_and_action_in_chinese(
    new_page: Callable[..., Any],
) -> None:
    """A flag read "合规 · block: 禁止“保本”表述 — “…” (trainee, flagged)" in the Chinese UI."""
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["trainee"])
    _wait_for_demo(page)
    page.goto("/home")
    card = page.locator('article.scenario[data-language="zh"]').first
    card.locator("button.start").click()
    page.wait_for_url(re.compile(r"/practice/\d+$"))
    expect(page.locator("#say")).to_be_enabled(timeout=60_000)
    page.locator("#say").fill("您好，这张卡是保本的，您放心。")
    page.locator("#say").press("Enter")
    mine = page.locator("#transcript p.flag", has_text="禁止“保本”表述").first
    expect(mine).to_be_visible(timeout=TURN_TIMEOUT_MS)
    text = mine.inner_text()
    assert text.startswith("合规 · 拦截: 禁止“保本”表述"), text
    assert text.endswith("(学员, 已标记)"), text
    for shown in page.locator("#transcript p.flag").all_inner_texts():  # the customer's too
        for english in ("block", "warn", "trainee", "customer", "flagged", "removed"):
            assert english not in shown, (english, shown)
    shot(page, "qa3-flag-zh")
    session_id = page.url.rsplit("/", 1)[1]
    page.request.post(f"/api/sessions/{session_id}/end")


def test_a_scenario_whose_personas_were_all_archived_says_why_it_cannot_start(
    new_page: Callable[..., Any],
) -> None:
    """Its start button was disabled with no word of why."""
    manager = new_page()
    login(manager, USERS["manager"])
    _wait_for_demo(manager)
    made = manager.request.post(
        "/api/personas",
        data={
            "name": f"QA3 gone {uuid.uuid4().hex[:6]}",
            "description": "Leaves.",
            "language": "en",
        },
    )
    assert made.status == 201, made.text()
    persona = made.json()
    with _scenario(manager, language="en", persona_ids=[persona["id"]]) as lonely:
        assert manager.request.delete(f"/api/personas/{persona['id']}").status == 204
        manager.goto("/home")
        card = manager.locator(f'article.scenario[data-scenario="{lonely["id"]}"]')
        expect(card.locator(".no-persona")).to_contain_text("no customer persona")
        expect(card.locator("button.start")).to_be_disabled()


def test_a_line_over_the_limit_is_refused_with_a_reason_not_cut(
    new_page: Callable[..., Any],
) -> None:
    """QA: a 5,000-character line was cut to 2,000 by the textarea and sent as a turn ending
    mid-word, with no word of it. And the score line under the newest turn stayed below the
    fold, under the input box."""
    from tests.e2e.test_practice_ui import say, start_practice

    page = new_page(width=820, height=560)
    login(page, USERS["trainee2"])
    start_practice(page)
    long_line = ("We have many benefits for frequent travellers. " * 110)[:5000]
    page.locator("#say").fill(long_line)
    page.locator("#say").press("Enter")
    expect(page.locator("#chat-error")).to_contain_text("5000 characters; at most 2000")
    assert page.locator("#say").input_value() == long_line  # kept, to shorten
    assert page.locator("#transcript li.turn").count() == 0
    say(page, "Good morning Mr. Chen, this is Li from the bank.")
    say(page, "How do you use the card at the moment?")
    li = say(page, "Roughly how much do you spend on it in a year?")
    score = li.locator("p.scores")
    expect(score).to_have_count(1, timeout=TURN_TIMEOUT_MS)
    page.wait_for_timeout(300)
    box = page.locator("#transcript").bounding_box()
    line = score.bounding_box()
    assert box is not None and line is not None
    assert line["y"] + line["height"] <= box["y"] + box["height"] + 1, (line, box)
