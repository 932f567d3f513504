"""The engine wired into the real server: loaded at start-up, visible in /readyz and /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from appliance.testing import ServerProcess


def test_serve_loads_the_model_and_reports_it(tmp_path: Path) -> None:
    started = time.monotonic()
    with ServerProcess(tmp_path / "state") as server:
        ready_after = time.monotonic() - started
        ready = httpx.get(server.url + "/readyz", timeout=5).json()
        metrics = httpx.get(server.url + "/metrics", timeout=5).text
    assert ready_after < 15, ready_after
    llm = next(c for c in ready["checks"] if c["name"] == "llm")
    assert llm["ok"], llm
    assert "llama_cpp" in llm["detail"] and "breaker closed" in llm["detail"]
    assert 'salesboost_llm_breaker_open{backend="llama_cpp"} 0.0' in metrics
    assert "salesboost_llm_active_sequences" in metrics
