"""Users and teams."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

import aiosqlite
import msgspec

from appliance.db.database import Database, Row
from appliance.db.ids import new_id_sql

Role = Literal["admin", "manager", "trainee"]
ROLES: tuple[Role, ...] = ("admin", "manager", "trainee")


class NoAdminLeft(Exception):
    """The change would leave no enabled admin; it was rolled back."""


_ENABLED_ADMINS = "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0"


class User(msgspec.Struct, kw_only=True, frozen=True):
    """A user as stored (the hash stays inside the auth package)."""

    id: int
    username: str
    display_name: str
    role: Role
    team_id: int | None
    team: str | None
    disabled: bool
    must_change_password: bool
    auth_epoch: int
    created_at: str
    password_hash: str = msgspec.field(default="", name="-")


@dataclass(frozen=True)
class ErasedCounts:
    """What went with an erased user, and what stayed."""

    sessions: int
    tokens: int
    documents_kept: int


_SELECT = """
SELECT u.id, u.username, u.display_name, u.role, u.team_id, t.name AS team, u.disabled,
       u.must_change_password, u.auth_epoch, u.created_at, u.password_hash
FROM users u LEFT JOIN teams t ON t.id = u.team_id
"""


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        team_id=row["team_id"],
        team=row["team"],
        disabled=bool(row["disabled"]),
        must_change_password=bool(row["must_change_password"]),
        auth_epoch=row["auth_epoch"],
        created_at=row["created_at"],
        password_hash=row["password_hash"],
    )


class UserRepository:
    """Reads and writes of users and teams."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: int) -> User | None:
        """A user by id."""
        row = await self.db.fetchone(_SELECT + " WHERE u.id = ?", (user_id,))
        return None if row is None else _user(row)

    async def by_token_hash(self, token_hash: str) -> tuple[int, User] | None:
        """(token id, owner) of a live API token, in one query."""
        row = await self.db.fetchone(
            _SELECT.replace("SELECT ", "SELECT k.id AS token_id, ", 1)
            + " JOIN api_tokens k ON k.user_id = u.id"
            " WHERE k.token_hash = ? AND k.revoked_at IS NULL",
            (token_hash,),
        )
        return None if row is None else (int(row["token_id"]), _user(row))

    async def by_username(self, username: str) -> User | None:
        """A user by (case-insensitive) username."""
        row = await self.db.fetchone(_SELECT + " WHERE u.username = ?", (username,))
        return None if row is None else _user(row)

    async def list(self, team_id: int | None = None) -> list[User]:
        """All users, or one team's."""
        if team_id is None:
            rows = await self.db.fetchall(_SELECT + " ORDER BY u.id")
        else:
            rows = await self.db.fetchall(
                _SELECT + " WHERE u.team_id = ? ORDER BY u.id", (team_id,)
            )
        return [_user(r) for r in rows]

    async def count_admins(self) -> int:
        """Enabled admins."""
        value = await self.db.fetchval(_ENABLED_ADMINS)
        return int(value or 0)

    async def ensure_team(self, name: str) -> int:
        """The id of the team with this name, created if needed."""
        async with self.db.transaction() as conn:
            await conn.execute("INSERT OR IGNORE INTO teams (name) VALUES (?)", (name,))
            async with conn.execute("SELECT id FROM teams WHERE name = ?", (name,)) as cur:
                row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def create(
        self,
        *,
        username: str,
        password_hash: str,
        role: Role,
        team_id: int | None,
        display_name: str = "",
        must_change_password: bool = False,
    ) -> int:
        """Insert a user; returns its id (IntegrityError when the name is taken).

        Its id was never anyone's before (``appliance.db.ids``: an erased person's id is not
        given again). Its auth epoch starts at a random number, not 0, as a second guard: a
        browser session (it stores the id and the epoch) must match no other account.
        """
        return await self.db.execute(
            "INSERT INTO users (id, username, display_name, role, team_id, password_hash, "  # noqa: S608 - new_id_sql is a fixed expression
            f"must_change_password, auth_epoch) VALUES ({new_id_sql('users')}, ?, ?, ?, ?, ?, ?, ?)",
            (
                username,
                display_name,
                role,
                team_id,
                password_hash,
                int(must_change_password),
                secrets.randbelow(2**62),
            ),
        )

    async def erase(
        self, user_id: int, username: str, *, keep_an_admin: bool = False
    ) -> ErasedCounts:
        """In one transaction: delete the user (their API tokens and practice sessions cascade;
        documents they uploaded stay, ``uploader_id`` set NULL) and take their name out of the
        audit log and the login throttle; audit rows keep the numeric id.

        ``keep_an_admin``: NoAdminLeft (nothing changed) when it would erase the last enabled
        admin, checked in the transaction, so two admins erasing each other at the same moment
        cannot both succeed."""
        label = f"erased-user:{user_id}"
        target = f"user:#{user_id}"
        async with self.db.transaction() as conn:

            async def count(sql: str) -> int:
                async with conn.execute(sql, (user_id,)) as cur:
                    row = await cur.fetchone()
                return int(row[0]) if row else 0

            counts = ErasedCounts(
                sessions=await count("SELECT count(*) FROM practice_sessions WHERE user_id = ?"),
                tokens=await count("SELECT count(*) FROM api_tokens WHERE user_id = ?"),
                documents_kept=await count("SELECT count(*) FROM documents WHERE uploader_id = ?"),
            )
            await conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
            if keep_an_admin:
                await self._keep_an_admin(conn)
            await conn.execute(
                "UPDATE audit_log SET actor = ? WHERE actor_id = ?", (label, user_id)
            )
            await conn.execute(
                "UPDATE audit_log SET actor = ? WHERE actor_id IS NULL AND actor = ? COLLATE NOCASE",
                (label, username),
            )
            await conn.execute(
                "UPDATE audit_log SET target = ? "
                "WHERE target = ? COLLATE NOCASE OR target = ? COLLATE NOCASE",
                (target, f"user:{username}", username),
            )
            await conn.execute(
                "UPDATE audit_log SET detail = json_set(detail, '$.user', ?) "
                "WHERE json_valid(detail) AND json_extract(detail, '$.user') = ? COLLATE NOCASE",
                (label, username),
            )
            await conn.execute(
                "DELETE FROM login_failures WHERE username = ? COLLATE NOCASE", (username,)
            )
        return counts

    async def update(
        self,
        user_id: int,
        *,
        role: Role | None = None,
        team_id: int | msgspec.UnsetType | None = msgspec.UNSET,
        display_name: str | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
        must_change_password: bool | None = None,
        end_sessions: bool = False,
        keep_an_admin: bool = False,
    ) -> None:
        """Change the given fields (None leaves one as it is, but ``team_id``: None takes the
        user out of their team, UNSET leaves it); ``end_sessions`` voids every session and
        cookie at once.

        ``keep_an_admin``: NoAdminLeft (nothing changed) when the change leaves no enabled
        admin, checked in the same write transaction, so that two admins demoting or disabling
        each other at the same moment cannot both succeed."""
        sets: list[str] = []
        params: list[object] = []
        if not isinstance(team_id, msgspec.UnsetType):
            sets.append("team_id = ?")
            params.append(team_id)
        for column, value in (
            ("role", role),
            ("display_name", display_name),
            ("disabled", None if disabled is None else int(disabled)),
            ("password_hash", password_hash),
            (
                "must_change_password",
                None if must_change_password is None else int(must_change_password),
            ),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if end_sessions:
            sets.append("auth_epoch = auth_epoch + 1")
        if not sets:
            return
        sets.append("updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
        async with self.db.transaction() as conn:
            await conn.execute(
                f"UPDATE users SET {', '.join(sets)} WHERE id = ?",  # noqa: S608 - columns are fixed names
                (*params, user_id),
            )
            if keep_an_admin:
                await self._keep_an_admin(conn)

    @staticmethod
    async def _keep_an_admin(conn: aiosqlite.Connection) -> None:
        """Inside a write transaction: NoAdminLeft (rolling it back) when no admin is enabled."""
        async with conn.execute(_ENABLED_ADMINS) as cur:
            row = await cur.fetchone()
        if not row or int(row[0]) == 0:
            raise NoAdminLeft("no enabled admin would be left")
