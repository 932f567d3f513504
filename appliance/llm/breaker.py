"""A circuit breaker per backend, on `purgatory` (asyncio-native; pybreaker is sync-first).

Opens after ``llm.breaker_failures`` consecutive failures; after ``llm.breaker_reset_s`` the
next request is a half-open probe: success closes it, failure re-opens it. Exceptions that
are the caller's doing (busy, cancellation, a client going away) do not count.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from appliance.llm import metrics
from appliance.llm.errors import LLMUnavailable

BreakerState = Literal["closed", "half-open", "open"]
_GAUGE = {"closed": 0, "half-open": 1, "open": 2}
ALWAYS_IGNORED: tuple[type[BaseException], ...] = (GeneratorExit, asyncio.CancelledError)


class Breaker:
    """One named breaker; ``guard()`` wraps a request."""

    def __init__(
        self,
        backend: str,
        *,
        failures: int,
        reset_s: float,
        ignore: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.backend = backend
        self.reset_s = reset_s
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures,
            default_ttl=reset_s,
            exclude=list(ALWAYS_IGNORED + ignore),
        )
        self._factory.add_listener(self._on_event)
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        metrics.BREAKER_STATE.labels(backend).set(0)

    def _on_event(self, name: str, event_name: str, event: Any) -> None:
        if event_name != "state_changed":
            return
        state = {"opened": "open", "half-opened": "half-open"}.get(event.state, "closed")
        self._state = state  # type: ignore[assignment]
        if state == "open":
            self._opened_at = time.monotonic()
        metrics.BREAKER_STATE.labels(self.backend).set(_GAUGE[state])

    def state(self) -> BreakerState:
        """closed, open, or half-open (open past its reset time: the next request probes)."""
        if self._state == "open" and time.monotonic() - self._opened_at >= self.reset_s:
            return "half-open"
        return self._state

    def retry_after(self) -> int:
        """Seconds until a half-open probe is allowed."""
        left = self.reset_s - (time.monotonic() - self._opened_at)
        return max(1, math.ceil(left))

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run a request under the breaker; LLMUnavailable when it is open."""
        brk = await self._factory.get_breaker(self.backend)
        try:
            await brk.__aenter__()
        except OpenedState:
            raise LLMUnavailable(
                f"the {self.backend} LLM backend is unavailable after repeated failures",
                backend=self.backend,
                retry_after=self.retry_after(),
            ) from None
        try:
            yield
        except BaseException as exc:
            await brk.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            await brk.__aexit__(None, None, None)
