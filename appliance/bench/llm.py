"""`salesboost bench llm`: TTFT with and without KV reuse, batched decode scaling, reference.

All in one run, on the same prompts, in this process:

(a) TTFT at turn 10 of a session (the long car-dealership prompt, ~1,000 tokens): the
    session's previous turns are generated through the engine with its session key, then
    turn 10 is timed with KV reuse and again as a cold prefill (``reuse_kv=False``).
(b) Aggregate decode tokens/s with 1, 4, 8 and 16 concurrent streams: the steady-state
    window in which every stream is generating (after the last prefill, before the first
    stream ends), counted from per-token timestamps; ratios to one stream.
(c) The reference: llama-cpp-python's high-level ``Llama.create_completion`` on the same
    prompts (its own single-sequence prefix cache; one stream at a time).
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import msgspec

from appliance.config import LLMConfig
from appliance.llm.engine import Job
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.llm.samples import PERSONAS, conversation, long_conversation

STREAM_TOKENS = 96


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


class _TimedJob(Job):
    """A job that notes when each token arrives (for the decode window)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token_times: list[float] = []

    def accept(self, piece: bytes, eog: bool) -> bool:
        self.token_times.append(time.monotonic())
        return super().accept(piece, False)  # ignore EOS: a fixed number of tokens


@dataclass
class Report:
    """Everything one run measured."""

    machine: dict[str, Any]
    config: dict[str, Any]
    ttft: dict[str, Any] = field(default_factory=dict)
    decode: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)


async def _sessions_to_turn(
    backend: LlamaCppBackend, sessions: int, turn: int
) -> list[tuple[str, list[str]]]:
    """Play ``sessions`` sessions up to turn ``turn - 1``; returns their keys and replies."""
    out = []
    for s in range(sessions):
        key = f"bench-{s}"
        replies: list[str] = []
        for t in range(1, turn):
            req = long_conversation(t, replies, session_key=key, max_tokens=24)
            req = msgspec.structs.replace(
                req, messages=[*req.messages[:1], *_vary(req.messages[1:], s)]
            )
            c = await backend.generate(req)
            replies.append(c.text or "I see.")
        out.append((key, replies))
    return out


def _vary(messages: list[Any], s: int) -> list[Any]:
    # sessions differ from their first line, so no session borrows another's prefix
    if not messages:
        return messages
    first = messages[0]
    return [msgspec.structs.replace(first, content=f"(Session {s}) {first.content}"), *messages[1:]]


async def bench_ttft(backend: LlamaCppBackend, sessions: int, turns: int) -> dict[str, Any]:
    """(a) TTFT at turn 10..10+turns-1 with reuse vs cold."""
    played = await _sessions_to_turn(backend, sessions, 10)
    reuse: list[float] = []
    cold: list[float] = []
    prompt_tokens: list[int] = []
    for i in range(turns):
        for s, (key, replies) in enumerate(played):
            req = long_conversation(10 + i, replies, session_key=key, max_tokens=24)
            req = msgspec.structs.replace(
                req, messages=[*req.messages[:1], *_vary(req.messages[1:], s)]
            )
            warm = await backend.generate(req)
            reuse.append(warm.ttft_s)
            prompt_tokens.append(warm.prompt_tokens)
            c = await backend.generate(msgspec.structs.replace(req, reuse_kv=False, session_key=""))
            cold.append(c.ttft_s)
            replies.append(warm.text or "I see.")
    return {
        "samples": len(reuse),
        "prompt_tokens_mean": round(statistics.mean(prompt_tokens)),
        "reuse_p50_ms": 1000 * _pct(reuse, 0.5),
        "reuse_p95_ms": 1000 * _pct(reuse, 0.95),
        "cold_p50_ms": 1000 * _pct(cold, 0.5),
        "cold_p95_ms": 1000 * _pct(cold, 0.95),
        "speedup_p50": _pct(cold, 0.5) / max(_pct(reuse, 0.5), 1e-9),
    }


def _stream_prompts(n: int) -> list[list[Any]]:
    """Short, distinct prompts (a persona's opening line, numbered) so prefill is brief."""
    names = list(PERSONAS)
    out = []
    for i in range(n):
        messages = conversation(names[i % len(names)], 1).messages
        messages[-1] = msgspec.structs.replace(
            messages[-1], content=f"({i + 1}) {messages[-1].content}"
        )
        out.append(messages)
    return out


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def bench_decode(backend: LlamaCppBackend, streams: int) -> dict[str, Any]:
    """(b) Aggregate decode tokens/s with ``streams`` concurrent sequences."""
    loop = asyncio.get_running_loop()
    jobs: list[_TimedJob] = []
    done: list[asyncio.Future[None]] = []
    for i, messages in enumerate(_stream_prompts(streams)):
        req = conversation("cars", 1)
        req = msgspec.structs.replace(req, messages=messages)
        prompt = backend.prompt(req)
        fut: asyncio.Future[None] = loop.create_future()

        def emit(item: Any, fut: asyncio.Future[None] = fut) -> None:
            from appliance.llm.base import Completion

            if isinstance(item, Completion | BaseException):
                loop.call_soon_threadsafe(_resolve, fut)

        job = _TimedJob(
            prompt=prompt.tokens,
            stops=[],
            max_tokens=STREAM_TOKENS,
            session_key=f"decode-{streams}-{i}",
            reuse_kv=False,
            emit=emit,
        )
        jobs.append(job)
        done.append(fut)
    started = time.monotonic()
    for job in jobs:
        backend.scheduler.submit(job)
    await asyncio.gather(*done)
    wall = time.monotonic() - started
    t0 = max(j.token_times[0] for j in jobs)
    t1 = min(j.token_times[-1] for j in jobs)
    window = sum(1 for j in jobs for t in j.token_times[1:] if t0 < t <= t1)
    rate = window / (t1 - t0) if t1 > t0 else 0.0
    total = sum(len(j.token_times) for j in jobs)
    return {"streams": streams, "decode_tok_s": rate, "total_tokens": total, "wall_s": wall}


def bench_reference(model: Path, config: LLMConfig, prompts: list[str]) -> dict[str, Any]:
    """(c) llama-cpp-python's high-level API on the same prompts."""
    from llama_cpp import Llama

    from appliance.llm.engine import physical_cores

    llm = Llama(
        model_path=str(model),
        n_ctx=2048,
        n_batch=config.batch_tokens,
        n_threads=config.threads or physical_cores(),
        verbose=False,
    )
    ttft_warm: list[float] = []
    ttft_cold: list[float] = []
    for i, prompt in enumerate(prompts):
        for bucket in (ttft_warm, ttft_cold):
            if bucket is ttft_cold or i == 0:
                llm.reset()  # type: ignore[no-untyped-call]  # forget the cached prefix: a cold prefill
            started = time.monotonic()
            for _ in llm.create_completion(prompt, max_tokens=1, temperature=0.0, stream=True):
                bucket.append(time.monotonic() - started)
                break
    started = time.monotonic()
    out = llm.create_completion(
        prompts[0][:400], max_tokens=STREAM_TOKENS, temperature=0.0, stop=[]
    )
    elapsed = time.monotonic() - started
    tokens = out["usage"]["completion_tokens"]  # type: ignore[index]
    llm.close()
    return {
        "ttft_prefix_cache_p50_ms": 1000 * _pct(ttft_warm[1:], 0.5),
        "ttft_cold_p50_ms": 1000 * _pct(ttft_cold, 0.5),
        "single_stream_tok_s_incl_prefill": tokens / elapsed,
    }


async def _run(model: Path, config: LLMConfig, sessions: int, turns: int, repeat: int) -> Report:
    from appliance.llm.engine import physical_cores

    report = Report(
        machine={
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "physical_cores": physical_cores(),
        },
        config=msgspec.to_builtins(config),
    )
    backend = LlamaCppBackend(config, model)
    async with backend:
        report.machine["gpu_offload"] = backend.engine.gpu_offload
        report.ttft = await bench_ttft(backend, sessions, turns)
        base = 0.0
        for streams in (1, 4, 8, 16):
            if streams > config.max_sequences:
                break
            runs = [await bench_decode(backend, streams) for _ in range(repeat)]
            row = sorted(runs, key=lambda r: r["decode_tok_s"])[len(runs) // 2]  # the median
            row["runs_tok_s"] = [round(r["decode_tok_s"], 1) for r in runs]
            base = base or row["decode_tok_s"]
            row["ratio"] = row["decode_tok_s"] / base if base else 0.0
            report.decode[str(streams)] = row
        prompts = []
        replies: list[str] = ["That could work, but I need to check the price first."] * 12
        for t in range(10, 10 + max(2, turns)):
            prompts.append(backend.prompt(long_conversation(t, replies)).text)
    report.reference = await asyncio.to_thread(bench_reference, model, config, prompts)
    return report


def run_llm_bench(
    *, model: Path, config: LLMConfig, sessions: int, turns: int, repeat: int, out: Path
) -> dict[str, Any]:
    """Run the whole bench, print a table, write JSON."""
    report = asyncio.run(_run(model, config, sessions, turns, repeat))
    data: dict[str, Any] = msgspec.to_builtins(report.__dict__)
    t, r = report.ttft, report.reference
    click.echo(f"model {model.name}; exact_reuse={config.exact_reuse}; {report.machine}")
    click.echo(
        f"(a) TTFT turn 10+ ({t['samples']} samples, ~{t['prompt_tokens_mean']} prompt tokens): "
        f"reuse p50 {t['reuse_p50_ms']:.0f} ms p95 {t['reuse_p95_ms']:.0f} ms | "
        f"cold p50 {t['cold_p50_ms']:.0f} ms p95 {t['cold_p95_ms']:.0f} ms | "
        f"{t['speedup_p50']:.1f}x"
    )
    for streams, row in report.decode.items():
        click.echo(
            f"(b) {streams:>2} streams: {row['decode_tok_s']:.1f} tok/s aggregate decode "
            f"({row['ratio']:.2f}x one stream; runs {row['runs_tok_s']})"
        )
    click.echo(
        f"(c) high-level API: TTFT with its prefix cache p50 {r['ttft_prefix_cache_p50_ms']:.0f} ms,"
        f" cold p50 {r['ttft_cold_p50_ms']:.0f} ms; one stream "
        f"{r['single_stream_tok_s_incl_prefill']:.1f} tok/s (incl. prefill)"
    )
    out.write_text(json.dumps(data, indent=2) + "\n")
    return data
