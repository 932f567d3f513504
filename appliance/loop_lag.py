"""How late the event loop runs: the number that shows a blocked server.

Every socket, request and background task of the appliance shares one asyncio event loop, so
work that blocks it (a synchronous call that belongs in a thread) delays every client at once:
deltas stall, pages hang, pings time out. A probe sleeps a quarter of a second at a time and
measures how late it wakes. The lateness goes to ``/metrics``
(``salesboost_event_loop_lag_seconds``, a histogram) and, for the last five minutes, to the
System page; a stall of half a second or more is logged (at most once a minute) so that an
operator can match it with what the server was doing.

A garbage collection holds the loop too (the GIL is held while it walks the heap), so each
collection is timed (``salesboost_gc_pause_seconds`` by generation) and a long one is logged.
A full collection walks every object alive, the libraries' and the models' included: 0.3-0.5 s
on a 2-core box. :func:`freeze_heap` (``server.gc_freeze``) moves what start-up made out of its
reach once, so later full collections walk only what the server made since.

The lag says *that* the loop was blocked, not *by what*. A watchdog thread (:class:`StallWatch`)
says by what: the loop beats every 50 ms, and when a beat is half a second late the thread logs
the stack of the loop's thread as it is at that moment, the code that holds up everyone.
(Python code that blocks is caught in the act; C code that blocks while holding the GIL keeps
the watchdog out too, so it is seen only by the lag.)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import Any

from prometheus_client import Histogram

from appliance.background import BackgroundTask

log = logging.getLogger(__name__)

LOOP_LAG = Histogram(
    "salesboost_event_loop_lag_seconds",
    "How late the event loop woke a 0.25 s sleep: time during which nothing else in the "
    "process could run.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

GC_PAUSE = Histogram(
    "salesboost_gc_pause_seconds",
    "Garbage collections of the process by generation, and how long each held it.",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
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


def _task_stack(frame: FrameType) -> str:
    """The stack below the event loop's own frames (the task's code), innermost 12 frames."""
    frames = traceback.extract_stack(frame)
    inside = [i for i, f in enumerate(frames) if f.filename.endswith("asyncio/events.py")]
    own = frames[inside[-1] + 1 :] if inside else frames
    return "".join(traceback.format_list(own[-12:]))


class StallWatch:
    """A watchdog thread that logs where the event loop's thread is while the loop is blocked."""

    def __init__(self, after_s: float = WARN_S, beat_s: float = 0.05) -> None:
        self.after_s = after_s
        self.beat_s = beat_s
        self.caught: list[str] = []
        """The stacks logged so far (newest last, at most 10)."""
        self._beat = time.monotonic()
        self._loop_thread: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_at = -WARN_EVERY_S

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start beating on ``loop`` (call from the loop's thread) and watching from a thread."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._handle = loop.call_later(self.beat_s, self._on_beat, loop)
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="loop-stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and watching."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None

    def _on_beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self._beat = time.monotonic()
        self._handle = loop.call_later(self.beat_s, self._on_beat, loop)

    def _watch(self) -> None:
        reported = 0.0  # the beat whose stall was logged
        while not self._stop.wait(self.beat_s):
            beat = self._beat
            late = time.monotonic() - beat - self.beat_s
            if late < self.after_s or beat == reported:
                continue
            reported = beat
            now = time.monotonic()
            if now - self._warned_at < WARN_EVERY_S:
                continue
            frame = sys._current_frames().get(self._loop_thread or 0)
            if frame is None:
                continue
            stack = _task_stack(frame)
            self._warned_at = now
            self.caught = [*self.caught[-9:], stack]
            log.warning(
                "the event loop has been blocked for %.2f s so far; its thread is in:\n%s",
                late,
                stack.rstrip(),
            )


class GcTimer:
    """Times every garbage collection (``gc.callbacks``) and logs a long one.

    The callback runs inside the collector, in whatever thread allocated: it only takes the
    time and counts it; the log line is written later, by :meth:`flush_log` (the lag probe
    calls it from the event loop), never from inside a collection.
    """

    def __init__(self, log_s: float = WARN_S) -> None:
        self.log_s = log_s
        self.longest_s = 0.0
        self._started = 0.0
        self._warned_at = -WARN_EVERY_S
        self._long: tuple[int, int, float] | None = None

    def start(self) -> None:
        """Begin timing collections."""
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Stop timing collections."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = int(info.get("generation", 0))
        GC_PAUSE.labels(str(generation)).observe(took)
        self.longest_s = max(self.longest_s, took)
        if took >= self.log_s and (self._long is None or took > self._long[2]):
            self._long = (generation, int(info.get("collected", 0)), took)

    def flush_log(self) -> None:
        """Log the longest collection over ``log_s`` since the last call (once a minute)."""
        long, self._long = self._long, None
        now = time.monotonic()
        if long is None or now - self._warned_at < WARN_EVERY_S:
            return
        self._warned_at = now
        log.warning(
            "a garbage collection (generation %s, %s objects freed) held the process for %.2f s",
            *long,
        )


def freeze_heap(why: str) -> int:
    """Collect, then move every object alive into the permanent generation (``gc.freeze``):
    later full collections walk only what was made since. Returns the objects frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "%s: %s objects kept out of later garbage collections (%.2f s)",
        why,
        frozen,
        time.perf_counter() - started,
    )
    return frozen


class LoopLagProbe:
    """Measures the event loop's lateness while the server runs."""

    def __init__(
        self, interval_s: float = INTERVAL_S, window_s: float = WINDOW_S, stall_s: float = WARN_S
    ) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self.stall_s = stall_s
        self._recent: deque[tuple[float, float]] = deque(maxlen=int(window_s / interval_s) + 1)
        self._task = BackgroundTask("loop-lag")
        self._warned_at = -WARN_EVERY_S
        self.stalls = StallWatch(after_s=stall_s)
        self.gc = GcTimer(log_s=stall_s)

    async def start(self) -> None:
        """Start probing, the stall watchdog and the collection timer."""
        self._task.start(self._run())
        self.stalls.start(asyncio.get_running_loop())
        self.gc.start()

    async def stop(self) -> None:
        """Stop probing and watching."""
        self.gc.stop()
        self.stalls.stop()
        await self._task.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_s)
            now = loop.time()
            self.record(max(0.0, now - before - self.interval_s), now)
            self.gc.flush_log()

    def record(self, lag_s: float, at: float | None = None) -> None:
        """One sample: the metric, the window and, for a long stall, the log."""
        at = time.monotonic() if at is None else at
        LOOP_LAG.observe(lag_s)
        self._recent.append((at, lag_s))
        if lag_s >= self.stall_s and at - self._warned_at >= WARN_EVERY_S:
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
