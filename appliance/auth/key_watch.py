"""A running server notices `salesboost secrets rotate session_key` by itself.

The session key signs nothing a browser holds (sessions live server-side); it fingerprints
every browser session and hashes every API token. Rotating it is how an admin signs everyone
out at once, e.g. after a leak, so a running server must not keep the old key until a
restart: this re-reads it every few seconds and swaps it in when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from appliance.auth.service import AuthService

log = logging.getLogger(__name__)

INTERVAL_S = 2.0
"""How often the key is read again (a file or keyring read: cheap)."""


class SessionKeyWatcher:
    """``async with``: a background task that swaps a rotated session key into ``auth``."""

    def __init__(
        self, auth: AuthService, read: Callable[[], bytes | None], interval_s: float = INTERVAL_S
    ) -> None:
        self.auth = auth
        self.read = read
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SessionKeyWatcher:
        self._task = asyncio.create_task(self._run(), name="session-key-watch")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> bool:
        """Read the key once; True when it changed (and is now in use)."""
        try:
            key = await asyncio.to_thread(self.read)
        except Exception:  # a keyring hiccup: keep the current key, say so, try again later
            log.warning("session key: could not read it; keeping the current one", exc_info=True)
            return False
        if not key or not self.auth.set_key(key):
            return False
        log.warning("session key rotated: every browser session and API token is now void")
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check()
