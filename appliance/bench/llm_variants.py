"""Compare GGUF variants of the chat model: decode-step throughput and greedy agreement.

``python -m appliance.bench.llm_variants REFERENCE.gguf OTHER.gguf [...]`` (under the CPU lock):

- Throughput, one process, models interleaved (so the shared box's drift hits all alike):
  the median time of one :meth:`LlamaEngine.step` (llama_decode plus greedy sampling) with 1
  and with 16 concurrent streams, 3 rounds; tokens/s and the 16/1 ratio.
- Greedy agreement with the reference on the bench's 16 stream prompts (48 tokens each, one
  stream at a time): streams identical, tokens before the first divergence, and the
  teacher-forced argmax agreement (each step fed the reference's token, so one flip does not
  cascade). As a yardstick, the reference itself teacher-forced in one 16-row batch: the
  flips that llama.cpp's batch-shape rounding alone causes.

``--derive-q8 OUT.gguf`` first writes the REFERENCE requantized to Q8_0 (every quantized
tensor; llama.cpp's quantizer with ``allow_requantize``) and adds it to the comparison.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import llama_cpp
import msgspec

from appliance.config import LLMConfig
from appliance.llm.engine import Job, LlamaEngine

TOKENS = 48
STREAMS = 16


def derive_q8(src: Path, dst: Path) -> None:
    """Requantize every quantized tensor of ``src`` to Q8_0 (same-type tensors are copied)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) != 0:
        raise SystemExit(f"quantizing {src} failed")


def _prompts(engine: LlamaEngine) -> list[list[int]]:
    from appliance.bench.llm import _stream_prompts
    from appliance.llm.prompts.render import TranscriptFormat, build_prompt

    out = []
    for messages in _stream_prompts(STREAMS):
        prompt = build_prompt(
            TranscriptFormat(), engine.tokenize, messages, reply_name="Customer", budget=1024
        )
        out.append(prompt.tokens)
    return out


def _reset(engine: LlamaEngine, jobs: list[Job]) -> None:
    for job in jobs:
        engine.release(job)
    for slot in engine.slots:
        engine._forget(slot)


def step_ms(engine: LlamaEngine, streams: int, steps: int = 40) -> float:
    """Median seconds of one decode step with ``streams`` generating sequences."""
    jobs = []
    for i in range(streams):
        text = f"The customer walks into the dealership and says: I want a family car, no. {i}."
        job = Job(prompt=engine.tokenize(text), stops=[], max_tokens=10**6, reuse_kv=False)
        engine.acquire(job)
        jobs.append(job)
    while any(not j.generating for j in jobs):
        engine.step(jobs)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        engine.step(jobs)
        times.append(time.perf_counter() - t)
    _reset(engine, jobs)
    return statistics.median(times)


def greedy(
    engine: LlamaEngine, prompts: list[list[int]], forced: list[list[int]] | None, together: bool
) -> list[list[int]]:
    """Greedy tokens per prompt; with ``forced`` each step is fed the forced token instead."""
    groups = [list(range(len(prompts)))] if together else [[i] for i in range(len(prompts))]
    out: list[list[int]] = [[] for _ in prompts]
    for group in groups:
        jobs = {
            i: Job(prompt=prompts[i], stops=[], max_tokens=10**6, reuse_kv=False) for i in group
        }
        for job in jobs.values():
            engine.acquire(job)
        owner = {id(job): i for i, job in jobs.items()}
        while min(len(out[i]) for i in group) < TOKENS:
            for job, token in engine.step(list(jobs.values())):
                i = owner[id(job)]
                out[i].append(token)
                k = len(out[i])
                if k >= TOKENS:
                    job.todo = []
                elif forced is not None:
                    job.todo = [forced[i][k - 1]]
        _reset(engine, list(jobs.values()))
    return out


def main(argv: list[str]) -> dict[str, object]:
    """Run the comparison; print it and return it."""
    paths = [Path(a) for a in argv if not a.startswith("--")]
    if "--derive-q8" in argv:
        dst = Path(argv[argv.index("--derive-q8") + 1])
        paths = [p for p in paths if p != dst]
        derive_q8(paths[0], dst)
        paths.append(dst)
    config = msgspec.convert({"context_tokens": 8192}, LLMConfig)  # 512 tokens a stream
    engines = {p: LlamaEngine(p, config) for p in paths}
    for engine in engines.values():
        engine.load()
    ref = engines[paths[0]]
    timing: dict[tuple[Path, int], list[float]] = {(p, n): [] for p in paths for n in (1, STREAMS)}
    for _ in range(3):
        for n in (1, STREAMS):
            for p, engine in engines.items():
                timing[(p, n)].append(step_ms(engine, n))
    prompts = _prompts(ref)
    reference = greedy(ref, prompts, None, together=False)
    total = STREAMS * TOKENS
    report: dict[str, object] = {}
    for p, engine in engines.items():
        one = statistics.median(timing[(p, 1)])
        many = statistics.median(timing[(p, STREAMS)])
        row: dict[str, object] = {
            "size_mb": round(p.stat().st_size / 1e6, 1),
            "tok_s_1": round(1 / one, 1),
            f"tok_s_{STREAMS}": round(STREAMS / many, 1),
            "ratio": round(STREAMS * one / many, 2),
        }
        if p == paths[0]:
            batched = greedy(engine, prompts, reference, together=True)
            row["self_16row_teacher_forced"] = sum(
                a == b
                for x, y in zip(reference, batched, strict=True)
                for a, b in zip(x, y, strict=True)
            )
        else:
            free = greedy(engine, prompts, None, together=False)
            forced = greedy(engine, prompts, reference, together=False)
            row["identical_streams"] = sum(x == y for x, y in zip(reference, free, strict=True))
            row["tokens_before_divergence"] = sum(
                next((i for i, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), TOKENS)
                for x, y in zip(reference, free, strict=True)
            )
            row["teacher_forced_agreement"] = sum(
                a == b
                for x, y in zip(reference, forced, strict=True)
                for a, b in zip(x, y, strict=True)
            )
        row["of_tokens"] = total
        report[p.name] = row
        print(p.name, json.dumps(row), flush=True)
    for engine in engines.values():
        engine.close()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
