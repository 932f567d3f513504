"""An id is never given twice (not after a delete, an erasure, or a restore), and a script
pages forward through what is new by the last id it read.

QA (an integrator's pass): SQLite gives a new row the highest id + 1, so deleting the newest
practice session, or erasing the newest person, let the next one take the same id; the audit
log then said ``session_deleted session:4`` of a live session 4, and an erased person's
sign-ins were joined to the newcomer. A real server with the demo pack and real SQLite; the
restore case through the real CLI (`backup`, `users add`, `restore --force`). The same pass
found no way to sync sessions or the audit log incrementally: `after` (an id, oldest first),
`before` and `ended_since` on `GET /api/sessions`, `after` on `GET /api/audit`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from appliance.testing import ServerProcess, cli

from tests.conftest import Account, add_user
from tests.integration.practice_helpers import demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(300)

PEOPLE = {
    "admin": Account("ids-admin", "admin", "hq"),
    "trainee": Account("ids-trainee", "trainee", "alpha"),
}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, httpx.Client]]:
    with (
        demo_server(tmp_path_factory.mktemp("ids-state"), PEOPLE) as srv,
        logged_in(srv, PEOPLE) as made,
    ):
        yield made


def test_a_deleted_session_id_is_not_given_again(clients: dict[str, httpx.Client]) -> None:
    trainee, admin = clients["trainee"], clients["admin"]
    first = new_session(trainee)["id"]
    newest = new_session(trainee)["id"]
    assert newest > first
    assert admin.delete(f"/api/sessions/{newest}").status_code == 204
    after = new_session(trainee)["id"]
    assert after > newest, (first, newest, after)
    assert trainee.get(f"/api/sessions/{newest}").status_code == 404
    deleted = admin.get("/api/audit", params={"action": "session_deleted"}).json()
    assert f"session:{newest}" in {row["target"] for row in deleted}
    assert f"session:{after}" not in {row["target"] for row in deleted}


def test_an_erased_person_and_their_tokens_leave_their_ids_behind(
    clients: dict[str, httpx.Client],
) -> None:
    admin = clients["admin"]
    made = admin.post(
        "/api/users",
        json={"username": "ids-gone", "role": "trainee", "password": "gone for good 1"},
    )
    assert made.status_code == 201, made.text
    gone = made.json()["user"]["id"]
    with httpx.Client(base_url=str(admin.base_url), timeout=30) as them:
        signed_in = them.post(
            "/api/auth/login", json={"username": "ids-gone", "password": "gone for good 1"}
        )
        assert signed_in.status_code == 200, signed_in.text
        token = them.post("/api/tokens", json={"name": "sync"})
        assert token.status_code == 201, token.text
        token_id = token.json()["id"]
    assert admin.delete(f"/api/users/{gone}").status_code == 204

    newcomer = admin.post("/api/users", json={"username": "ids-newcomer", "role": "trainee"})
    assert newcomer.status_code == 201, newcomer.text
    assert newcomer.json()["user"]["id"] > gone
    own = admin.post("/api/tokens", json={"name": "after"})
    assert own.status_code == 201, own.text
    assert own.json()["id"] > token_id
    # the erased person's audit rows name an id no one else has
    assert gone not in {u["id"] for u in admin.get("/api/users").json()}


def _max_ids(db: Path) -> dict[str, str]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT key, value FROM appliance_state WHERE key LIKE 'max_id.%'"
        ).fetchall()
    return {str(k): str(v) for k, v in rows}


def test_a_restore_does_not_give_out_again_the_ids_given_since_the_backup(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert cli(state, "migrate").returncode == 0
    add_user(state, Account("ids-r-admin", "admin", "hq"))
    archive = tmp_path / "before.tar"
    assert cli(state, "backup", str(archive)).returncode == 0
    add_user(state, Account("ids-r-later", "trainee", "alpha"))  # id 2, after the backup
    db = state / "salesboost.db"
    with closing(sqlite3.connect(db)) as conn:
        (later_id,) = conn.execute("SELECT id FROM users WHERE username = 'ids-r-later'").fetchone()

    restored = cli(state, "restore", "--force", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert _max_ids(db)["max_id.users"] == str(later_id)
    add_user(state, Account("ids-r-next", "trainee", "alpha"))
    with closing(sqlite3.connect(db)) as conn:
        (next_id,) = conn.execute("SELECT id FROM users WHERE username = 'ids-r-next'").fetchone()
    assert next_id > later_id
    # and the server starts on the restored database (the triggers came with the migration)
    with ServerProcess(state) as server:
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200


def test_a_script_syncs_sessions_and_the_audit_log_forward(
    clients: dict[str, httpx.Client],
) -> None:
    trainee, admin = clients["trainee"], clients["admin"]
    ids = [new_session(trainee)["id"] for _ in range(3)]
    everyone = admin.get("/api/sessions", params={"scope": "all", "limit": 500}).json()
    # the team is named, not only numbered (there is no /api/teams to look an id up)
    assert {s["team"] for s in everyone if s["id"] in ids} == {PEOPLE["trainee"].team}
    newest_first = [s["id"] for s in everyone]
    assert newest_first == sorted(newest_first, reverse=True)

    # forward from before the three, two at a time, oldest first
    cursor = ids[0] - 1
    got: list[int] = []
    while True:
        page = admin.get(
            "/api/sessions", params={"scope": "all", "after": cursor, "limit": 2}
        ).json()
        if not page:
            break
        got += [s["id"] for s in page]
        cursor = page[-1]["id"]
    assert got == sorted(got) and got[:3] == ids, (got, ids)
    # backward: the page after one that ended at the newest
    back = admin.get("/api/sessions", params={"scope": "all", "before": ids[2], "limit": 2})
    assert [s["id"] for s in back.json()] == [ids[1], ids[0]]
    both = admin.get("/api/sessions", params={"scope": "all", "before": 5, "after": 1})
    assert both.status_code == 400 and both.json()["code"] == "invalid_input"

    # ended since: the one ended now is there, none ended in the future
    start = admin.get("/api/auth/me").headers["date"]
    assert trainee.post(f"/api/sessions/{ids[1]}/end").status_code in (200, 202)
    ended = admin.get(
        "/api/sessions",
        params={"scope": "all", "state": "ended", "ended_since": "2000-01-01T00:00:00Z"},
    ).json()
    assert ids[1] in [s["id"] for s in ended]
    later = admin.get(
        "/api/sessions", params={"scope": "all", "ended_since": "2999-01-01T00:00:00+08:00"}
    ).json()
    assert later == [], (start, later)

    # the audit log, forward from an id, oldest first; the actor in any case
    log = admin.get("/api/audit", params={"limit": 5}).json()
    mark = log[-1]["id"]
    forward = admin.get("/api/audit", params={"after": mark, "limit": 500}).json()
    assert [e["id"] for e in forward] == sorted(e["id"] for e in forward)
    assert forward and forward[0]["id"] == mark + 1
    upper = admin.get("/api/audit", params={"actor": PEOPLE["admin"].username.upper()}).json()
    assert upper and {e["actor"] for e in upper} == {PEOPLE["admin"].username}
