"""How late the event loop runs: the number that shows a blocked server.

Every socket, request and background task of the appliance shares one asyncio event loop, so
work that blocks it (a synchronous call that belongs in a thread) delays every client at once:
deltas stall, pages hang, pings time out. A probe sleeps a quarter of a second at a time and
measures how late it wakes. The lateness goes to ``/metrics``
(``salesboost_event_loop_lag_seconds``, a histogram) and, for the last five minutes, to the
System page; a stall of half a second or more is logged (at most once a minute) so that an
operator can match it with what the server was doing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import Histogram

from appliance.background import BackgroundTask

log = logging.getLogger(__name__)

LOOP_LAG = Histogram(
    "salesboost_event_loop_lag_seconds",
    "How late the event loop woke a 0.25 s sleep: time during which nothing else in the "
    "process could run.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

INTERVAL_S = 0.25
WINDOW_S = 300.0
WARN_S = 0.5
WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class LagSummary:
    """The probe's samples of the last ``window_s`` seconds."""

    samples: int
    window_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


class LoopLagProbe:
    """Measures the event loop's lateness while the server runs."""

    def __init__(self, interval_s: float = INTERVAL_S, window_s: float = WINDOW_S) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self._recent: deque[tuple[float, float]] = deque(maxlen=int(window_s / interval_s) + 1)
        self._task = BackgroundTask("loop-lag")
        self._warned_at = -WARN_EVERY_S

    async def start(self) -> None:
        """Start probing."""
        self._task.start(self._run())

    async def stop(self) -> None:
        """Stop probing."""
        await self._task.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_s)
            now = loop.time()
            self.record(max(0.0, now - before - self.interval_s), now)

    def record(self, lag_s: float, at: float | None = None) -> None:
        """One sample: the metric, the window and, for a long stall, the log."""
        at = time.monotonic() if at is None else at
        LOOP_LAG.observe(lag_s)
        self._recent.append((at, lag_s))
        if lag_s >= WARN_S and at - self._warned_at >= WARN_EVERY_S:
            self._warned_at = at
            log.warning(
                "the event loop was blocked for %.2f s: every connection waited "
                "(salesboost_event_loop_lag_seconds on /metrics counts them all)",
                lag_s,
            )

    def summary(self, now: float | None = None) -> LagSummary:
        """Percentiles of the samples of the last window."""
        now = time.monotonic() if now is None else now
        lags = sorted(lag for at, lag in self._recent if now - at <= self.window_s)
        if not lags:
            return LagSummary(samples=0, window_s=self.window_s, p50_ms=0, p99_ms=0, max_ms=0)

        def pick(q: float) -> float:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1)

        return LagSummary(
            samples=len(lags),
            window_s=self.window_s,
            p50_ms=pick(0.5),
            p99_ms=pick(0.99),
            max_ms=round(lags[-1] * 1000, 1),
        )
