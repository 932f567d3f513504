"""`salesboost bench practice` and `salesboost bench fanout`: real trainees over real WebSockets.

Both start the real appliance (``salesboost serve`` in a subprocess, the demo pack loaded on its
first start, the bundled model) on a fresh state directory, wait until the demo documents are
ingested (so ingestion does not compete), and drive it from this process with the ``websockets``
asyncio client.

- ``practice``: for each level N, N trainees each run a session of ``--turns`` turns with think
  time before each line (reading, typing). TTFT = from sending ``say`` to the first ``npc_delta``; also the whole turn,
  turns per minute, the error rate and the server's peak RSS. The answer is the largest N whose
  p95 TTFT is within ``--target-s``.
- ``fanout``: ``--idle`` connections to idle sessions plus ``--active`` sessions each with its
  trainee and ``--observers`` observers; the active trainees run turns. Every connection timestamps
  what it receives against the event's server time (``at``): delivered events per second, delivery
  latency percentiles, the server's RSS with all connections open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import random
import resource
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

from appliance.loop_lag import LoopLagProbe, freeze_heap
from appliance.testing import ServerProcess, add_user

PASSWORD = secrets.token_urlsafe(18)  # the bench users live in a throwaway state dir
LINES = [
    "Good morning Mr. Chen, thanks for taking my call today.",
    "I understand the annual fee feels high. What do you spend on the card each month?",
    "With that spending the fee waiver applies, so the annual fee would be zero.",
    "Many business owners value the airport lounges and the travel insurance.",
    "What would make this card worth keeping for you?",
    "Could I set up the waiver today and email you a summary?",
]
console = Console()


def server_env(settings: list[str]) -> dict[str, str]:
    """``section.key=value`` overrides for the server under test, as SALESBOOST__ variables."""
    env = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"--set wants section.key=value, got {item!r}")
        section, name = key.split(".", 1)
        env[f"SALESBOOST__{section.upper()}__{name.upper()}"] = value
    return env


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


async def _loop_lag_buckets(client: httpx.AsyncClient) -> dict[str, dict[float, float]]:
    """The server's event-loop lag and generation-2 GC pause histograms from /metrics:
    cumulative count per bucket bound."""
    text = (await client.get("/metrics")).raise_for_status().text
    found: dict[str, dict[float, float]] = {"lag": {}, "gc2": {}}
    for line in text.splitlines():
        if line.startswith("salesboost_event_loop_lag_seconds_bucket{"):
            which = "lag"
        elif line.startswith('salesboost_gc_pause_seconds_bucket{generation="2",'):
            which = "gc2"
        else:
            continue
        bound = line.split('le="', 1)[1].split('"', 1)[0]
        found[which][float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def _over(
    before: dict[float, float], after: dict[float, float]
) -> tuple[dict[float, float], float]:
    delta = {b: after.get(b, 0.0) - before.get(b, 0.0) for b in sorted(after)}
    return delta, delta.get(float("inf"), 0.0)


def _loop_lag_figures(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, Any]:
    """What the server's event loop did between two scrapes: probes (one per 0.25 s), how many
    woke more than 25, 50 and 100 ms late, the bucket of the latest one; generation-2 garbage
    collections, how many took over 50 ms, and the bucket of the longest."""
    lag, total = _over(before["lag"], after["lag"])
    gc2, collections = _over(before["gc2"], after["gc2"])

    def worst(delta: dict[float, float], count: float) -> float | None:
        return next((b for b in sorted(delta) if delta[b] >= count), None) if count else None

    return {
        "loop_lag_probes": int(total),
        "loop_lag_over_25ms": int(total - lag.get(0.025, 0.0)),
        "loop_lag_over_50ms": int(total - lag.get(0.05, 0.0)),
        "loop_lag_over_100ms": int(total - lag.get(0.1, 0.0)),
        "loop_lag_max_le_s": worst(lag, total),
        "gc_gen2_collections": int(collections),
        "gc_gen2_over_50ms": int(collections - gc2.get(0.05, 0.0)),
        "gc_gen2_max_le_s": worst(gc2, collections),
    }


def _add_users(state: Path, users: list[tuple[str, str]]) -> None:
    for username, role in users:
        add_user(state, username, role, PASSWORD)


async def _login(url: str, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=60)
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    response.raise_for_status()
    return client


async def _wait_for_demo(client: httpx.AsyncClient, limit_s: float = 900) -> int:
    """Wait until the demo documents are ingested; returns how many there are."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        docs = (await client.get("/api/knowledge/documents")).json()
        items = docs if isinstance(docs, list) else docs.get("documents", docs.get("items", []))
        if items and all(d.get("state") in ("done", "failed") for d in items):
            return len(items)
        await asyncio.sleep(2)
    raise TimeoutError("the demo documents were not ingested in time")


async def _pick(client: httpx.AsyncClient) -> tuple[int, int]:
    scenarios = (await client.get("/api/scenarios")).json()
    personas = {p["id"]: p for p in (await client.get("/api/personas")).json()}
    for s in scenarios:
        if s.get("language", "en") == "en":
            for pid in s.get("persona_ids") or list(personas):
                if personas.get(pid, {}).get("language", "en") == "en":
                    return s["id"], pid
    raise RuntimeError("no English demo scenario")


async def _session(client: httpx.AsyncClient, scenario: tuple[int, int]) -> int:
    response = await client.post(
        "/api/sessions", json={"scenario_id": scenario[0], "persona_id": scenario[1]}
    )
    response.raise_for_status()
    return int(response.json()["id"])


async def _open(
    url: str, kind: str, session_id: int, client: httpx.AsyncClient
) -> ClientConnection:
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    ws = await connect(
        url.replace("http://", "ws://") + f"/ws/{kind}/{session_id}",
        additional_headers={"Cookie": cookie},
        open_timeout=60,
        max_size=2**20,
    )
    await ws.send(json.dumps({"type": "hello"}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


class _RSS:
    """Samples the server's resident memory every 0.25 s."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def now_mb(self) -> float:
        return round(self.proc.memory_info().rss / 2**20, 1)

    def split_mb(self) -> dict[str, float]:
        """Resident memory now: file-backed (mapped model weights, libraries) and anonymous."""
        info = self.proc.memory_info()
        return {
            "rss": round(info.rss / 2**20, 1),
            "file": round(info.shared / 2**20, 1),
            "anon": round((info.rss - info.shared) / 2**20, 1),
        }

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            await asyncio.sleep(0.25)

    def __enter__(self) -> _RSS:
        self.peak = 0
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


@dataclass
class _Trainee:
    ttft: list[float] = field(default_factory=list)
    turn_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    turns: int = 0


async def _run_turns(
    ws: ClientConnection, turns: int, think_s: float, tally: _Trainee, rng: random.Random
) -> None:
    for n in range(turns):
        # a trainee reads the persona card (or the last reply) and types before each line
        await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
        cid = uuid.uuid4().hex
        await ws.send(
            json.dumps({"type": "say", "client_turn_id": cid, "text": LINES[n % len(LINES)]})
        )
        sent = time.perf_counter()
        first = None
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 600))
            kind = event["type"]
            if kind == "npc_delta" and first is None:
                first = time.perf_counter() - sent
            elif kind == "error" and event.get("client_turn_id") == cid:
                tally.errors.append(event["code"])
                await asyncio.sleep(float(event.get("retry_after") or 1.0))
                break
            elif kind == "npc_done" and event.get("client_turn_id") == cid:
                tally.turn_s.append(time.perf_counter() - sent)
                tally.ttft.append(first if first is not None else tally.turn_s[-1])
                tally.turns += 1
                break


async def _practice(
    levels: list[int], turns: int, think_s: float, target_s: float, overrides: dict[str, str]
) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="salesboost-bench-practice-"))
    top = max(levels)
    _add_users(state, [("bench-admin", "admin")] + [(f"bench-t{i}", "trainee") for i in range(top)])
    server = ServerProcess(
        state,
        log_path=None,
        SALESBOOST__DEMO__LOAD_ON_EMPTY="true",
        SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="100000",
        SALESBOOST__AUTH__API_RATE_PER_MINUTE="1000000",
        **overrides,
    )
    server.start(timeout=120)
    rows: list[dict[str, Any]] = []
    try:
        assert server.proc is not None
        admin = await _login(server.url, "bench-admin")
        documents = await _wait_for_demo(admin)
        scenario = await _pick(admin)
        clients = [await _login(server.url, f"bench-t{i}") for i in range(top)]
        rss = _RSS(server.proc.pid)
        for level in levels:
            sockets = []
            for client in clients[:level]:
                sockets.append(
                    await _open(server.url, "practice", await _session(client, scenario), client)
                )
            tallies = [_Trainee() for _ in sockets]
            rng = random.Random(level)
            lag_before = await _loop_lag_buckets(admin)
            started = time.perf_counter()
            with rss:
                await asyncio.gather(
                    *(
                        _run_turns(ws, turns, think_s, t, rng)
                        for ws, t in zip(sockets, tallies, strict=True)
                    )
                )
            elapsed = time.perf_counter() - started
            for ws in sockets:
                await ws.close()
            ttft = [x for t in tallies for x in t.ttft]
            turn_s = [x for t in tallies for x in t.turn_s]
            errors = [e for t in tallies for e in t.errors]
            done = sum(t.turns for t in tallies)
            rows.append(
                {
                    "trainees": level,
                    "turns": done,
                    "errors": len(errors),
                    "error_codes": sorted(set(errors)),
                    "error_rate": round(len(errors) / max(1, done + len(errors)), 4),
                    "ttft_p50_s": _pct(ttft, 50),
                    "ttft_p95_s": _pct(ttft, 95),
                    "ttft_p99_s": _pct(ttft, 99),
                    "turn_p50_s": _pct(turn_s, 50),
                    "turns_per_min": round(done / elapsed * 60, 1),
                    "rss_peak_mb": rss.peak_mb,
                    **_loop_lag_figures(lag_before, await _loop_lag_buckets(admin)),
                }
            )
            console.print(rows[-1])
        for client in [admin, *clients]:
            await client.aclose()
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    ok = [
        r["trainees"]
        for r in rows
        if r["ttft_p95_s"] is not None and r["ttft_p95_s"] <= target_s and r["errors"] == 0
    ]
    return {
        "bench": "practice",
        "machine": platform.node(),
        "cpus": psutil.cpu_count(logical=True),
        "turns_per_trainee": turns,
        "think_s": think_s,
        "target_p95_ttft_s": target_s,
        "server_settings": overrides,
        "demo_documents": documents,
        "levels": rows,
        "largest_ok": max(ok) if ok else None,
    }


def run_practice_bench(
    *,
    levels: list[int],
    turns: int,
    think_s: float,
    target_s: float,
    settings: list[str],
    out: Path,
) -> None:
    """Run the practice bench, print a table, write JSON."""
    result = asyncio.run(_practice(levels, turns, think_s, target_s, server_env(settings)))
    table = Table(title=f"bench practice ({result['machine']}, {result['cpus']} CPUs)")
    for col in (
        "trainees",
        "turns",
        "errors",
        "TTFT p50",
        "p95",
        "p99",
        "turn p50",
        "turns/min",
        "RSS MB",
    ):
        table.add_column(col, justify="right")
    for r in result["levels"]:
        table.add_row(
            *(
                str(x)
                for x in (
                    r["trainees"],
                    r["turns"],
                    r["errors"],
                    r["ttft_p50_s"],
                    r["ttft_p95_s"],
                    r["ttft_p99_s"],
                    r["turn_p50_s"],
                    r["turns_per_min"],
                    r["rss_peak_mb"],
                )
            )
        )
    console.print(table)
    console.print(f"largest N with p95 TTFT <= {target_s} s and no errors: {result['largest_ok']}")
    out.write_text(json.dumps(result, indent=2))


# --- fanout -------------------------------------------------------------------------------


@dataclass
class _Listener:
    latencies: list[float] = field(default_factory=list)
    by_type: dict[str, list[float]] = field(default_factory=dict)
    events: int = 0


async def _listen(
    ws: ClientConnection, tally: _Listener, stop: asyncio.Event, since: float
) -> None:
    """Count events and their delivery latency; events sent before ``since`` (while the bench
    was still opening connections and nobody read them) are not delivery measurements."""
    with contextlib.suppress(Exception):
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 30)
            except TimeoutError:
                await ws.send('{"type": "ping"}')
                continue
            now = time.time()
            event = json.loads(raw)
            at = event.get("at") or 0.0
            if at >= since and event["type"] not in ("pong", "welcome", "error"):
                tally.latencies.append(now - at)
                tally.by_type.setdefault(event["type"], []).append(now - at)
                tally.events += 1


async def _fanout(
    idle: int, active: int, observers: int, turns: int, think_s: float, overrides: dict[str, str]
) -> dict[str, Any]:
    _raise_fd_limit()
    state = Path(tempfile.mkdtemp(prefix="salesboost-bench-fanout-"))
    _add_users(
        state,
        [("bench-idle", "trainee"), ("bench-active", "trainee"), ("bench-observer", "manager")],
    )
    server = ServerProcess(
        state,
        log_path=None,
        SALESBOOST__DEMO__LOAD_ON_EMPTY="true",
        SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="100000",
        SALESBOOST__AUTH__API_RATE_PER_MINUTE="1000000",
        SALESBOOST__REALTIME__IDLE_TIMEOUT_S="600",
        **overrides,
    )
    server.start(timeout=120)
    try:
        assert server.proc is not None
        idle_client = await _login(server.url, "bench-idle")
        active_client = await _login(server.url, "bench-active")
        observer_client = await _login(server.url, "bench-observer")
        documents = await _wait_for_demo(idle_client)
        scenario = await _pick(idle_client)
        rss = _RSS(server.proc.pid)
        split_start = rss.split_mb()
        rss_start = split_start["rss"]
        opened = time.perf_counter()
        idle_ids = [await _session(idle_client, scenario) for _ in range(idle)]
        idle_ws = []
        for chunk in range(0, idle, 50):
            idle_ws += await asyncio.gather(
                *(
                    _open(server.url, "practice", sid, idle_client)
                    for sid in idle_ids[chunk : chunk + 50]
                )
            )
        active_ids = [await _session(active_client, scenario) for _ in range(active)]
        active_ws = list(
            await asyncio.gather(
                *(_open(server.url, "practice", sid, active_client) for sid in active_ids)
            )
        )
        observer_ws = []
        for sid in active_ids:
            for _ in range(observers):
                observer_ws.append(await _open(server.url, "observe", sid, observer_client))
        connect_s = time.perf_counter() - opened
        rss_connected = rss.now_mb()
        stop = asyncio.Event()
        idle_tally, obs_tally = _Listener(), _Listener()
        since = time.time()
        listeners = [asyncio.ensure_future(_listen(ws, idle_tally, stop, since)) for ws in idle_ws]
        listeners += [
            asyncio.ensure_future(_listen(ws, obs_tally, stop, since)) for ws in observer_ws
        ]
        trainees = [_Trainee() for _ in active_ws]
        rng = random.Random(7)
        freeze_heap("bench client connected")  # its own full collections would add to latency
        lag_before = await _loop_lag_buckets(observer_client)
        own_lag = LoopLagProbe(interval_s=0.05, window_s=3600)  # this process reads every socket
        await own_lag.start()
        started = time.perf_counter()
        with rss:
            await asyncio.gather(
                *(
                    _run_turns(ws, turns, think_s, t, rng)
                    for ws, t in zip(active_ws, trainees, strict=True)
                )
            )
            await asyncio.sleep(2)  # let the last coach tips and scores arrive
        elapsed = time.perf_counter() - started
        lag = _loop_lag_figures(lag_before, await _loop_lag_buckets(observer_client))
        await own_lag.stop()
        client_lag = own_lag.summary()
        stop.set()
        for task in listeners:
            task.cancel()
        for ws in idle_ws + active_ws + observer_ws:
            with contextlib.suppress(Exception):
                await ws.close()
        for client in (idle_client, active_client, observer_client):
            await client.aclose()
        lat = obs_tally.latencies
        errors = [e for t in trainees for e in t.errors]
        done = sum(t.turns for t in trainees)
        return {
            "bench": "fanout",
            "server_settings": overrides,
            "machine": platform.node(),
            "cpus": psutil.cpu_count(logical=True),
            "idle_connections": len(idle_ws),
            "active_sessions": len(active_ws),
            "observer_connections": len(observer_ws),
            "demo_documents": documents,
            "connect_all_s": round(connect_s, 2),
            "turns": done,
            "turn_errors": len(errors),
            "error_codes": sorted(set(errors)),
            "observer_events": obs_tally.events,
            "idle_events": idle_tally.events,
            "events_per_s": round(obs_tally.events / elapsed, 1),
            "delivery_p50_ms": None if not lat else round(float(np.percentile(lat, 50)) * 1000, 2),
            "delivery_p99_ms": None if not lat else round(float(np.percentile(lat, 99)) * 1000, 2),
            "delivery_p99_ms_by_type": {
                kind: round(float(np.percentile(values, 99)) * 1000, 2)
                for kind, values in sorted(obs_tally.by_type.items())
            },
            "ttft_p50_s": _pct([x for t in trainees for x in t.ttft], 50),
            "rss_start_mb": rss_start,
            "rss_start_file_mb": split_start["file"],
            "rss_start_anon_mb": split_start["anon"],
            "rss_connected_mb": rss_connected,
            "connections_kb_each": round(
                (rss_connected - rss_start) * 1024 / max(1, len(idle_ws + active_ws + observer_ws)),
                1,
            ),
            "rss_peak_mb": rss.peak_mb,
            "rss_end_mb": rss.now_mb(),
            **lag,
            "client_loop_lag_p99_ms": client_lag.p99_ms,
            "client_loop_lag_max_ms": client_lag.max_ms,
            "duration_s": round(elapsed, 1),
        }
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def run_fanout_bench(
    *,
    idle: int,
    active: int,
    observers: int,
    turns: int,
    think_s: float,
    settings: list[str],
    out: Path,
) -> None:
    """Run the fan-out bench, print the figures, write JSON."""
    result = asyncio.run(_fanout(idle, active, observers, turns, think_s, server_env(settings)))
    table = Table(title=f"bench fanout ({result['machine']}, {result['cpus']} CPUs)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key not in ("bench", "machine", "cpus"):
            table.add_row(key, str(value))
    console.print(table)
    out.write_text(json.dumps(result, indent=2))
