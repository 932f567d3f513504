"""Expired browser sessions are removed from ``state/sessions`` by the server itself.

Soak test finding: a login never followed by a logout left its session file behind for good
(Litestar's FileStore drops an expired entry only when its cookie comes back). Entries are
written here with Litestar's own FileStore, as the server writes a login's, one expired and one
live; the real server's sweep at start removes the first and keeps the second.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import closing
from pathlib import Path

from appliance.testing import ServerProcess
from litestar.stores.file import FileStore

from tests.conftest import Account, add_user, login

ADMIN = Account("sweep-admin", "admin", "hq")


def test_expired_session_files_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_user(state, ADMIN)
    store = FileStore(state / "sessions", create_directories=True)
    asyncio.run(store.set("left-behind", b'{"uid": 1}', expires_in=1))
    asyncio.run(store.set("still-live", b'{"uid": 1}', expires_in=3600))
    time.sleep(1.5)
    assert asyncio.run(store.exists("left-behind"))  # expired, but the file is still there
    before = {p.name for p in (state / "sessions").iterdir()}
    assert len(before) == 2
    with ServerProcess(state) as server:
        deadline = time.monotonic() + 30
        while len(list((state / "sessions").iterdir())) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not asyncio.run(store.exists("left-behind"))
        assert asyncio.run(store.exists("still-live"))
        with closing(login(server, ADMIN)) as admin:  # a new login's file is written as before
            assert admin.get("/api/auth/me").status_code == 200
        assert len(list((state / "sessions").iterdir())) == 2
