"""A restore must not bring back what was erased after the backup was taken.

An archive is a copy of the database at one moment. A person erased since (``users erase``,
``DELETE /api/users/{id}``), a session deleted since, or sessions purged since would come back
with it: for a privacy-sensitive site, a restore that resurrects an erased person undoes the
erasure. So when ``salesboost restore --force`` replaces a database, it reads that database's
audit log for the erasures and deletions recorded *after* the archive's snapshot and applies
them again to the restored copy, the same way the server applied them (the account with its
sessions, tokens and logins; the audit log keeps the id, not the name), before the copy is
put in place.

The same goes for what was revoked since: an API token deleted, an account disabled, demoted,
or its password changed or reset after the snapshot would otherwise work again as it did (a
leaked token or password revoked last week, live again). So the replay also deletes those
tokens, and for every account with such a change it brings forward from the replaced database
what it has now (password hash, must-change flag, disabled, role) and voids the account's
sessions (``auth_epoch``): the restore keeps the revocation, not the snapshot's credential.

"After the snapshot" is exact: the archive's audit log is an earlier prefix of the one being
replaced, so every row past its last id happened later. When it is not a prefix (an archive
from another appliance, or from before this database was created), nothing is replayed from it:
ids from another database mean other people. A restore onto an empty box (the old disk is gone,
or a new one that `serve` has just initialised) reads them instead from the newest later
archive beside the one restored that is of the same appliance (``appliance.backup``: the
scheduled backups' folder holds them); with none, the restore warns that what was erased after
its backup cannot be applied again, and the README says to keep backups no longer than the
retention period for that reason.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from appliance.db.audit import AuditRepository
from appliance.db.database import Database
from appliance.db.practice import PracticeRepository
from appliance.db.users import UserRepository

ERASURES = ("user_erased", "session_deleted", "sessions_purged")
REVOCATIONS = (
    "token_deleted",
    "user_disabled",
    "user_enabled",
    "role_changed",
    "password_changed",
    "password_reset",
)
REPLAYED_ACTIONS = (*ERASURES, *REVOCATIONS)
_ACCOUNT_COLUMNS = ("password_hash", "must_change_password", "disabled", "role", "auth_epoch")


@dataclass
class Replayed:
    """What a replay applied to the restored database, or why it applied nothing."""

    users: int = 0
    sessions: int = 0
    purged: int = 0
    tokens: int = 0
    """API tokens deleted since the backup, deleted again."""
    accounts: int = 0
    """Accounts whose password, disabled flag or role changed since: brought forward."""
    skipped: str = ""
    source: str = ""
    """Where the erasures were read: the replaced database, or a later archive beside the one
    restored (``appliance.backup``)."""

    @property
    def anything(self) -> bool:
        """Whether any row was deleted."""
        return bool(self.users or self.sessions or self.purged or self.tokens or self.accounts)


@dataclass
class _Later:
    """The erasures and deletions the replaced database recorded after the snapshot."""

    users: list[int]
    sessions: list[int]
    cutoffs: list[str]
    rows: list[tuple[object, ...]]
    tokens: list[int] = field(default_factory=list)
    accounts: dict[str, tuple[object, ...]] = field(default_factory=dict)
    """Username -> its _ACCOUNT_COLUMNS in the replaced database, for every account whose
    sign-in changed after the snapshot."""
    """Their audit rows (at, actor_id, actor, action, target, ip, detail), copied over so that
    the restored database's history holds them too (a later restore replays them again)."""


def replay_deletions(current_db: Path, restored_db: Path) -> Replayed:
    """Apply to ``restored_db`` the erasures and deletions ``current_db`` recorded after the
    snapshot ``restored_db`` was taken from (see the module docstring)."""
    later = _later_than_snapshot(current_db, restored_db)
    if isinstance(later, str):
        return Replayed(skipped=later)
    if not later.rows:
        return Replayed()
    return asyncio.run(_apply(restored_db, later))


def _later_than_snapshot(current_db: Path, restored_db: Path) -> _Later | str:
    marks = ",".join("?" * len(REPLAYED_ACTIONS))
    # restore holds the state lock: no server writes to it (read-write, so a WAL left by a
    # crash is read too)
    with (
        closing(sqlite3.connect(current_db)) as current,
        closing(sqlite3.connect(restored_db)) as restored,
    ):
        last = restored.execute(
            "SELECT id, at, action FROM audit_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if last is None:
            any_here = current.execute(
                f"SELECT 1 FROM audit_log WHERE action IN ({marks}) LIMIT 1",  # noqa: S608 - fixed marks
                REPLAYED_ACTIONS,
            ).fetchone()
            if any_here is None:  # nothing to place, and nothing that could come back
                return _Later(users=[], sessions=[], cutoffs=[], rows=[])
            return "the archive's audit log is empty, so it cannot be placed in this one's history"
        same = current.execute("SELECT at, action FROM audit_log WHERE id = ?", (last[0],))
        if same.fetchone() != (last[1], last[2]):
            return (
                "the archive is not an earlier copy of the database it replaces (their audit "
                "logs differ), so erasures and deletions recorded here were not applied to it"
            )
        later_rows = (
            "SELECT at, actor_id, actor, action, target, ip, detail FROM audit_log "  # noqa: S608 - fixed marks
            f"WHERE id > ? AND action IN ({marks}) ORDER BY id"
        )
        rows = current.execute(later_rows, (last[0], *REPLAYED_ACTIONS)).fetchall()
        later = _Later(
            users=[], sessions=[], cutoffs=[], rows=rows, accounts=_accounts(current, rows)
        )
    for _, _, _, action, target, _, detail in rows:
        if action == "token_deleted" and target.startswith("token:"):
            later.tokens.append(int(target.removeprefix("token:")))
        elif action == "user_erased" and target.startswith("user:#"):
            later.users.append(int(target.removeprefix("user:#")))
        elif action == "session_deleted" and target.startswith("session:"):
            later.sessions.append(int(target.removeprefix("session:")))
        elif action == "sessions_purged":
            cutoff = json.loads(detail or "{}").get("cutoff")
            if isinstance(cutoff, str):
                later.cutoffs.append(cutoff)
    return later


def _accounts(
    current: sqlite3.Connection, rows: list[tuple[object, ...]]
) -> dict[str, tuple[object, ...]]:
    """What the replaced database has now for each account whose sign-in changed since."""
    columns = ", ".join(_ACCOUNT_COLUMNS)
    found: dict[str, tuple[object, ...]] = {}
    for _, _, _, action, target, _, _ in rows:
        if action in REVOCATIONS and action != "token_deleted":
            name = str(target).removeprefix("user:")
            now = current.execute(
                f"SELECT {columns} FROM users WHERE username = ?",  # noqa: S608 - fixed names
                (name,),
            ).fetchone()
            if now is not None:  # gone since: its erasure is replayed instead
                found[name] = tuple(now)
    return found


async def _apply(restored_db: Path, later: _Later) -> Replayed:
    done = Replayed()
    async with Database(restored_db) as db:
        users = UserRepository(db)
        for user_id in later.users:
            user = await users.get(user_id)
            if user is not None:
                await users.erase(user.id, user.username)
                done.users += 1
        practice = PracticeRepository(db)
        sessions = sorted(set(later.sessions))
        if sessions:
            async with db.transaction() as conn:
                done.sessions = await PracticeRepository.delete_sessions(conn, sessions)
        for cutoff in later.cutoffs:
            while ids := await practice.expired_session_ids(cutoff, 500):
                async with db.transaction() as conn:
                    done.purged += await PracticeRepository.delete_sessions(conn, ids)
        async with db.transaction() as conn:
            for token_id in sorted(set(later.tokens)):
                cur = await conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
                done.tokens += cur.rowcount
            for name, (password, must_change, disabled, role, epoch) in later.accounts.items():
                cur = await conn.execute(  # the epoch past both: every session of it is void
                    "UPDATE users SET password_hash = ?, must_change_password = ?, disabled = ?, "
                    "role = ?, auth_epoch = MAX(auth_epoch, ?) + 1, "
                    "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE username = ?",
                    (password, must_change, disabled, role, epoch, name),
                )
                done.accounts += cur.rowcount
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO audit_log (at, actor_id, actor, action, target, ip, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                later.rows,
            )
        if done.anything:
            await AuditRepository(db).record(
                "deletions_replayed",
                actor="restore",
                target="practice_sessions",
                detail={
                    "users": done.users,
                    "sessions": done.sessions,
                    "purged": done.purged,
                    "tokens": done.tokens,
                    "accounts": done.accounts,
                },
            )
            await db.checkpoint()  # no copy of the deleted pages left in the WAL
    return done
