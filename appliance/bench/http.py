"""HTTP load generator: a bare keep-alive client on uvloop, in its own process.

The appliance under test runs in one process and the generator in another, so on a
two-core box each gets a core. The client is deliberately minimal (pre-encoded request
bytes, header parse by hand, no pipelining) so that it costs far less per request than
the server and the figures measure the server, not the generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
import numpy as np

from appliance.testing import ServerProcess, add_user

WARMUP_S = 1.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
USERNAME = "bench"


@dataclass(frozen=True)
class Target:
    """Where to send requests and how to authenticate."""

    host: str
    port: int
    netloc: str
    prefix: str
    token: str


class _Tally:
    """Per-run counters shared by all client coroutines of one worker."""

    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.errors = 0


def _request_bytes(target: Target, path: str, auth: bool) -> bytes:
    lines = [f"GET {target.prefix}{path} HTTP/1.1", f"Host: {target.netloc}", "Accept: */*"]
    if auth:
        lines.append(f"Authorization: Bearer {target.token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
    """Send one request, read one full response; return its status (or raise)."""
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ConnectionError("response without Content-Length")
    end = lower.index(b"\r\n", at + 2)
    await reader.readexactly(int(head[at + 17 : end]))
    if b"\r\nconnection: close" in lower:
        raise ConnectionResetError("server closed the connection")
    return status


async def _client(target: Target, req: bytes, start_ns: int, stop_ns: int, tally: _Tally) -> None:
    """One keep-alive connection issuing requests back to back until stop_ns."""
    perf = time.perf_counter_ns
    record = tally.latencies.append
    writer: asyncio.StreamWriter | None = None
    while perf() < stop_ns:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(target.host, target.port)
            t0 = perf()
            status = await _exchange(reader, writer, req)
            t1 = perf()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            if perf() >= start_ns:
                tally.errors += 1
            if writer is not None:
                writer.close()
                writer = None
            await asyncio.sleep(0.01)
            continue
        if t0 >= start_ns:
            record(t1 - t0)
            if not 200 <= status < 300:
                tally.errors += 1
    if writer is not None:
        writer.close()


async def _load(target: Target, req: bytes, clients: int, duration: float) -> dict[str, Any]:
    start_ns = time.perf_counter_ns() + int(WARMUP_S * 1e9)
    stop_ns = start_ns + int(duration * 1e9)
    tally = _Tally()
    await asyncio.gather(*(_client(target, req, start_ns, stop_ns, tally) for _ in range(clients)))
    elapsed = (time.perf_counter_ns() - start_ns) / 1e9
    lat_ms = np.asarray(tally.latencies, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(lat_ms, [50, 90, 99]) if lat_ms.size else (0.0, 0.0, 0.0)
    return {
        "requests": int(lat_ms.size),
        "errors": tally.errors,
        "duration_s": round(elapsed, 3),
        "rps": round(lat_ms.size / elapsed, 1),
        "latency_ms": {
            "p50": round(float(p50), 3),
            "p90": round(float(p90), 3),
            "p99": round(float(p99), 3),
            "max": round(float(lat_ms.max()), 3) if lat_ms.size else 0.0,
        },
    }


def _worker(target: Target, path: str, auth: bool, clients: int, duration: float) -> dict[str, Any]:
    """Entry point of the generator process: run one endpoint on uvloop."""
    import uvloop

    cpu0 = time.process_time()
    result = uvloop.run(_load(target, _request_bytes(target, path, auth), clients, duration))
    result["generator_cpu_pct"] = round(
        100 * (time.process_time() - cpu0) / (duration + WARMUP_S), 1
    )
    return result


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (Linux), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine(clients: int) -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "clients": clients,
    }


@contextlib.contextmanager
def _local_appliance() -> Iterator[tuple[Target, int]]:
    """Start a throwaway appliance with a bench user and token; yield (target, server pid)."""
    tmp = Path(tempfile.mkdtemp(prefix="salesboost-bench-"))
    state = tmp / "state"
    # an access line per request would measure the logger; the limiter still runs, untripped
    server = ServerProcess(
        state,
        log_path=tmp / "server.log",
        SALESBOOST__LOG__ACCESS="false",
        SALESBOOST__AUTH__API_RATE_PER_MINUTE="100000000",
    )
    try:
        try:
            server.start(READY_TIMEOUT_S)
        except RuntimeError as err:
            raise click.ClickException(str(err)) from None
        password = secrets.token_urlsafe(18)
        try:
            add_user(state, USERNAME, "manager", password, env=server.env)
        except RuntimeError as err:
            raise click.ClickException(f"could not create the bench user: {err}") from None
        with httpx.Client(base_url=server.url, timeout=10) as http:
            login = {"username": USERNAME, "password": password}
            http.post("/api/auth/login", json=login).raise_for_status()
            created = http.post("/api/tokens", json={"name": "bench"})
            created.raise_for_status()
            token = str(created.json()["token"])
        assert server.proc is not None
        yield (
            Target("127.0.0.1", server.port, f"127.0.0.1:{server.port}", "", token),
            server.proc.pid,
        )
    finally:
        server.stop(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(tmp, ignore_errors=True)


def _remote(url: str, token: str | None) -> Target:
    if not token:
        raise click.UsageError("--url needs --token (an API token for /api/auth/me)")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise click.UsageError("--url must be a plain http://host[:port] address")
    return Target(parts.hostname, parts.port or 80, parts.netloc, parts.path.rstrip("/"), token)


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    m = report["machine"]
    table = Table(
        title=f"{m['clients']} clients · {m['cpu_model']} · {m['logical_cores']} cores"
        f" · Python {m['python']}",
        caption="latency in ms; CPU % of one core",
    )
    for col in ("endpoint", "reqs", "errs", "rps", "p50", "p90", "p99", "max", "gen%", "srv%"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for name, r in report["endpoints"].items():
        lat = r["latency_ms"]
        srv = r.get("server_cpu_pct")
        table.add_row(
            name,
            str(r["requests"]),
            str(r["errors"]),
            f"{r['rps']:.0f}",
            *(f"{lat[k]:.1f}" for k in ("p50", "p90", "p99", "max")),
            f"{r['generator_cpu_pct']:.0f}",
            "-" if srv is None else f"{srv:.0f}",
        )
    Console().print(table)


def run_http_bench(
    *, clients: int, duration: float, url: str | None, token: str | None, out: Path
) -> dict[str, Any]:
    """Measure requests/s and latency of /healthz and /api/auth/me; print and write JSON."""
    if clients < 1 or duration <= 0:
        raise click.UsageError("--clients and --duration must be positive")
    endpoints = [("/healthz", False), ("/api/auth/me", True)]
    with contextlib.ExitStack() as stack:
        server_pid: int | None = None
        if url is None:
            target, server_pid = stack.enter_context(_local_appliance())
        else:
            target = _remote(url, token)
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=get_context("spawn")))
        results: dict[str, Any] = {}
        for path, auth in endpoints:
            cpu0 = _cpu_seconds(server_pid)
            result = pool.submit(_worker, target, path, auth, clients, duration).result()
            cpu1 = _cpu_seconds(server_pid)
            result["server_cpu_pct"] = (
                None
                if cpu0 is None or cpu1 is None
                else round(100 * (cpu1 - cpu0) / (duration + WARMUP_S), 1)
            )
            results[path] = result
    report = {"target": url or "local", "machine": _machine(clients), "endpoints": results}
    _print(report)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
