"""A running server notices at once a login change that another process (the CLI) made.

Changes made through this server wake the sockets they concern directly
(:meth:`AuthService.wait_login_change`). ``salesboost users disable|erase|reset-password`` and
``salesboost sessions purge`` write the same database from another process, which this server
would otherwise see only at the next periodic re-check (``auth.socket_recheck_s``, 30 s): a
disabled person's observer socket would stay open that long. So this asks SQLite every second
whether another connection has committed (``PRAGMA data_version``: one cheap read, no I/O when
nothing changed), and if so whether the audit log gained a row that can void a login or a
session since it last looked; then every open socket checks its caller again. (Such a row this
process wrote itself, read along with another process's row, wakes them a second time: harmless.)
"""

from __future__ import annotations

import logging

from appliance.auth.service import AuthService
from appliance.background import BackgroundTask
from appliance.db.database import Database

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
"""How often SQLite is asked whether another process committed."""

VOIDING_ACTIONS = frozenset(
    {
        "user_disabled",
        "user_erased",
        "password_reset",
        "password_changed",
        "role_changed",
        "team_changed",
        "token_deleted",
        "session_deleted",
        "sessions_purged",
    }
)
"""Audit actions after which an open socket may no longer be allowed (the CLI records each)."""


class OtherWritersWatch:
    """Wakes every socket's login check when another process committed a voiding change."""

    def __init__(self, db: Database, auth: AuthService, interval_s: float = INTERVAL_S) -> None:
        self.db = db
        self.auth = auth
        self.interval_s = interval_s
        self._task = BackgroundTask("other-writers-watch")
        self._version: int | None = None
        self._audit_id = 0

    async def start(self) -> None:
        """Note where the database stands now, then check every ``interval_s``."""
        self._version = await self.db.data_version()
        self._audit_id = int(await self.db.fetchval("SELECT COALESCE(MAX(id), 0) FROM audit_log"))
        self._task.start_every(
            self.interval_s, self.check, first_now=False, log=log, what="the other-writers check"
        )

    async def stop(self) -> None:
        """Stop checking."""
        await self._task.stop()

    async def check(self) -> bool:
        """One round; True when it woke the sockets."""
        version = await self.db.data_version()
        if version == self._version:
            return False
        self._version = version
        rows = await self.db.fetchall(
            "SELECT id, action FROM audit_log WHERE id > ? ORDER BY id", (self._audit_id,)
        )
        if not rows:
            return False
        self._audit_id = int(rows[-1]["id"])
        voiding = sorted({str(r["action"]) for r in rows} & VOIDING_ACTIONS)
        if not voiding:
            return False
        log.info(
            "another process changed logins or sessions (%s): re-checking open sockets",
            ", ".join(voiding),
        )
        self.auth.logins_changed_elsewhere()
        return True
