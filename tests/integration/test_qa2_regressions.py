# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""Three defects of the practice domain found by exploratory QA, each pinned by a test.

- a session ended with no turns is not scored (and stays out of trends);
- a scenario and the personas it offers speak one language (``language_mismatch``);
- stored text refuses NUL, other control characters and, in names, bidi overrides (``invalid_text``).

One real server (demo pack loaded), real users, real WebSockets; no test needs an LLM reply.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(300)

PEOPLE = {
    "admin": Account("qa2-admin", "admin", "hq"),
    "manager": Account("qa2-manager", "manager", "alpha"),
    "trainee": Account("qa2-trainee", "trainee", "alpha"),
}


@pytest.fixture(scope="module")
def qa2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An appliance with the demo pack."""
    with demo_server(tmp_path_factory.mktemp("qa2-state"), PEOPLE) as srv:
        yield srv


@pytest.fixture(scope="module")
def qa2(qa2_server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """Logged-in clients by role name."""
    with logged_in(qa2_server, PEOPLE) as made:
        yield made


def _personas(client: httpx.Client, language: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        client.get("/api/personas", params={"language": language}).raise_for_status().json()
    )
    assert found, f"the demo pack has {language} personas"
    return found


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# --- 1. a session with no turns is not scored -------------------------------------------------


def _end_without_turns(server: ServerProcess, trainee: httpx.Client, language: str) -> int:
    session = new_session(trainee, language)
    ws = WS.open(server.url, session["id"], trainee)
    try:
        ws.hello()
        ws.send(type="end")
        ready = ws.until("report_ready", timeout=60)[-1]
    finally:
        ws.close()
    assert ready["scored"] is False, ready
    return int(session["id"])


def test_a_session_ended_with_no_turns_is_not_scored_and_stays_out_of_trends(
    qa2_server: ServerProcess, qa2: dict[str, httpx.Client]
) -> None:
    trainee, manager = qa2["trainee"], qa2["manager"]
    me = trainee.get("/api/auth/me").raise_for_status().json()
    en_id = _end_without_turns(qa2_server, trainee, "en")
    zh_id = _end_without_turns(qa2_server, trainee, "zh")

    report = trainee.get(f"/api/sessions/{en_id}/report").raise_for_status().json()
    assert report["scored"] is False
    assert report["not_scored_reason"] == "no_turns"
    assert report["turns"] == 0
    assert report["dimensions"] == []  # no 0s per dimension either
    assert report["generated_by"] == "not scored (no turns)"  # the LLM was not asked

    # the session lists show no score for it, the trends leave it out
    listed = {s["id"]: s for s in trainee.get("/api/sessions").raise_for_status().json()}
    assert listed[en_id]["report_id"] is not None
    assert listed[en_id]["overall"] is None and listed[zh_id]["overall"] is None
    for viewer in (trainee, manager):
        trends = viewer.get(f"/api/trends/{me['id']}").raise_for_status().json()
        points = trends["overall"] + [p for ps in trends["dimensions"].values() for p in ps]
        assert {p["session_id"] for p in points}.isdisjoint({en_id, zh_id}), trends

    # the printable report says so, in the session's language, and the UI pages still render
    en_page = trainee.get(f"/api/sessions/{en_id}/report.html")
    assert en_page.status_code == 200
    assert "Not scored: no turns" in en_page.text
    assert "0.0<small>/10" not in en_page.text
    zh_page = trainee.get(f"/api/sessions/{zh_id}/report.html")
    assert zh_page.status_code == 200
    assert "未评分：没有对话轮次" in zh_page.text
    assert "Not scored" not in zh_page.text
    # the stage slots never covered are named as the practice page names them, not by key
    assert "customer addressed by name" in en_page.text
    assert ">customer_addressed_by_name<" not in en_page.text
    assert "称呼客户姓名" in zh_page.text
    history = trainee.get("/history", params={"lang": "en"})
    assert history.status_code == 200
    assert "not scored" in history.text  # the session list says why there is no score
    team = manager.get("/team")
    assert team.status_code == 200
    assert "Traceback" not in qa2_server.log()


# --- 2. one language per scenario and its personas --------------------------------------------


def test_a_scenario_and_its_personas_must_share_a_language(qa2: dict[str, httpx.Client]) -> None:
    manager, trainee = qa2["manager"], qa2["trainee"]
    en, zh = _personas(manager, "en")[0], _personas(manager, "zh")[0]
    rubric_id = manager.get("/api/rubrics").raise_for_status().json()[0]["id"]
    base = {
        "name": "QA2 language check",
        "description": "d",
        "objective": "o",
        "rubric_id": rubric_id,
    }

    body = _error(
        manager.post(
            "/api/scenarios", json={**base, "language": "zh", "persona_ids": [zh["id"], en["id"]]}
        ),
        422,
        "language_mismatch",
    )
    for word in ("'zh'", "'en'", en["name"]):
        assert word in body["message"], body
    assert body["detail"]["field"] == "persona_ids[1]"
    assert body["detail"]["persona_id"] == en["id"]

    made = manager.post(
        "/api/scenarios",
        json={**base, "language": "en", "persona_ids": [en["id"]]},
    )
    assert made.status_code == 201, made.text
    scenario = made.json()
    # patching the scenario's language, or adding a persona of the other one: refused
    _error(
        manager.patch(f"/api/scenarios/{scenario['id']}", json={"language": "zh"}),
        422,
        "language_mismatch",
    )
    _error(
        manager.patch(
            f"/api/scenarios/{scenario['id']}", json={"persona_ids": [en["id"], zh["id"]]}
        ),
        422,
        "language_mismatch",
    )
    # both at once is consistent again
    both = manager.patch(
        f"/api/scenarios/{scenario['id']}", json={"language": "zh", "persona_ids": [zh["id"]]}
    )
    assert both.status_code == 200, both.text
    assert manager.patch(
        f"/api/scenarios/{scenario['id']}", json={"language": "en", "persona_ids": [en["id"]]}
    ).is_success

    # a persona's language cannot change under a live scenario of the other language
    persona = manager.post(
        "/api/personas", json={"name": "QA2 Ms. Park", "description": "d", "language": "en"}
    ).json()
    used = manager.post(
        "/api/scenarios",
        json={**base, "name": "QA2 uses Ms. Park", "persona_ids": [persona["id"]]},
    ).json()
    body = _error(
        manager.patch(f"/api/personas/{persona['id']}", json={"language": "zh"}),
        422,
        "language_mismatch",
    )
    assert "QA2 Ms. Park" in body["message"] and "QA2 uses Ms. Park" in body["message"], body
    assert manager.get(f"/api/personas/{persona['id']}").json()["language"] == "en"
    assert manager.patch(f"/api/personas/{persona['id']}", json={"difficulty": "hard"}).is_success
    assert manager.delete(f"/api/scenarios/{used['id']}").status_code == 204
    moved = manager.patch(f"/api/personas/{persona['id']}", json={"language": "zh"})
    assert moved.status_code == 200, moved.text  # no live scenario holds it back any more

    # a scenario offering any persona still starts a session only in its own language
    anyone = manager.post("/api/scenarios", json={**base, "name": "QA2 any persona"}).json()
    _error(
        trainee.post("/api/sessions", json={"scenario_id": anyone["id"], "persona_id": zh["id"]}),
        422,
        "language_mismatch",
    )
    started = trainee.post(
        "/api/sessions", json={"scenario_id": anyone["id"], "persona_id": en["id"]}
    )
    assert started.status_code == 201, started.text


def test_the_demo_pack_still_loads_with_one_language_per_scenario(
    qa2: dict[str, httpx.Client],
) -> None:
    manager = qa2["manager"]
    personas = {p["id"]: p for p in manager.get("/api/personas").raise_for_status().json()}
    demo = [
        s
        for s in manager.get("/api/scenarios").raise_for_status().json()
        if not s["name"].startswith("QA2")
    ]
    assert len(demo) == 4, demo
    for scenario in demo:
        assert scenario["persona_ids"], scenario
        for pid in scenario["persona_ids"]:
            assert personas[pid]["language"] == scenario["language"], (scenario, personas[pid])


# --- 3. control and bidi characters -----------------------------------------------------------


def _invalid_text(response: httpx.Response, field: str, char: str) -> None:
    body = _error(response, 400, "invalid_text")
    assert body["detail"]["field"] == field, body
    assert body["detail"]["character"] == char, body
    assert field in body["message"] and char in body["message"], body


def test_control_characters_are_refused_in_every_stored_text(
    qa2_server: ServerProcess, qa2: dict[str, httpx.Client]
) -> None:
    manager, admin = qa2["manager"], qa2["admin"]
    persona = {"name": "QA2 Mr. Text", "description": "A careful buyer.", "language": "en"}
    _invalid_text(
        manager.post("/api/personas", json={**persona, "name": "Mr.\x00Text"}), "name", "U+0000"
    )
    _invalid_text(
        manager.post("/api/personas", json={**persona, "description": "bell \x07 here"}),
        "description",
        "U+0007",
    )
    _invalid_text(
        manager.post("/api/personas", json={**persona, "goals": ["ok", "esc \x1b[31m"]}),
        "goals[1]",
        "U+001B",
    )
    _invalid_text(
        manager.post("/api/personas", json={**persona, "objections": ["C1 \x85 next line"]}),
        "objections[0]",
        "U+0085",
    )
    _invalid_text(manager.post("/api/courses", json={"name": "tab\tin a name"}), "name", "U+0009")
    _invalid_text(
        manager.post(
            "/api/rubrics",
            json={
                "name": "QA2 rubric",
                "dimensions": [{"key": "k\x00", "name": "K", "weight": 1, "description": "d"}],
            },
        ),
        "dimensions[0].key",
        "U+0000",
    )
    _invalid_text(
        manager.post("/api/products", json={"name": "QA2 card", "fees": {"annual\x00": 1}}),
        "fees.'annual\\x00'",
        "U+0000",
    )
    _invalid_text(
        manager.post(
            "/api/compliance-rules",
            json={"name": "QA2 rule", "kind": "phrase", "pattern": "a\x00b", "severity": "warn"},
        ),
        "pattern",
        "U+0000",
    )
    # multi-line free text keeps its newlines and tabs
    fine = manager.post(
        "/api/personas", json={**persona, "description": "Line one.\r\n\tLine two."}
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["description"] == "Line one.\r\n\tLine two."
    # a PATCH goes through the same check
    _invalid_text(
        manager.patch(f"/api/personas/{fine.json()['id']}", json={"knows": ["x\x7fy"]}),
        "knows[0]",
        "U+007F",
    )

    # users, display names, teams and token names
    user = {"username": "qa2-new", "role": "trainee", "team": "alpha"}
    _invalid_text(
        admin.post("/api/users", json={**user, "username": "eve\x00"}), "username", "U+0000"
    )
    _invalid_text(
        admin.post("/api/users", json={**user, "display_name": "Eve\x1b[2J"}),
        "display_name",
        "U+001B",
    )
    _invalid_text(admin.post("/api/users", json={**user, "team": "al\x00pha"}), "team", "U+0000")
    made = admin.post("/api/users", json={**user, "display_name": "Eve"})
    assert made.status_code == 201, made.text
    uid = made.json()["user"]["id"]
    _invalid_text(
        admin.patch(f"/api/users/{uid}", json={"display_name": "E\x00ve"}), "display_name", "U+0000"
    )
    _invalid_text(manager.post("/api/tokens", json={"name": "ci\x00"}), "name", "U+0000")
    # a failed login's username is written to the audit log: refused before it gets there
    login = httpx.post(
        f"{qa2_server.url}/api/auth/login",
        json={"username": "admin\u202e", "password": "wrong"},
        timeout=30,
    )
    _invalid_text(login, "username", "U+202E")
    audit = admin.get("/api/audit", params={"action": "login_failed"}).raise_for_status().json()
    assert not any("\u202e" in str(entry) for entry in audit), audit

    # knowledge uploads: title, tags, collection (checked before anything is stored)
    files = {"files": ("note.txt", b"Plain text about the card.", "text/plain")}
    _invalid_text(
        manager.post("/api/knowledge/documents", files=files, data={"title": "Fee\x00sheet"}),
        "title",
        "U+0000",
    )
    _invalid_text(
        manager.post("/api/knowledge/documents", files=files, data={"tags": "ok,b\x00d"}),
        "tags[1]",
        "U+0000",
    )


def test_bidi_overrides_are_refused_in_names_and_kept_in_free_text(
    qa2: dict[str, httpx.Client],
) -> None:
    manager, admin = qa2["manager"], qa2["admin"]
    spoof = "Invoice \u202egnp.exe"
    for char in (
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
    ):
        _invalid_text(
            manager.post("/api/courses", json={"name": f"QA2 {char}course"}),
            "name",
            f"U+{ord(char):04X}",
        )
    _invalid_text(
        manager.post("/api/personas", json={"name": spoof, "description": "d"}), "name", "U+202E"
    )
    _invalid_text(
        manager.post(
            "/api/scenarios",
            json={"name": spoof, "description": "d", "objective": "o", "rubric_id": 1},
        ),
        "name",
        "U+202E",
    )
    _invalid_text(
        manager.post(
            "/api/rubrics",
            json={
                "name": "QA2 r",
                "dimensions": [{"key": "k", "name": spoof, "weight": 1, "description": "d"}],
            },
        ),
        "dimensions[0].name",
        "U+202E",
    )
    _invalid_text(
        admin.post(
            "/api/users",
            json={"username": "qa2-\u2067x", "role": "trainee", "team": "alpha"},
        ),
        "username",
        "U+2067",
    )
    _invalid_text(
        admin.post(
            "/api/users",
            json={"username": "qa2-bidi", "role": "trainee", "display_name": spoof},
        ),
        "display_name",
        "U+202E",
    )
    files = {"files": ("note.txt", b"Plain text about the card.", "text/plain")}
    _invalid_text(
        manager.post("/api/knowledge/documents", files=files, data={"title": spoof}),
        "title",
        "U+202E",
    )
    # long free text keeps them (right-to-left text needs them); plain marks stay allowed anywhere
    rtl = "Speaks \u2067\u05e9\u05dc\u05d5\u05dd\u2069 to Hebrew-speaking clients \u202bמ\u202c."
    made = manager.post(
        "/api/personas",
        json={"name": "QA2 \u200fRTL\u200e buyer", "description": rtl, "goals": [rtl]},
    )
    assert made.status_code == 201, made.text
    assert made.json()["description"] == rtl and made.json()["goals"] == [rtl]
    assert made.json()["name"] == "QA2 \u200fRTL\u200e buyer"


def test_a_say_with_control_characters_is_an_error_event_and_the_socket_stays(
    qa2_server: ServerProcess, qa2: dict[str, httpx.Client]
) -> None:
    trainee = qa2["trainee"]
    session = new_session(trainee)
    ws = WS.open(qa2_server.url, session["id"], trainee)
    try:
        ws.hello()
        for text, char in (("hello\x00", "U+0000"), ("\x1b[2J wipe the screen", "U+001B")):
            cid = uuid.uuid4().hex
            ws.send(type="say", client_turn_id=cid, text=text)
            error = ws.until("error", timeout=15)[-1]
            assert error["code"] == "invalid_text", error
            assert error["client_turn_id"] == cid
            assert char in error["message"] and "text" in error["message"], error
        ws.send(type="ping")  # still connected and usable
        assert ws.until("pong", timeout=15)[-1]["type"] == "pong"
    finally:
        ws.close()
    detail = trainee.get(f"/api/sessions/{session['id']}").raise_for_status().json()
    assert detail["transcript"] == []  # nothing was committed
    assert "Traceback" not in qa2_server.log()
