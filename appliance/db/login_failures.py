"""Failed-login counters per (username, ip), behind the lockout."""

from __future__ import annotations

from appliance.db.database import Database


class LoginFailureRepository:
    """Counts failures inside a window and records lockouts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def locked_until(self, username: str, ip: str) -> float:
        """Epoch seconds until which the pair is locked (0 when it is not)."""
        value = await self.db.fetchval(
            "SELECT locked_until FROM login_failures WHERE username = ? AND ip = ?",
            (username, ip),
        )
        return float(value or 0)

    async def fail(
        self, username: str, ip: str, *, now: float, window_s: int, threshold: int, lockout_s: int
    ) -> float:
        """Count one failure; returns locked_until (0 if this failure did not lock)."""
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT failures, window_start FROM login_failures WHERE username = ? AND ip = ?",
                (username, ip),
            ) as cur:
                row = await cur.fetchone()
            failures, start = (
                (1, now) if row is None or now - row[1] > window_s else (row[0] + 1, row[1])
            )
            locked = now + lockout_s if failures >= threshold else 0.0
            if locked:
                failures, start = 0, now
            await conn.execute(
                "INSERT INTO login_failures (username, ip, failures, window_start, locked_until) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (username, ip) DO UPDATE SET "
                "failures = excluded.failures, window_start = excluded.window_start, "
                "locked_until = excluded.locked_until",
                (username, ip, failures, start, locked),
            )
        return locked

    async def clear(self, username: str, ip: str) -> None:
        """Forget the pair's failures after a successful login."""
        await self.db.execute(
            "DELETE FROM login_failures WHERE username = ? AND ip = ?", (username, ip)
        )
