"""`salesboost bench intent`: held-out accuracy and per-call latency of each feature variant.

Each variant is trained in this run from ``intent_train.jsonl`` (the stored model is not
touched) and scored on ``intent_heldout.jsonl``, a separately written set of other phrasings.
A call is :meth:`LinearIntentClassifier.classify` with no stage and no history (so the context
rules that need them stay off; the noise and low-confidence rules apply). Latency: every
held-out text classified ``repeat`` times after one warm-up pass, one call at a time.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config import Settings
from appliance.practice.agents.intent import (
    HELDOUT_FILE,
    TRAIN_FILE,
    Embed,
    Example,
    Features,
    LinearIntentClassifier,
    embedding_function,
    load_examples,
    train,
)


def _accuracy(pairs: list[tuple[Example, str]]) -> float:
    return round(sum(e.label == got for e, got in pairs) / max(len(pairs), 1), 4)


def score(
    classifier: LinearIntentClassifier, heldout: list[Example], repeat: int
) -> dict[str, Any]:
    """Accuracy overall / per language / per label, confusions, and p50/p95/mean ms per call."""
    pairs = [(e, classifier.classify(e.text).label) for e in heldout]
    by_lang: dict[str, list[tuple[Example, str]]] = defaultdict(list)
    by_label: dict[str, list[tuple[Example, str]]] = defaultdict(list)
    for e, got in pairs:
        by_lang[e.lang].append((e, got))
        by_label[e.label].append((e, got))
    times: list[float] = []
    for _ in range(repeat):
        for e in heldout:
            started = time.perf_counter()
            classifier.classify(e.text)
            times.append((time.perf_counter() - started) * 1000)
    ms = np.asarray(times)
    return {
        "accuracy": _accuracy(pairs),
        "per_language": {k: _accuracy(v) for k, v in sorted(by_lang.items())},
        "per_label": {k: _accuracy(v) for k, v in sorted(by_label.items())},
        "errors": [
            {"text": e.text, "lang": e.lang, "expected": e.label, "got": got}
            for e, got in pairs
            if got != e.label
        ],
        "calls": len(times),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def bench_variant(
    settings: Settings, features: Features, repeat: int, embed: Embed | None
) -> dict[str, Any]:
    """Train one variant in memory and score it on the held-out set."""
    examples = load_examples(TRAIN_FILE)
    started = time.perf_counter()
    model = train(examples, features=features, embed=embed)
    train_s = time.perf_counter() - started
    classifier = LinearIntentClassifier(
        model, min_confidence=settings.intent.min_confidence, embed=embed
    )
    heldout = load_examples(HELDOUT_FILE)
    for e in heldout:  # warm-up: first-call allocations, the ONNX session
        classifier.classify(e.text)
    result = score(classifier, heldout, repeat)
    result["train_s"] = round(train_s, 2)
    result["train_examples"] = len(examples)
    result["heldout_examples"] = len(heldout)
    return result


def run_intent_bench(
    settings: Settings, *, variants: list[str], repeat: int, out: Path
) -> dict[str, Any]:
    """Run every variant, print a table, write JSON."""
    from rich.console import Console
    from rich.table import Table

    embed: Embed | None = None
    results: dict[str, Any] = {}
    for name in variants:
        features: Features = "chars+embedding" if name == "chars+embedding" else "chars"
        if features == "chars+embedding" and embed is None:
            embed = embedding_function(settings)
        results[name] = bench_variant(settings, features, repeat, embed)
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "configured": settings.intent.features,
        "min_confidence": settings.intent.min_confidence,
        "variants": results,
    }
    if "chars" in results and "chars+embedding" in results:
        a, b = results["chars"], results["chars+embedding"]
        result["embedding_vs_chars"] = {
            "accuracy_delta": round(b["accuracy"] - a["accuracy"], 4),
            "p50_ratio": round(b["p50_ms"] / max(a["p50_ms"], 1e-9), 1),
        }
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    console = Console()
    langs = sorted({lang for r in results.values() for lang in r["per_language"]})
    table = Table(title=f"intent classifier, held-out set ({result['machine']})")
    for col in ("variant", "accuracy", *langs, "p50 ms", "p95 ms", "train s"):
        table.add_column(col)
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['accuracy']:.3f}",
            *(f"{r['per_language'].get(lang, 0):.3f}" for lang in langs),
            str(r["p50_ms"]),
            str(r["p95_ms"]),
            str(r["train_s"]),
        )
    console.print(table)
    labels = Table(title="accuracy per label")
    labels.add_column("label")
    for name in results:
        labels.add_column(name)
    first = next(iter(results.values()))
    for label in first["per_label"]:
        labels.add_row(label, *(f"{r['per_label'].get(label, 0):.2f}" for r in results.values()))
    console.print(labels)
    if "embedding_vs_chars" in result:
        console.print(f"chars+embedding vs chars: {result['embedding_vs_chars']}")
    console.print(f"written to {out}")
    return result
