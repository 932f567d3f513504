"""Expired entries of the server-side stores are removed, not only when their key comes back.

Litestar's ``FileStore`` (browser sessions, one file per login) and ``MemoryStore`` (rate-limit
buckets, one per client address) drop an expired entry only when the same key is read again.
A login never followed by a logout (a closed browser, a script) left its file in
``state/sessions/`` for good: the soak test counted one more file per such login, never
fewer. Every ``INTERVAL_S`` the stores' own ``delete_expired()`` clears them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from appliance.background import BackgroundTask

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0


class Expiring(Protocol):
    """A store that can drop its expired entries (Litestar's FileStore and MemoryStore)."""

    async def delete_expired(self) -> None:
        """Remove every expired entry."""


class StoreSweeper:
    """Calls ``delete_expired()`` on each store every ``interval_s``."""

    def __init__(self, stores: Iterable[Expiring], interval_s: float = INTERVAL_S) -> None:
        self.stores = list(stores)
        self.interval_s = interval_s
        self._task = BackgroundTask("store-sweep")

    async def start(self) -> None:
        """Sweep now (a restart after a long run clears what piled up), then every interval."""
        self._task.start_every(
            self.interval_s, self.sweep, first_now=True, log=log, what="the store sweep"
        )

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._task.stop()

    async def sweep(self) -> None:
        """One round over every store."""
        for store in self.stores:
            await store.delete_expired()
