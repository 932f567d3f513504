"""`salesboost bench search`: embedding chunks/s (torch vs ONNX) and hybrid search latency.

Embedding: the same generated child-sized chunks through FlagEmbedding (torch) and the
ONNX Runtime export, each with an empty cache, in one run; chunks/s and the ratio.

Search: a synthetic corpus of ``rows`` child chunks in a real LanceDB store. To keep the
bench in minutes, ``distinct`` texts are embedded with the real model and every row reuses
one of them with perturbation: a few words swapped and a unique product code added to the
text (so full-text sees distinct rows), and small Gaussian noise added to the vector, then
renormalised (so dense neighbours are distinct). Queries are real embeddings of fresh
sentences and exact product codes. Latency is the in-process hybrid search (query
embedding, dense top-k, n-gram full-text top-k, RRF, dedupe by parent, parent fetch): the
service's SQLite liveness check and HTTP are excluded. Flat scan, the ANN index (built by
the store's background indexer path), and the ANN index with full text run in a second
thread while the query is embedded and the vectors searched, are measured side by side.
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config import KnowledgeConfig, Settings
from appliance.knowledge.embedding import Backend, Embedder
from appliance.knowledge.search import Retriever, best_per_parent
from appliance.knowledge.store import Store, child_id, parent_id

WORDS = [
    "account",
    "annual",
    "balance",
    "benefit",
    "branch",
    "card",
    "cashback",
    "charge",
    "claim",
    "cover",
    "credit",
    "currency",
    "customer",
    "deposit",
    "dispute",
    "exchange",
    "fee",
    "fraud",
    "insurance",
    "interest",
    "limit",
    "loan",
    "lounge",
    "luggage",
    "mobile",
    "mortgage",
    "online",
    "overdraft",
    "payment",
    "points",
    "policy",
    "premium",
    "rate",
    "refund",
    "reward",
    "savings",
    "security",
    "statement",
    "transfer",
    "travel",
    "upgrade",
    "warranty",
    "withdrawal",
]
CHILDREN_PER_PARENT = 4


def sentences(n: int, words: int, seed: int) -> list[str]:
    """n generated sentences of about ``words`` words (roughly 1.3 tokens per word)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(1000, 9999)}-{rng.choice(letters)}"


def bench_embedding(models_dir: Path, texts: list[str], batch: int) -> dict[str, Any]:
    """chunks/s of each backend on the same texts, each with its own empty cache."""
    out: dict[str, Any] = {"chunks": len(texts)}
    config = KnowledgeConfig(embedding_batch_size=batch, embedding_device="cpu")
    for backend in ("flagembedding", "onnx"):
        chosen: Backend = backend
        with tempfile.TemporaryDirectory() as state:
            embedder = Embedder(config, models_dir, Path(state), backend=chosen)
            embedder.embed_passages(sentences(batch, 8, seed=99))  # load + warm up
            started = time.perf_counter()
            embedder.embed_passages(texts)
            elapsed = time.perf_counter() - started
            tokens = sum(embedder.count_tokens(t) for t in texts[:200]) / min(200, len(texts))
            embedder.close()
        out[backend] = {
            "seconds": round(elapsed, 2),
            "chunks_per_s": round(len(texts) / elapsed, 1),
        }
        out["mean_tokens"] = round(tokens, 1)
    out["onnx_vs_torch"] = round(
        out["onnx"]["chunks_per_s"] / out["flagembedding"]["chunks_per_s"], 2
    )
    return out


def build_corpus(store: Store, embedder: Embedder, rows: int, distinct: int) -> dict[str, Any]:
    """Write ``rows`` perturbed children (and their parents) into the store."""
    rng = random.Random(7)
    nprng = np.random.default_rng(7)
    base_texts = sentences(distinct, 60, seed=1)
    started = time.perf_counter()
    base_vectors, _ = embedder.embed_passages(base_texts)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    per_doc = 1000
    docs = (rows + per_doc - 1) // per_doc
    for doc in range(docs):
        count = min(per_doc, rows - doc * per_doc)
        pick = nprng.integers(0, distinct, size=count)
        noise = nprng.normal(0, 0.02, size=(count, base_vectors.shape[1])).astype(np.float32)
        vectors = base_vectors[pick] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        children, parents = [], []
        for n in range(count):
            words = base_texts[pick[n]].split()
            for _ in range(3):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            parent = n // CHILDREN_PER_PARENT
            children.append(
                {
                    "id": child_id(doc + 1, 1, n),
                    "document_id": doc + 1,
                    "version": 1,
                    "parent_index": parent,
                    "child_index": n,
                    "page": -1,
                    "section": f"Section {parent}",
                    "collection": f"c{doc % 5}",
                    "tags": ",bench,",
                    "text": " ".join(words) + f" Product code {_code(rng)}.",
                    "sparse": "",
                    "vector": vectors[n].tolist(),
                }
            )
        for p in range((count + CHILDREN_PER_PARENT - 1) // CHILDREN_PER_PARENT):
            members = children[p * CHILDREN_PER_PARENT : (p + 1) * CHILDREN_PER_PARENT]
            parents.append(
                {
                    "id": parent_id(doc + 1, 1, p),
                    "document_id": doc + 1,
                    "version": 1,
                    "parent_index": p,
                    "pages": "[]",
                    "section": f"Section {p}",
                    "text": "\n".join(c["text"] for c in members),
                }
            )
        store.write_document(doc + 1, children, parents)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    store.optimize()
    return {
        "rows": rows,
        "distinct_texts": distinct,
        "embed_distinct_s": round(embed_s, 1),
        "write_s": round(write_s, 1),
        "optimize_s": round(time.perf_counter() - started, 1),
    }


def _latencies(retriever: Retriever, store: Store, queries: list[str], k: int) -> dict[str, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        picked = best_per_parent(retriever.candidates(query, mode="hybrid"))[:k]
        store.parents_of([c.parent_key for c in picked])
        times.append((time.perf_counter() - started) * 1000)
    arr = np.asarray(times)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "mean_ms": round(float(arr.mean()), 1),
    }


def bench_search(
    models_dir: Path, rows: int, distinct: int, queries: int, backend: str
) -> dict[str, Any]:
    """Hybrid search latency at ``rows`` children, flat scan vs ANN index."""
    chosen: Backend = backend  # type: ignore[assignment]
    config = KnowledgeConfig(embedding_backend=chosen, embedding_device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        embedder = Embedder(config, models_dir, state)
        store = Store(
            state / "lancedb",
            model=embedder.name,
            dim=embedder.dim,
            vector_index_min_rows=10**12,  # built explicitly below, timed
        )
        corpus = build_corpus(store, embedder, rows, distinct)
        retriever = Retriever(config, embedder, store)
        rng = random.Random(11)
        texts = sentences(queries // 2, 10, seed=5)
        codes = [
            r["text"].rsplit("code ", 1)[1].rstrip(".")
            for r in store.children.search()
            .select(["text"])
            .limit(queries - len(texts))
            .to_arrow()
            .to_pylist()
        ]
        mixed = texts + codes
        rng.shuffle(mixed)
        for q in mixed[:5]:  # warm caches
            retriever.candidates(q)
        retriever.parallel = False
        flat = _latencies(retriever, store, mixed, config.search_k)
        store.vector_index_min_rows = 1
        started = time.perf_counter()
        built = store.build_vector_index_if_due()
        index_s = time.perf_counter() - started
        store.optimize()
        for q in mixed[:5]:
            retriever.candidates(q)
        retriever.parallel = False
        ann = _latencies(retriever, store, mixed, config.search_k)
        retriever.parallel = True
        ann_parallel = _latencies(retriever, store, mixed, config.search_k)
        store.close()
        embedder.close()
    return {
        "corpus": corpus,
        "queries": len(mixed),
        "backend": backend,
        "flat": flat,
        "ann": ann | {"index_build_s": round(index_s, 1), "built": built},
        "ann_parallel": ann_parallel,
        "ann_vs_flat_p50": round(flat["p50_ms"] / max(ann["p50_ms"], 0.01), 2),
        "parallel_vs_sequential_p50": round(ann["p50_ms"] / max(ann_parallel["p50_ms"], 0.01), 2),
    }


def run_search_bench(
    *,
    models_dir: Path,
    rows: int,
    distinct: int,
    queries: int,
    embed_chunks: int,
    embed_words: int,
    backend: str,
    out: Path,
) -> dict[str, Any]:
    """Run both parts, print a table, write JSON."""
    from rich.console import Console
    from rich.table import Table

    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "embedding": bench_embedding(
            models_dir,
            sentences(embed_chunks, embed_words, seed=3),
            batch=Settings().knowledge.embedding_batch_size,
        ),
        "search": bench_search(models_dir, rows, distinct, queries, backend),
    }
    out.write_text(json.dumps(result, indent=2))
    console = Console()
    emb = result["embedding"]
    table = Table(title=f"embedding ({emb['chunks']} chunks, ~{emb['mean_tokens']} tokens each)")
    for col in ("backend", "chunks/s", "seconds"):
        table.add_column(col)
    for name in ("flagembedding", "onnx"):
        table.add_row(name, str(emb[name]["chunks_per_s"]), str(emb[name]["seconds"]))
    table.add_row("onnx / torch", f"{emb['onnx_vs_torch']}x", "")
    console.print(table)
    search = result["search"]
    table = Table(
        title=f"hybrid search, {search['corpus']['rows']} children ({search['queries']} queries)"
    )
    for col in ("vector search", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(col)
    for name in ("flat", "ann", "ann_parallel"):
        s = search[name]
        table.add_row(name, str(s["p50_ms"]), str(s["p99_ms"]), str(s["mean_ms"]))
    console.print(table)
    console.print(
        f"corpus: {search['corpus']}; ANN index built in {search['ann']['index_build_s']} s"
    )
    console.print(f"written to {out}")
    return result
