"""A restore does not bring back what was erased or deleted after the backup was taken.

A real state dir (the CLI's migrations and users, practice sessions written into its SQLite
file), `salesboost backup`, then a person erased (`users erase`), sessions purged
(`sessions purge`) and one session deleted through a real server (`DELETE
/api/sessions/{id}`); `salesboost restore --force` of the earlier archive applies all three
again, keeps their audit rows (so a second restore of the same archive does too), and refuses
to replay onto it the history of another appliance's archive. Onto an empty box, the history
comes from the later archives in the same folder.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess, cli

from tests.conftest import Account, add_user, login

pytestmark = pytest.mark.timeout(300)

ADMIN = Account("rr-admin", "admin", "hq")
ANN = Account("rr-ann", "trainee", "alpha")
BOB = Account("rr-bob", "trainee", "alpha")
LONG_AGO = "2020-01-01T00:00:00.000Z"


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def _session(db: Path, username: str, ended_at: str | None) -> int:
    """A practice session row of this user (ended at ``ended_at``, live when None)."""
    with closing(sqlite3.connect(db)) as conn, conn:
        (user_id,) = conn.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
        cur = conn.execute(
            "INSERT INTO practice_sessions (user_id, scenario_id, persona_id, rubric_id, "
            "rubric_version, state, ended_at) VALUES (?, 1, 1, 1, 1, ?, ?)",
            (user_id, "active" if ended_at is None else "ended", ended_at),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid


def _fresh_state(root: Path, *accounts: Account) -> Path:
    state = root / "state"
    state.mkdir(parents=True)
    assert cli(state, "migrate").returncode == 0
    for account in accounts:
        add_user(state, account)
    return state


def test_erasures_and_deletions_after_the_backup_are_applied_again(tmp_path: Path) -> None:
    state = _fresh_state(tmp_path / "a", ADMIN, ANN, BOB)
    db = state / "salesboost.db"
    _session(db, ANN.username, None)
    _session(db, BOB.username, LONG_AGO)
    bob_deleted = _session(db, BOB.username, None)
    bob_kept = _session(db, BOB.username, "2099-01-01T00:00:00.000Z")
    archive = tmp_path / "before.tar"
    made = cli(state, "backup", str(archive))
    assert made.returncode == 0, made.stderr

    # after the backup: a person erased, old sessions purged, one session deleted over HTTP
    assert cli(state, "users", "erase", ANN.username, "--yes").returncode == 0
    assert cli(state, "sessions", "purge", "--older-than", "365").returncode == 0
    server = ServerProcess(state)
    server.start(timeout=120)
    try:
        with closing(login(server, ADMIN)) as admin:
            assert admin.delete(f"/api/sessions/{bob_deleted}").status_code == 204
    finally:
        server.stop()
    assert _rows(db, "SELECT id FROM practice_sessions ORDER BY id") == [(bob_kept,)]

    restored = cli(state, "restore", "--force", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "erased and deleted since the backup, and so again now: 1 people, 1 sessions, " in (
        restored.stdout
    )
    assert "1 purged sessions" in restored.stdout
    aside = next(tmp_path.joinpath("a").glob("state.before-restore-*"))
    # the replaced database is named where it is kept now, not where the restored one went
    assert f"(as recorded in the database it replaced, kept in {aside / 'salesboost.db'})" in (
        restored.stdout
    )
    users = {name for (name,) in _rows(db, "SELECT username FROM users")}
    assert ANN.username not in users and {ADMIN.username, BOB.username} <= users
    assert _rows(db, "SELECT id FROM practice_sessions ORDER BY id") == [(bob_kept,)]
    audit = _rows(db, "SELECT actor, action, target, detail FROM audit_log ORDER BY id")
    assert not [row for row in audit if ANN.username in " ".join(map(str, row))]
    actions = [action for _, action, _, _ in audit]
    assert {"user_erased", "session_deleted", "sessions_purged", "deletions_replayed"} <= set(
        actions
    )
    assert list(tmp_path.joinpath("a").glob("state.before-restore-*"))

    # the same archive once more: the replayed rows are in this database's history now
    time.sleep(1.1)  # the moved-aside folder is named by the second
    again = cli(state, "restore", "--force", str(archive))
    assert again.returncode == 0, again.stderr
    assert "1 people, 1 sessions, 1 purged sessions" in again.stdout
    assert ANN.username not in {n for (n,) in _rows(db, "SELECT username FROM users")}

    # another appliance's archive: its ids are other people, nothing is replayed onto it
    other = _fresh_state(tmp_path / "b", Account("rr-other", "admin", "hq"), ANN)
    foreign = tmp_path / "foreign.tar"
    assert cli(other, "backup", str(foreign)).returncode == 0
    time.sleep(1.1)
    onto = cli(state, "restore", "--force", str(foreign))
    assert onto.returncode == 0, onto.stderr
    assert "not an earlier copy of the database it replaces" in onto.stderr
    assert "erased and deleted since the backup" not in onto.stdout
    assert ANN.username in {n for (n,) in _rows(db, "SELECT username FROM users")}


def test_onto_an_empty_box_the_erasures_come_from_later_archives_beside_it(
    tmp_path: Path,
) -> None:
    """The old disk is gone: restoring Monday's archive onto a new box reads the erasures from
    Tuesday's archive in the same folder (a newer archive of another appliance, and a damaged
    one, beside them are passed over); alone in its folder, the archive restores with a
    warning that later erasures cannot be applied."""
    state = _fresh_state(tmp_path / "old-box", ADMIN, ANN, BOB)
    db = state / "salesboost.db"
    _session(db, ANN.username, None)
    bob_deleted = _session(db, BOB.username, None)
    backups = tmp_path / "backups"
    backups.mkdir()
    monday = backups / "monday.tar"
    assert cli(state, "backup", str(monday)).returncode == 0
    assert cli(state, "users", "erase", ANN.username, "--yes").returncode == 0
    with closing(sqlite3.connect(db)) as conn, conn:  # as DELETE /api/sessions/{id} records it
        conn.execute("DELETE FROM practice_sessions WHERE id = ?", (bob_deleted,))
        conn.execute(
            "INSERT INTO audit_log (actor, action, target) VALUES ('rr-admin', "
            "'session_deleted', ?)",
            (f"session:{bob_deleted}",),
        )
    time.sleep(1.1)  # archives are ordered by their manifests' time, to the second
    assert cli(state, "backup", str(backups / "tuesday.tar")).returncode == 0
    time.sleep(1.1)
    other = _fresh_state(tmp_path / "other-box", Account("rr-other", "admin", "hq"), ANN)
    assert cli(other, "backup", str(backups / "other-appliance.tar")).returncode == 0
    (backups / "truncated.tar").write_bytes((backups / "tuesday.tar").read_bytes()[:3000])

    new_box = tmp_path / "new-box" / "state"
    restored = cli(new_box, "restore", str(monday))
    assert restored.returncode == 0, restored.stderr
    assert "1 people, 1 sessions, 0 purged sessions" in restored.stdout
    assert f"(as recorded in the later archive {backups / 'tuesday.tar'})" in restored.stdout
    new_db = new_box / "salesboost.db"
    users = {name for (name,) in _rows(new_db, "SELECT username FROM users")}
    assert ANN.username not in users and {ADMIN.username, BOB.username} <= users
    assert _rows(new_db, "SELECT id FROM practice_sessions WHERE id = ?", (bob_deleted,)) == []

    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "monday.tar").write_bytes(monday.read_bytes())
    third_box = tmp_path / "third-box" / "state"
    lonely = cli(third_box, "restore", str(alone / "monday.tar"))
    assert lonely.returncode == 0, lonely.stderr
    assert "erasures made after this backup cannot be applied again" in lonely.stderr
    assert ANN.username in {
        n for (n,) in _rows(third_box / "salesboost.db", "SELECT username FROM users")
    }


def test_revocations_after_the_backup_stay_revoked(tmp_path: Path) -> None:
    """QA: a token deleted and an account disabled after the backup worked again once the
    archive was restored, and the restore said tokens had to be re-issued. Now the token stays
    deleted, the disabled account disabled, a changed password changed (the old one refused)
    and a demoted admin demoted."""
    carol = Account("rr-carol", "admin", "hq")
    state = _fresh_state(tmp_path / "box", ADMIN, ANN, BOB, carol)
    db = state / "salesboost.db"
    server = ServerProcess(state)
    server.start(timeout=120)
    try:
        with closing(login(server, ADMIN)) as admin:
            made = admin.post("/api/tokens", json={"name": "nightly"})
            assert made.status_code == 201, made.text
            token, token_id = made.json()["token"], made.json()["id"]
            archive = tmp_path / "before.tar"
            assert cli(state, "backup", str(archive)).returncode == 0

            # after the backup: the token revoked, Ann disabled, Bob's password changed,
            # Carol demoted
            assert admin.delete(f"/api/tokens/{token_id}").status_code == 204
            users = {u["username"]: u["id"] for u in admin.get("/api/users").json()}
            disable = admin.patch(f"/api/users/{users[ANN.username]}", json={"disabled": True})
            assert disable.status_code == 200, disable.text
            demote = admin.patch(f"/api/users/{users[carol.username]}", json={"role": "manager"})
            assert demote.status_code == 200, demote.text
        with closing(login(server, BOB)) as bob:
            changed = bob.post(
                "/api/auth/password",
                json={"current_password": BOB.password, "new_password": "bob's new passphrase 9"},
            )
            assert changed.status_code in (200, 204), changed.text
    finally:
        server.stop()

    restored = cli(state, "restore", "--force", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "revoked since the backup, and so still: 1 API tokens deleted; 3 accounts" in (
        restored.stdout
    ), restored.stdout
    assert "API tokens must be re-issued" not in restored.stdout
    assert _rows(db, "SELECT id FROM api_tokens WHERE id = ?", (token_id,)) == []
    roles = dict(_rows(db, "SELECT username, role FROM users"))
    assert roles[carol.username] == "manager"
    with ServerProcess(state) as again:
        gone = httpx.get(
            again.url + "/api/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert gone.status_code == 401
        ann = httpx.post(
            again.url + "/api/auth/login",
            json={"username": ANN.username, "password": ANN.password},
            timeout=30,
        )
        assert ann.status_code in (401, 403), ann.text
        old = httpx.post(
            again.url + "/api/auth/login",
            json={"username": BOB.username, "password": BOB.password},
            timeout=30,
        )
        assert old.status_code == 401, old.text
        new = httpx.post(
            again.url + "/api/auth/login",
            json={"username": BOB.username, "password": "bob's new passphrase 9"},
            timeout=30,
        )
        assert new.status_code == 200, new.text
