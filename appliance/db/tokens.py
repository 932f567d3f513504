"""API tokens, stored as keyed hashes."""

from __future__ import annotations

import msgspec

from appliance.db.database import Database
from appliance.db.ids import new_id_sql


class ApiToken(msgspec.Struct, kw_only=True, frozen=True):
    """A token's public record (never the token itself)."""

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class TokenRepository:
    """Reads and writes of API tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, user_id: int, name: str, token_hash: str, prefix: str) -> int:
        """Store a new token's hash; returns its id (never a deleted token's)."""
        return await self.db.execute(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix) "  # noqa: S608 - new_id_sql is a fixed expression
            f"VALUES ({new_id_sql('api_tokens')}, ?, ?, ?, ?)",
            (user_id, name, token_hash, prefix),
        )

    async def list(self, user_id: int | None = None) -> list[ApiToken]:
        """Live tokens, of one user or all."""
        sql = (
            "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at "
            "FROM api_tokens WHERE revoked_at IS NULL"
        )
        if user_id is None:
            rows = await self.db.fetchall(sql + " ORDER BY id")
        else:
            rows = await self.db.fetchall(sql + " AND user_id = ? ORDER BY id", (user_id,))
        return [ApiToken(**dict(r)) for r in rows]

    async def get(self, token_id: int) -> ApiToken | None:
        """One live token's record."""
        row = await self.db.fetchone(
            "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at "
            "FROM api_tokens WHERE id = ? AND revoked_at IS NULL",
            (token_id,),
        )
        return None if row is None else ApiToken(**dict(row))

    async def revoke(self, token_id: int) -> None:
        """Revoke a token."""
        await self.db.execute(
            "UPDATE api_tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (token_id,),
        )

    async def touch(self, token_id: int) -> None:
        """Record a use of the token."""
        await self.db.execute(
            "UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
            "WHERE id = ?",
            (token_id,),
        )
