"""Retention and erasure on a real server: deleting a session, the retention sweep, `sessions
purge`, erasing a person (real SQLite file, the bundled LLM for one turn and its report)."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess, cli
from websockets.exceptions import ConnectionClosed

from tests.conftest import Account, login
from tests.integration.knowledge_helpers import ingest
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(600)

PEOPLE = {
    "admin": Account("rt-admin", "admin", "hq"),
    "manager": Account("rt-manager", "manager", "alpha"),
    "trainee": Account("rt-trainee", "trainee", "alpha"),
    "manager_b": Account("rt-manager-b", "manager", "beta"),
}
PRACTICE_TABLES = ("practice_turns", "practice_events", "practice_reports", "practice_tool_calls")
RETENTION_DAYS = 30


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo appliance with a 30-day retention swept every second, and idle sessions
    (the default 60 minutes) checked every second."""
    with demo_server(
        tmp_path_factory.mktemp("retention-state"),
        PEOPLE,
        SALESBOOST__PRACTICE__RETENTION_DAYS=str(RETENTION_DAYS),
        SALESBOOST__PRACTICE__RETENTION_SWEEP_INTERVAL_S="1",
        SALESBOOST__PRACTICE__RETENTION_BATCH="2",
        SALESBOOST__PRACTICE__IDLE_CHECK_INTERVAL_S="1",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def people(srv: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """Logged-in clients by role name."""
    with logged_in(srv, PEOPLE) as made:
        yield made


def _db(srv: ServerProcess) -> sqlite3.Connection:
    conn = sqlite3.connect(srv.state_dir / "salesboost.db", timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _rows(srv: ServerProcess, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(_db(srv)) as conn:
        return conn.execute(sql, params).fetchall()


def _write(srv: ServerProcess, sql: str, params: tuple[Any, ...] = ()) -> None:
    with closing(_db(srv)) as conn, conn:
        conn.execute(sql, params)


def _closed_with(ws: WS, timeout: float = 20) -> int:
    """Read until the server closes the socket; its close code."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.1, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code
    raise AssertionError(f"still open after {timeout} s")


def _state(client: httpx.Client, session_id: int) -> str:
    """A session's state: active or ended."""
    state: str = (
        client.get(f"/api/sessions/{session_id}").raise_for_status().json()["session"]["state"]
    )
    return state


def _ended_session(client: httpx.Client) -> int:
    """A session ended before any turn (its report is written at once, unscored)."""
    session = new_session(client)
    client.post(f"/api/sessions/{session['id']}/end").raise_for_status()
    return int(session["id"])


def test_delete_a_session_with_turns_and_report(
    srv: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee, manager = people["trainee"], people["manager"]
    session = new_session(trainee)
    sid = session["id"]
    line = f"Good morning, I am calling about your card {uuid.uuid4().hex[:10]}."
    ws = WS.open(srv.url, sid, trainee)
    ws.hello()
    ws.say(line)
    ws.send(type="end")
    ws.until("report_ready", timeout=400)
    ws.close()
    assert trainee.get(f"/api/sessions/{sid}/report").status_code == 200
    assert _rows(srv, "SELECT count(*) FROM practice_turns WHERE session_id = ?", (sid,)) == [(1,)]

    # a trainee cannot delete, not even their own; another team's manager does not see it
    refused = trainee.delete(f"/api/sessions/{sid}")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    other = people["manager_b"].delete(f"/api/sessions/{sid}")
    assert other.status_code == 404 and other.json()["code"] == "session_not_found"

    assert manager.delete(f"/api/sessions/{sid}").status_code == 204
    for path in (f"/api/sessions/{sid}", f"/api/sessions/{sid}/report"):
        assert trainee.get(path).status_code == 404, path
    assert manager.get(f"/api/sessions/{sid}/report.html").status_code == 404
    assert manager.delete(f"/api/sessions/{sid}").status_code == 404
    mine = trainee.get("/api/sessions").raise_for_status().json()
    team = manager.get("/api/sessions", params={"scope": "team"}).raise_for_status().json()
    assert sid not in {s["id"] for s in mine + team}
    trends = trainee.get(f"/api/trends/{session['user_id']}").raise_for_status().json()
    assert sid not in {p["session_id"] for p in trends["overall"]}
    # every practice table is empty of it; the audit row says what, never what was said
    assert _rows(srv, "SELECT count(*) FROM practice_sessions WHERE id = ?", (sid,)) == [(0,)]
    for table in PRACTICE_TABLES:
        count = _rows(srv, f"SELECT count(*) FROM {table} WHERE session_id = ?", (sid,))
        assert count == [(0,)], table
    audit = _rows(
        srv,
        "SELECT actor, detail FROM audit_log WHERE action = 'session_deleted' AND target = ?",
        (f"session:{sid}",),
    )
    assert len(audit) == 1 and audit[0][0] == PEOPLE["manager"].username
    everything = _rows(srv, "SELECT target || actor || detail FROM audit_log")
    assert not any(line in r[0] for r in everything)
    # secure_delete + checkpoint: the line is not left readable in the file or its WAL
    for name in ("salesboost.db", "salesboost.db-wal"):
        path = srv.state_dir / name
        if path.exists():
            assert line.encode() not in path.read_bytes(), name


def test_deleting_a_live_session_closes_its_sockets(
    srv: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee, manager, admin = people["trainee"], people["manager"], people["admin"]
    session = new_session(trainee)
    sid = session["id"]
    player = WS.open(srv.url, sid, trainee)
    player.hello()
    observer = WS.open(srv.url, sid, manager, kind="observe")
    observer.hello()
    assert admin.delete(f"/api/sessions/{sid}").status_code == 204
    assert _closed_with(observer) == 4410
    assert _closed_with(player) == 4410
    assert trainee.get(f"/api/sessions/{sid}").status_code == 404
    # the server goes on: a new session works
    assert new_session(trainee)["state"] == "active"


def test_retention_sweep_deletes_only_old_ended_sessions(
    srv: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    old = [_ended_session(trainee) for _ in range(3)]
    recent = _ended_session(trainee)
    live_old = new_session(trainee)["id"]
    never_ended = _ended_session(trainee)
    long_ago = f"{time.gmtime().tm_year - 1}-01-01T00:00:00.000Z"
    marks = ",".join("?" * len(old))
    _write(
        srv, f"UPDATE practice_sessions SET ended_at = ? WHERE id IN ({marks})", (long_ago, *old)
    )
    _write(srv, "UPDATE practice_sessions SET created_at = ? WHERE id = ?", (long_ago, live_old))
    # ended without an end time stored: its start counts
    _write(
        srv,
        "UPDATE practice_sessions SET created_at = ?, ended_at = NULL WHERE id = ?",
        (long_ago, never_ended),
    )
    gone = [*old, never_ended]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = _rows(
            srv,
            f"SELECT id FROM practice_sessions WHERE id IN ({','.join('?' * len(gone))})",
            tuple(gone),
        )
        if not left:
            break
        time.sleep(0.5)
    assert left == []
    kept = {r[0] for r in _rows(srv, "SELECT id FROM practice_sessions")}
    assert {recent, live_old} <= kept
    for table in PRACTICE_TABLES:
        marks = ",".join("?" * len(gone))
        count = _rows(
            srv, f"SELECT count(*) FROM {table} WHERE session_id IN ({marks})", tuple(gone)
        )
        assert count == [(0,)], table
    purged = _rows(
        srv, "SELECT actor, detail FROM audit_log WHERE action = 'sessions_purged' ORDER BY id"
    )
    assert purged and all(actor == "retention" for actor, _ in purged)
    assert sum(int(d.split('"sessions":')[1].split(",")[0]) for _, d in purged) >= 4
    metrics = people["admin"].get("/metrics").text
    assert 'salesboost_practice_sessions_deleted_total{reason="retention"}' in metrics


def test_a_session_left_idle_is_ended_and_scored_by_the_server(
    srv: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    """A trainee who walked away: no line for practice.idle_end_minutes (60) ends the session
    with reason idle, and the report is written, scored when it had turns; a session with a
    recent line stays live."""
    trainee, manager = people["trainee"], people["manager"]
    walked_away = new_session(trainee)["id"]
    ws = WS.open(srv.url, walked_away, trainee)
    ws.hello()
    ws.say("Good afternoon, I am calling about your premium card and its annual fee.")
    never_spoke = new_session(trainee)["id"]
    still_talking = new_session(trainee)["id"]
    talking = WS.open(srv.url, still_talking, trainee)
    talking.hello()
    talking.say("Hello, do you have a minute to talk about your card?")

    two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 2 * 3600))
    fifty_minutes_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 50 * 60))
    _write(
        srv,
        "UPDATE practice_sessions SET updated_at = ? WHERE id IN (?, ?)",
        (two_hours_ago, walked_away, never_spoke),
    )
    _write(
        srv,
        "UPDATE practice_sessions SET updated_at = ? WHERE id = ?",
        (fifty_minutes_ago, still_talking),
    )

    ended = ws.until("session_ended", timeout=60)[-1]
    assert ended["reason"] == "idle"
    ready = ws.until("report_ready", timeout=400)[-1]
    assert ready["scored"] is True
    ws.close()
    report = trainee.get(f"/api/sessions/{walked_away}/report").raise_for_status().json()
    assert report["scored"] is True and report["dimensions"]

    deadline = time.monotonic() + 60
    while _state(trainee, never_spoke) != "ended":
        assert time.monotonic() < deadline, "the session with no turns was not ended"
        time.sleep(0.5)
    deadline = time.monotonic() + 60
    while (unscored := trainee.get(f"/api/sessions/{never_spoke}/report")).status_code != 200:
        assert time.monotonic() < deadline, "no report for the session with no turns"
        time.sleep(0.5)
    assert unscored.json()["scored"] is False
    assert unscored.json()["not_scored_reason"] == "no_turns"

    # 50 minutes without a line is not 60: it stays live and takes the next line
    assert _state(trainee, still_talking) == "active"
    talking.say("May I ask how often you travel for business?")
    talking.close()
    live = manager.get("/api/sessions", params={"scope": "team", "state": "active"}).json()
    live_ids = {s["id"] for s in live}
    assert still_talking in live_ids and not {walked_away, never_spoke} & live_ids
    metrics = people["admin"].get("/metrics").text
    count = [
        line
        for line in metrics.splitlines()
        if line.startswith("salesboost_practice_sessions_idle_ended_total ")
    ]
    assert count and float(count[0].split()[1]) >= 2

    # the lists, the report and the export say the appliance ended it, not the trainee
    detail = trainee.get(f"/api/sessions/{walked_away}").raise_for_status().json()["session"]
    assert detail["end_reason"] == "idle"
    history = trainee.get("/history").raise_for_status().text
    row = history.split(f'data-session="{walked_away}"', 1)[1].split("</tr>", 1)[0]
    assert "ended (idle)" in row
    page = trainee.get(f"/api/sessions/{walked_away}/report.html").raise_for_status().text
    assert 'id="ended-idle"' in page
    export = manager.get("/api/sessions/export.csv", params={"scope": "team"})
    reasons = {
        int(r["session_id"]): r["end_reason"]
        for r in csv.DictReader(io.StringIO(export.raise_for_status().content.decode("utf-8-sig")))
    }
    assert reasons[walked_away] == reasons[never_spoke] == "idle"
    assert reasons[still_talking] == ""


def test_sessions_purge_cli(srv: ServerProcess, people: dict[str, httpx.Client]) -> None:
    trainee = people["trainee"]
    ten_days = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 10 * 86400))
    ids = [_ended_session(trainee) for _ in range(3)]
    keep = _ended_session(trainee)
    marks = ",".join("?" * len(ids))
    _write(
        srv, f"UPDATE practice_sessions SET ended_at = ? WHERE id IN ({marks})", (ten_days, *ids)
    )

    dry = cli(srv.state_dir, "sessions", "purge", "--older-than", "5", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 3 " in dry.stdout
    assert (
        len(_rows(srv, f"SELECT id FROM practice_sessions WHERE id IN ({marks})", tuple(ids))) == 3
    )

    done = cli(srv.state_dir, "sessions", "purge", "--older-than", "5")
    assert done.returncode == 0, done.stderr
    assert "deleted 3 " in done.stdout
    assert _rows(srv, f"SELECT id FROM practice_sessions WHERE id IN ({marks})", tuple(ids)) == []
    assert trainee.get(f"/api/sessions/{keep}").status_code == 200
    assert trainee.get(f"/api/sessions/{ids[0]}").status_code == 404
    bad = cli(srv.state_dir, "sessions", "purge", "--older-than", "-1")
    assert bad.returncode == 2


def test_erase_a_person(srv: ServerProcess, people: dict[str, httpx.Client]) -> None:
    admin = people["admin"]
    name = f"rt-leaver-{uuid.uuid4().hex[:6]}"
    leaver = Account(name, "manager", "gamma")
    made = admin.post(
        "/api/users",
        json={"username": name, "role": "manager", "team": "gamma", "password": leaver.password},
    )
    assert made.status_code == 201, made.text
    user_id = made.json()["user"]["id"]
    client = login(srv, leaver)
    try:
        token = client.post("/api/tokens", json={"name": "laptop"}).raise_for_status().json()
        bearer = {"Authorization": f"Bearer {token['token']}"}
        assert httpx.get(f"{srv.url}/api/auth/me", headers=bearer).status_code == 200
        docs = ingest(client, {"leaver-sheet.md": "# Sheet\n\nGold card fees."}, collection="rt")
        doc_id = docs[0]["document"]["id"]
        shown = admin.get(f"/api/knowledge/documents/{doc_id}").json()["document"]
        assert shown["uploader_id"] == user_id and shown["uploader"] == name
        assert name in admin.get(f"/knowledge/documents/{doc_id}").text  # "Uploaded by"
        session = new_session(client)
        ws = WS.open(srv.url, session["id"], client)
        ws.hello()

        # not yourself, not the last enabled admin (the CLI has no "self")
        me = admin.get("/api/auth/me").json()["id"]
        refused = admin.delete(f"/api/users/{me}")
        assert refused.status_code == 409 and refused.json()["code"] == "self_erase"
        last = cli(srv.state_dir, "users", "erase", PEOPLE["admin"].username, "--yes")
        assert last.returncode == 1 and "last enabled admin" in last.stderr
        unconfirmed = cli(srv.state_dir, "users", "erase", name)
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        assert people["manager"].delete(f"/api/users/{user_id}").status_code == 403

        assert admin.delete(f"/api/users/{user_id}").status_code == 204
        assert _closed_with(ws) in (4401, 4410)
        assert admin.get(f"/api/users/{user_id}").status_code == 404
        assert client.get("/api/auth/me").status_code == 401
        assert httpx.get(f"{srv.url}/api/auth/me", headers=bearer).status_code == 401
        assert admin.delete(f"/api/users/{user_id}").status_code == 404
    finally:
        client.close()
    # their sessions and tokens are gone; the document stays, its uploader unset
    assert _rows(srv, "SELECT count(*) FROM practice_sessions WHERE user_id = ?", (user_id,)) == [
        (0,)
    ]
    assert _rows(srv, "SELECT count(*) FROM api_tokens WHERE user_id = ?", (user_id,)) == [(0,)]
    doc = admin.get(f"/api/knowledge/documents/{doc_id}").raise_for_status().json()
    assert doc["document"]["uploader_id"] is None and doc["document"]["uploader"] is None
    assert name not in admin.get(f"/knowledge/documents/{doc_id}").text
    assert name not in admin.get("/knowledge").text
    # the audit log keeps the id, never the name
    audit = _rows(srv, "SELECT actor, target, detail FROM audit_log")
    assert not any(name.lower() in " ".join(r).lower() for r in audit)
    erased = _rows(
        srv,
        "SELECT detail FROM audit_log WHERE action = 'user_erased' AND target = ?",
        (f"user:#{user_id}",),
    )
    assert len(erased) == 1 and '"sessions":1' in erased[0][0] and '"tokens":1' in erased[0][0]
    assert any(r[0] == f"erased-user:{user_id}" for r in audit)
