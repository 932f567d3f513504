"""`salesboost bench ui`: what the browser UI costs on loopback, measured in a real Chromium.

For each page (the practice page first), every repeat opens it in a fresh browser context
(a cold cache, as a first visit) and once more in the same context (a warm cache). It records
the bytes transferred (response headers + bodies, plus the WebSocket frames received before the
page was interactive) and the time from navigation start to interactive: the page's own
``sb-interactive`` performance mark (practice: the session's ``welcome`` is rendered and the
input is enabled; home: the scenarios are listed), else DOMContentLoaded for static pages.
Playwright drives Debian's /usr/bin/chromium; nothing is downloaded.
"""

from __future__ import annotations

import json
import platform
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from appliance.testing import ServerProcess, add_user

console = Console()
PASSWORD = secrets.token_urlsafe(18)  # the bench user lives in a throwaway state dir
CHROMIUM = "/usr/bin/chromium"

INTERACTIVE_JS = """() => {
  const mark = performance.getEntriesByName('sb-interactive')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  return {interactive: mark ? mark.startTime : null,
          dom_content_loaded: nav ? nav.domContentLoadedEventEnd : null,
          load: nav ? nav.loadEventEnd : null};
}"""


def _session(url: str, username: str) -> int:
    """A practice session on an English demo scenario (waits for the demo catalogue)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        ).raise_for_status()
        deadline = time.monotonic() + 120
        while not (scenarios := client.get("/api/scenarios").json()):
            if time.monotonic() > deadline:
                raise RuntimeError("the demo pack did not load")
            time.sleep(0.5)
        personas = {p["id"]: p for p in client.get("/api/personas").json()}
        for s in scenarios:
            ids = [i for i in (s.get("persona_ids") or list(personas)) if i in personas]
            if s.get("language", "en") == "en" and ids:
                response = client.post(
                    "/api/sessions", json={"scenario_id": s["id"], "persona_id": ids[0]}
                )
                response.raise_for_status()
                return int(response.json()["id"])
    raise RuntimeError("no English demo scenario with a persona")


class _Load:
    """Bytes of one page load: HTTP responses (headers + body) and WebSocket frames received."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.finished: list[Any] = []
        self.ws_bytes = 0
        page.on("requestfinished", self._finished)
        page.on("websocket", self._socket)

    def _finished(self, request: Any) -> None:
        self.finished.append(request)

    def _socket(self, ws: Any) -> None:
        def received(payload: str | bytes) -> None:
            self.ws_bytes += len(payload.encode() if isinstance(payload, str) else payload)

        ws.on("framereceived", received)

    def close(self) -> None:
        """Stop counting (the next load on this page counts its own bytes)."""
        self.page.remove_listener("requestfinished", self._finished)
        self.page.remove_listener("websocket", self._socket)

    def http_bytes(self) -> int:
        """Response headers + bodies of every finished request."""
        total = 0
        for request in self.finished:
            sizes = request.sizes()
            total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        return total


def _measure(page: Any, path: str, marked: bool) -> dict[str, Any]:
    load = _Load(page)
    page.goto(path, wait_until="load")
    if marked:
        page.wait_for_function(
            "() => performance.getEntriesByName('sb-interactive').length > 0", timeout=60_000
        )
    page.wait_for_load_state("networkidle")
    timing = page.evaluate(INTERACTIVE_JS)
    load.close()
    interactive = timing["interactive"] if marked else timing["dom_content_loaded"]
    return {
        "interactive_ms": round(float(interactive), 1),
        "load_ms": round(float(timing["load"] or 0), 1),
        "http_bytes": load.http_bytes(),
        "ws_bytes": load.ws_bytes,
        "requests": len(load.finished),
    }


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    times = sorted(s["interactive_ms"] for s in samples)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {
        "interactive_ms_p50": round(statistics.median(times), 1),
        "interactive_ms_p95": round(p95, 1),
        "interactive_ms_max": round(times[-1], 1),
        "http_bytes": round(statistics.median(s["http_bytes"] for s in samples)),
        "ws_bytes": round(statistics.median(s["ws_bytes"] for s in samples)),
        "requests": round(statistics.median(s["requests"] for s in samples)),
    }


def _run(repeat: int, target_ms: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    state = Path(tempfile.mkdtemp(prefix="salesboost-bench-ui-"))
    add_user(state, "bench-trainee", "trainee", PASSWORD)
    server = ServerProcess(
        state,
        SALESBOOST__DEMO__LOAD_ON_EMPTY="true",
        SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="100000",
        SALESBOOST__AUTH__API_RATE_PER_MINUTE="1000000",
    )
    server.start(timeout=180)
    rows: list[dict[str, Any]] = []
    try:
        session_id = _session(server.url, "bench-trainee")
        pages = [
            (f"/practice/{session_id}", "practice", True, True),
            ("/home", "home", True, True),
            ("/history", "history", False, True),
            ("/login", "login", False, False),
        ]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            for path, name, marked, needs_login in pages:
                cold: list[dict[str, Any]] = []
                warm: list[dict[str, Any]] = []
                for _ in range(repeat):
                    context = browser.new_context(base_url=server.url)
                    if needs_login:
                        context.request.post(
                            "/api/auth/login",
                            data={"username": "bench-trainee", "password": PASSWORD},
                        )
                    page = context.new_page()
                    cold.append(_measure(page, path, marked))
                    warm.append(_measure(page, path, marked))
                    context.close()
                rows.append({"page": name, "path": path, "cache": "cold", **_summary(cold)})
                rows.append({"page": name, "path": path, "cache": "warm", **_summary(warm)})
            browser.close()
    finally:
        server.stop()
    practice_cold = next(r for r in rows if r["page"] == "practice" and r["cache"] == "cold")
    return {
        "bench": "ui",
        "machine": platform.node(),
        "cpus": psutil.cpu_count(logical=True),
        "repeat": repeat,
        "target_ms": target_ms,
        "rows": rows,
        "practice_cold_p95_within_target": practice_cold["interactive_ms_p95"] <= target_ms,
    }


def run_ui_bench(*, repeat: int, target_ms: float, out: Path) -> None:
    """Run the UI bench, print a table, write JSON."""
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"{CHROMIUM} is absent: install Debian's chromium (install.sh --dev)")
    result = _run(repeat, target_ms)
    table = Table(title=f"bench ui ({result['machine']}, {result['cpus']} CPUs, loopback)")
    for col in ("page", "cache", "requests", "HTTP KiB", "WS KiB", "TTI p50 ms", "p95", "max"):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        table.add_row(
            r["page"],
            r["cache"],
            str(r["requests"]),
            f"{r['http_bytes'] / 1024:.1f}",
            f"{r['ws_bytes'] / 1024:.1f}",
            str(r["interactive_ms_p50"]),
            str(r["interactive_ms_p95"]),
            str(r["interactive_ms_max"]),
        )
    console.print(table)
    verdict = "within" if result["practice_cold_p95_within_target"] else "OVER"
    console.print(f"practice page, cold cache: p95 time to interactive {verdict} {target_ms} ms")
    out.write_text(json.dumps(result, indent=2))
