"""The audit log: who did what to whom, from where."""

from __future__ import annotations

import builtins
from typing import Any

import msgspec

from appliance.db.database import Database


class AuditEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One audit row."""

    id: int
    at: str
    actor_id: int | None
    actor: str
    action: str
    target: str
    ip: str
    detail: dict[str, Any]


class AuditRepository:
    """Append-only writes and filtered reads of the audit log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        action: str,
        *,
        actor: str,
        actor_id: int | None = None,
        target: str = "",
        ip: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one row."""
        await self.db.execute(
            "INSERT INTO audit_log (actor_id, actor, action, target, ip, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (actor_id, actor, action, target, ip, msgspec.json.encode(detail or {}).decode()),
        )

    async def list(
        self,
        action: str | None = None,
        limit: int = 200,
        *,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first, filtered by action, actor name (any case, as sign-in takes it), day
        range (ISO dates, ``until`` included) and ``before`` (an entry id: the page after one
        that ended there). With ``after`` (an entry id) the entries past it come oldest first,
        so a script that keeps the last id it read pages forward through what is new."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("action = ?", action),
            ("actor = ? COLLATE NOCASE", actor),
            ("at >= ?", since),
            ("at < date(?, '+1 day')", until),
            ("id < ?", before),
            ("id > ?", after),
        ):
            if value is not None and value != "":
                where.append(clause)
                params.append(value)
        sql = "SELECT id, at, actor_id, actor, action, target, ip, detail FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = " ORDER BY id DESC" if after is None else " ORDER BY id"
        rows = await self.db.fetchall(sql + order + " LIMIT ?", (*params, limit))
        return [AuditEntry(**{**dict(r), "detail": msgspec.json.decode(r["detail"])}) for r in rows]

    async def actions(self) -> builtins.list[str]:
        """The actions the log holds, for a filter's choices."""
        rows = await self.db.fetchall("SELECT DISTINCT action FROM audit_log ORDER BY action")
        return [r["action"] for r in rows]
