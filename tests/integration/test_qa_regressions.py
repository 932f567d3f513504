"""Rough edges found by exploratory QA against a running appliance, each pinned by a test.

One real server (demo pack loaded), real users, real WebSockets; every test is quick.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from appliance.testing import ServerProcess, cli
from websockets.exceptions import ConnectionClosed

from tests.conftest import Account, add_user, login
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(300)

PEOPLE = {
    "admin": Account("qa-admin", "admin", "hq"),
    "manager": Account("qa-manager", "manager", "alpha"),
    "manager_b": Account("qa-manager-b", "manager", "beta"),
    "trainee": Account("qa-trainee", "trainee", "alpha"),
}
HUGE = 99999999999999999999  # past SQLite's 64-bit integers


@pytest.fixture(scope="module")
def qa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An appliance with the demo pack (its documents ingest in the background)."""
    with demo_server(tmp_path_factory.mktemp("qa-state"), PEOPLE) as srv:
        yield srv


@pytest.fixture(scope="module")
def qa(qa_server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """Logged-in clients by role name."""
    with logged_in(qa_server, PEOPLE) as made:
        yield made


def test_ids_past_64_bits_are_400_not_500(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    manager, trainee = qa["manager"], qa["trainee"]
    answers = [
        manager.get(f"/api/personas/{HUGE}"),
        manager.get(f"/api/scenarios/{HUGE}"),
        manager.patch(f"/api/rubrics/{HUGE}", json={"name": "x"}),
        manager.get("/api/rubrics/1", params={"version": HUGE}),
        manager.get(f"/api/knowledge/jobs/{HUGE}"),
        manager.get("/api/knowledge/search", params={"q": "fee", "document": HUGE}),
        trainee.get(f"/api/sessions/{HUGE}"),
        trainee.get(f"/api/trends/{HUGE}"),
        trainee.post("/api/sessions", json={"scenario_id": HUGE, "persona_id": 1}),
        trainee.get(f"/practice/{HUGE}"),
    ]
    for answer in answers:  # refused by the parameter's bounds, before SQLite
        assert answer.status_code == 400, (answer.request.url, answer.text)
        assert answer.json()["code"] == "invalid_request", answer.text
        assert "9223372036854775807" in answer.text, answer.text
    assert "unhandled error" not in qa_server.log()


def test_hello_with_a_huge_last_seq_is_an_error_event_and_the_socket_stays(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    trainee = qa["trainee"]
    session = new_session(trainee)
    ws = WS.open(qa_server.url, session["id"], trainee)
    try:
        ws.send(type="hello", last_seq=HUGE)
        error = ws.until("error", timeout=15)[-1]
        assert error["code"] == "invalid_message"
        assert ws.hello()["type"] == "welcome"  # still connected and usable
        ws.send(type="ping")
        assert ws.until("pong", timeout=15)[-1]["type"] == "pong"
    finally:
        ws.close()
    # a socket to a session id SQLite cannot hold is "no such session", not an internal error
    with pytest.raises(ConnectionClosed) as closed:
        huge = WS.open(qa_server.url, HUGE, trainee)
        huge.send(type="hello")
        huge.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    assert "Traceback" not in qa_server.log()


def test_schema_page_loads_nothing_from_elsewhere(qa_server: ServerProcess) -> None:
    page = httpx.get(qa_server.url + "/schema", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page.text), "an off-box asset"
    assert "/api/sessions/{session_id}/report" in page.text  # every operation is listed
    for link in re.findall(r'(?:href|src)="(/[^"]*)"', page.text):
        assert httpx.get(qa_server.url + link, timeout=30).status_code == 200, link
    # the CDN-backed viewers are gone rather than blank
    assert httpx.get(qa_server.url + "/schema/swagger", timeout=30).status_code == 404


def test_pages_say_their_charset_once(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    pages = [
        httpx.get(qa_server.url + "/login", timeout=30),
        qa["trainee"].get("/home"),
        qa["trainee"].get("/history"),
        qa["manager"].get("/knowledge"),
    ]
    for page in pages:
        assert page.status_code == 200, page.request.url
        assert page.headers["content-type"] == "text/html; charset=utf-8", page.request.url


def test_another_teams_observe_page_and_trends_are_not_found(qa: dict[str, httpx.Client]) -> None:
    session = new_session(qa["trainee"])  # team alpha
    own = qa["manager"].get(f"/observe/{session['id']}")
    assert own.status_code == 200
    other = qa["manager_b"].get(f"/observe/{session['id']}")  # team beta
    missing = qa["manager_b"].get("/observe/987654")
    assert other.status_code == missing.status_code == 404
    assert other.json()["code"] == missing.json()["code"] == "not_found"
    assert qa["admin"].get(f"/observe/{session['id']}").status_code == 200
    # another team's trainee's trends: not found, with a code about users, not sessions
    hidden = qa["manager_b"].get(f"/api/trends/{session['user_id']}")
    nobody = qa["manager_b"].get("/api/trends/987654")
    assert hidden.status_code == nobody.status_code == 404
    assert hidden.json()["code"] == nobody.json()["code"] == "not_found"


def test_a_collection_no_scenario_could_name_is_refused_at_upload(
    qa: dict[str, httpx.Client], tmp_path: Path
) -> None:
    manager = qa["manager"]
    files = [("files", ("lounge.txt", b"Lounge access is free for cardholders.", "text/plain"))]
    bad = manager.post(
        "/api/knowledge/documents", files=files, data={"collection": "Product Docs!"}
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["code"] == "invalid_field"
    assert bad.json()["detail"] == {"field": "collection"}
    listed = manager.get("/api/knowledge/documents").json()
    assert not [d for d in listed if d["collection"] == "Product Docs!"]
    good = manager.post("/api/knowledge/documents", files=files, data={"collection": "产品.v2"})
    assert good.status_code == 202, good.text
    scenario = manager.post(
        "/api/scenarios",
        json={
            "name": "Lounge questions",
            "description": "A cardholder asks about lounges.",
            "objective": "Explain lounge access.",
            "rubric_id": manager.get("/api/rubrics").json()[0]["id"],  # a rubric is required
            "knowledge_collection": "产品.v2",
        },
    )
    assert scenario.status_code == 201, scenario.text
    (tmp_path / "doc.txt").write_text("Some product text.", encoding="utf-8")
    ingest = cli(tmp_path, "ingest", str(tmp_path / "doc.txt"), "--collection", "Product Docs!")
    assert ingest.returncode == 2
    assert "invalid_field" in ingest.stderr


def test_a_catastrophic_compliance_regex_does_not_freeze_the_server(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    manager, trainee = qa["manager"], qa["trainee"]
    rule = manager.post(
        "/api/compliance-rules",
        json={
            "name": "QA nested repeats",
            "kind": "regex",
            "pattern": "(a+)+$",
            "severity": "warn",
            "applies_to": "both",
            "message": "a manager's slip",
        },
    )
    assert rule.status_code == 201, rule.text
    session = new_session(trainee)
    ws = WS.open(qa_server.url, session["id"], trainee)
    try:
        ws.hello()
        ws.send(type="say", client_turn_id="redos", text="a" * 1900 + "!")
        # with Python's re the trainee-line check alone would hold the event loop for ages;
        # the server keeps answering while the rule is cut off (and says so in its log)
        deadline = time.monotonic() + 20
        while "QA nested repeats" not in qa_server.log():
            assert time.monotonic() < deadline, "the skipped rule was never logged"
            probe_started = time.monotonic()
            assert httpx.get(qa_server.url + "/healthz", timeout=10).status_code == 200
            assert time.monotonic() - probe_started < 2
            time.sleep(0.2)
    finally:
        ws.close()
        manager.delete(f"/api/compliance-rules/{rule.json()['id']}")


def test_messages_say_what_is_wrong_in_the_callers_terms(qa: dict[str, httpx.Client]) -> None:
    manager = qa["manager"]
    heavy = manager.post(
        "/api/rubrics",
        content=b'{"name": "r", "dimensions": [{"key": "a", "name": "A", "weight": 1e308, '
        b'"description": "d"}]}',
        headers={"content-type": "application/json"},
    )
    assert heavy.status_code == 400
    assert heavy.json()["code"] == "invalid_weight"
    assert "at most" in heavy.json()["message"], heavy.text  # not "must be > 0, got 1e+308"
    broken = manager.post(
        "/api/knowledge/documents",
        files=[("files", ("scan.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"))],
        data={"collection": "qa-broken"},
    )
    assert broken.status_code == 202, broken.text
    job_id = broken.json()["items"][0]["job"]["id"]
    deadline = time.monotonic() + 15
    job = manager.get(f"/api/knowledge/jobs/{job_id}").json()
    while job["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = manager.get(f"/api/knowledge/jobs/{job_id}").json()
    assert job["error_code"] == "corrupt_file"
    assert "documents/" not in job["error_message"], job  # no server path in the message


def test_a_missing_body_is_named_and_reset_password_needs_none(
    qa: dict[str, httpx.Client],
) -> None:
    empty = qa["manager"].post("/api/personas")
    assert empty.status_code == 400
    assert empty.json()["code"] == "invalid_request"
    assert empty.json()["message"] == "the request has no body: send a JSON object"
    assert "'data'" not in empty.text  # Litestar's bare KeyError text
    admin = qa["admin"]
    made = admin.post(
        "/api/users", json={"username": "qa-reset-me", "role": "trainee", "team": "alpha"}
    )
    assert made.status_code == 201, made.text
    reset = admin.post(f"/api/users/{made.json()['user']['id']}/reset-password")  # no body
    assert reset.status_code == 200, reset.text
    assert len(reset.json()["password"]) >= 10
    assert admin.post("/api/users/987654/reset-password").status_code == 404


def test_no_new_session_on_an_archived_scenario_or_persona(qa: dict[str, httpx.Client]) -> None:
    manager, trainee = qa["manager"], qa["trainee"]
    persona = manager.post(
        "/api/personas",
        json={"name": "QA Ms. Lin", "description": "A careful saver.", "language": "en"},
    ).json()
    rubric_id = manager.get("/api/rubrics").json()[0]["id"]
    scenario = manager.post(
        "/api/scenarios",
        json={
            "name": "QA archive check",
            "description": "A short call.",
            "objective": "Be clear.",
            "rubric_id": rubric_id,
            "persona_ids": [persona["id"]],
        },
    ).json()
    pair = {"scenario_id": scenario["id"], "persona_id": persona["id"]}
    before = trainee.post("/api/sessions", json=pair)
    assert before.status_code == 201, before.text
    assert manager.delete(f"/api/personas/{persona['id']}").status_code == 204
    refused = trainee.post("/api/sessions", json=pair)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "unknown_reference"
    assert "archived" in refused.json()["message"]
    assert manager.delete(f"/api/scenarios/{scenario['id']}").status_code == 204
    refused = trainee.post("/api/sessions", json=pair)
    assert refused.status_code == 422 and "archived" in refused.json()["message"]
    # the session started before the archive keeps working
    assert trainee.get(f"/api/sessions/{before.json()['id']}").status_code == 200


def test_a_disabled_trainees_open_socket_stops_at_once(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    admin = qa["admin"]
    made = admin.post(
        "/api/users",
        json={
            "username": "qa-leaver",
            "role": "trainee",
            "team": "alpha",
            "password": "leaver-pass-123",
        },
    )
    assert made.status_code == 201, made.text
    leaver = login(qa_server, Account("qa-leaver", "trainee", "alpha", "leaver-pass-123"))
    session = new_session(leaver)
    ws = WS.open(qa_server.url, session["id"], leaver)
    try:
        ws.hello()
        user_id = made.json()["user"]["id"]
        assert admin.patch(f"/api/users/{user_id}", json={"disabled": True}).status_code == 200
        with pytest.raises(ConnectionClosed) as closed:  # closed at once, or at this frame
            ws.send(type="say", client_turn_id="after-disable", text="Hello, anyone there?")
            ws.until("npc_done", timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        ws.close()
    detail = admin.get(f"/api/sessions/{session['id']}").json()
    assert detail["session"]["turns"] == 0  # the line after the disable never became a turn


def test_the_same_file_dropped_twice_at_once_is_one_document(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    manager = qa["manager"]
    content = f"Race {time.time_ns()}: lounge access is unlimited for the cardholder.".encode()

    def upload(i: int) -> httpx.Response:
        with httpx.Client(base_url=qa_server.url, cookies=manager.cookies, timeout=60) as c:
            return c.post(
                "/api/knowledge/documents",
                files=[("files", (f"race{i}.txt", content, "text/plain"))],
                data={"collection": "qa-race"},
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(upload, range(6)))
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    ids = {a.json()["items"][0]["document"]["id"] for a in answers}
    assert len(ids) == 1, ids
    assert sum(not a.json()["items"][0]["duplicate"] for a in answers) == 1
    listed = manager.get("/api/knowledge/documents").json()
    assert [d["id"] for d in listed if d["collection"] == "qa-race"] == list(ids)


def test_refused_says_carry_their_client_turn_id(
    qa_server: ServerProcess, qa: dict[str, httpx.Client]
) -> None:
    session = new_session(qa["trainee"])
    early = WS.open(qa_server.url, session["id"], qa["trainee"])
    watcher = WS.open(qa_server.url, session["id"], qa["manager"], kind="observe")
    try:
        early.send(type="say", client_turn_id="too-early", text="Hello?")
        error = early.until("error", timeout=15)[-1]
        assert (error["code"], error["client_turn_id"]) == ("not_ready", "too-early")
        watcher.hello()
        watcher.send(type="say", client_turn_id="observer-line", text="Hello?")
        error = watcher.until("error", timeout=15)[-1]
        assert (error["code"], error["client_turn_id"]) == ("read_only", "observer-line")
    finally:
        early.close()
        watcher.close()


def test_a_chinese_sessions_report_page_is_in_chinese(qa: dict[str, httpx.Client]) -> None:
    trainee = qa["trainee"]
    pages = {}
    for language in ("zh", "en"):
        session = new_session(trainee, language)
        ended = trainee.post(f"/api/sessions/{session['id']}/end")  # no turns: a quick report
        assert ended.status_code == 202, ended.text
        deadline = time.monotonic() + 30
        page = trainee.get(f"/api/sessions/{session['id']}/report.html")
        while page.status_code == 202 and time.monotonic() < deadline:  # "being written"
            time.sleep(0.3)
            page = trainee.get(f"/api/sessions/{session['id']}/report.html")
        assert page.status_code == 200, page.text
        pages[language] = page.text
    for word in ("各维度", "亮点", "待改进", "对话阶段", "合规", "对话记录"):
        assert word in pages["zh"], word
    for word in ("Dimensions", "Strengths", "To improve", "Transcript"):
        assert word not in pages["zh"], word
        assert word in pages["en"], word


def test_serve_on_a_port_in_use_exits_1_as_documented(
    qa_server: ServerProcess, tmp_path: Path
) -> None:
    taken = cli(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(qa_server.port))
    assert taken.returncode == 1, (taken.returncode, taken.stderr[-2000:])  # not uvicorn's 3
    assert f"could not serve on 127.0.0.1:{qa_server.port}" in taken.stderr


def test_rotating_the_session_key_signs_everyone_out_of_a_running_server(tmp_path: Path) -> None:
    person = Account("qa-rotate", "trainee", "alpha")
    add_user(tmp_path, person)
    with ServerProcess(tmp_path) as server:
        browser = login(server, person)
        token = browser.post("/api/tokens", json={"name": "script"}).json()["token"]
        script = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert browser.get("/api/auth/me").status_code == 200
        assert script.get("/api/auth/me").status_code == 200
        rotated = cli(tmp_path, "secrets", "rotate", "session_key")
        assert rotated.returncode == 0, rotated.stderr
        deadline = time.monotonic() + 15  # the server re-reads the key every 2 s
        while browser.get("/api/auth/me").status_code == 200:
            assert time.monotonic() < deadline, "the old session still works"
            time.sleep(0.3)
        assert script.get("/api/auth/me").status_code == 401
        again = login(server, person)  # a fresh login works under the new key
        assert again.get("/api/auth/me").status_code == 200
