"""The server sees a login change another process committed (two connections to one real
SQLite file, as the server and the CLI are): a voiding audit action wakes the sockets' checks;
the server's own writes and harmless actions do not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.auth.other_writers import OtherWritersWatch
from appliance.auth.service import AuthService
from appliance.config import AuthConfig
from appliance.db.audit import AuditRepository
from appliance.db.database import Database
from appliance.db.migrations import migrate


def test_only_another_processs_voiding_change_wakes_the_sockets(tmp_path: Path) -> None:
    path = tmp_path / "salesboost.db"
    migrate(path)

    async def run() -> list[bool]:
        async with Database(path) as server, Database(path) as cli:
            auth = AuthService(server, AuthConfig(), b"k" * 32)
            watch = OtherWritersWatch(server, auth, interval_s=3600)  # rounds by hand here
            await watch.start()
            waiter = asyncio.ensure_future(auth.wait_login_change(1, 3600))
            try:
                seen = [await watch.check()]  # nothing happened
                await AuditRepository(cli).record("login", actor="ann")
                seen.append(await watch.check())  # another process, but nothing voided
                await AuditRepository(server).record("token_created", actor="admin")
                seen.append(await watch.check())  # this process's own write: not looked at
                assert not waiter.done()
                await AuditRepository(cli).record("user_disabled", actor="cli", target="user:1")
                seen.append(await watch.check())
                await asyncio.wait_for(waiter, 5)  # the socket of user 1 checks again now
                seen.append(await watch.check())  # and only once
                return seen
            finally:
                waiter.cancel()
                await watch.stop()

    assert asyncio.run(run()) == [False, False, False, True, False]
