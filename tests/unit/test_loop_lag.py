"""The event-loop lag probe sees a loop blocked on purpose (a fault injection: time.sleep on
the loop), counts it on /metrics' histogram, logs the stall and where the loop was."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from appliance.loop_lag import GC_PAUSE, LOOP_LAG, GcTimer, LoopLagProbe, freeze_heap


def _count_over(seconds: float) -> float:
    """Samples of the histogram later than ``seconds`` (a bucket bound)."""
    total = over = 0.0
    for family in LOOP_LAG.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                total = sample.value
            elif sample.name.endswith("_bucket") and sample.labels["le"] == str(seconds):
                over = sample.value
    return total - over


def test_fault_injection_a_blocked_loop_shows_as_lag(caplog: pytest.LogCaptureFixture) -> None:
    before = _count_over(0.5)

    async def run() -> LoopLagProbe:
        probe = LoopLagProbe(interval_s=0.05)
        await probe.start()
        await asyncio.sleep(0.3)  # a few quiet samples
        time.sleep(0.7)  # the fault: the loop is blocked on purpose
        await asyncio.sleep(0.2)
        await probe.stop()
        return probe

    with caplog.at_level(logging.WARNING, logger="appliance.loop_lag"):
        probe = asyncio.run(run())
    summary = probe.summary()
    assert summary.samples >= 5
    assert 650 <= summary.max_ms < 2000
    assert summary.p50_ms < 100  # the other samples were on time
    assert _count_over(0.5) == before + 1
    assert any("event loop was blocked for 0.7" in r.getMessage() for r in caplog.records)
    # the watchdog caught the loop's thread in the act: the stack names the blocking line
    assert len(probe.stalls.caught) == 1
    assert "test_loop_lag.py" in probe.stalls.caught[0]
    assert "time.sleep(0.7)" in probe.stalls.caught[0]
    assert any("has been blocked for" in r.getMessage() for r in caplog.records)


def test_summary_keeps_only_the_window() -> None:
    probe = LoopLagProbe(interval_s=1, window_s=10)
    probe.record(0.9, at=100.0)
    probe.record(0.002, at=105.0)
    probe.record(0.004, at=109.0)
    late = probe.summary(now=112.0)
    assert late.samples == 2 and late.max_ms == 4.0
    assert probe.summary(now=200.0).samples == 0


def _gc_count(generation: int) -> float:
    for family in GC_PAUSE.collect():
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels["generation"] == str(generation):
                return sample.value
    return 0.0


def test_collections_are_timed_and_a_long_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timer = GcTimer(log_s=0.0)  # every collection counts as long here
    before = _gc_count(2)
    timer.start()
    try:
        gc.collect(2)
    finally:
        timer.stop()
    with caplog.at_level(logging.WARNING, logger="appliance.loop_lag"):
        timer.flush_log()  # the log is written outside the collection
    assert _gc_count(2) == before + 1
    assert timer.longest_s > 0
    assert any("a garbage collection (generation 2" in r.getMessage() for r in caplog.records)
    gc.collect(2)  # not timed once stopped
    assert _gc_count(2) == before + 1


def test_freeze_heap_keeps_what_is_alive_out_of_later_collections() -> None:
    try:
        frozen = freeze_heap("test")
        # other threads of this test process (earlier tests' loops) may free a few frozen
        # objects meanwhile: the count can only fall, and not by much
        assert frozen > 1000 and 0.99 * frozen <= gc.get_freeze_count() <= frozen
        assert gc.collect(2) >= 0  # a full collection still runs, over what came after
    finally:
        gc.unfreeze()
