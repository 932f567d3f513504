"""`salesboost bench search`: embedding chunks/s (torch vs ONNX) and hybrid search latency.

Embedding: the same generated child-sized chunks through FlagEmbedding (torch), the old
ONNX path (plain export, 64 texts a batch), the plain export with length-bucketed batches,
and the new path (fused export, length-bucketed batches), each with an empty cache, in one
run; chunks/s, the ratios, query p50 and the cosine between old and new vectors.

Search: a synthetic corpus of ``rows`` child chunks in a real LanceDB store. To keep the
bench in minutes, ``distinct`` texts are embedded with the real model and every row reuses
one of them with perturbation: a few words swapped and a unique product code added to the
text (so full-text sees distinct rows), and small Gaussian noise added to the vector, then
renormalised (so dense neighbours are distinct). Queries are real embeddings of fresh
sentences and exact product codes. Latency is the in-process hybrid search (query
embedding, dense top-k, n-gram full-text top-k, RRF, dedupe by parent, parent fetch): the
service's SQLite liveness check and HTTP are excluded. Flat scan, the ANN index (built by
the store's background indexer path) with the dense and full-text queries one after the
other, and the same with both queries run together once the query is embedded (the path the
service takes), are measured side by side.
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

import msgspec
import numpy as np

from appliance.config import KnowledgeConfig, Settings
from appliance.knowledge.embedding import Backend, Embedder
from appliance.knowledge.search import Retriever, best_per_parent, rrf
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


STOP_WORDS = [  # the most frequent words of real text; the word index drops them
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "for",
    "on",
    "with",
    "your",
    "you",
    "are",
    "be",
    "by",
    "or",
    "at",
    "as",
    "this",
    "it",
    "from",
    "an",
    "if",
    "can",
    "will",
    "not",
]
CORPORA = ("zipf", "degenerate")


def _generated_words(n: int, seed: int) -> list[str]:
    """n distinct pronounceable made-up words (product names, jargon, rare terms)."""
    rng = random.Random(seed)
    onsets, vowels = "bcdfghjklmnprstvwz", "aeiou"
    out: dict[str, None] = {}
    while len(out) < n:
        syllables = rng.randint(2, 4)
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
        if rng.random() < 0.3:
            word += rng.choice("nrst")
        out.setdefault(word, None)
    return list(out)


class Vocabulary:
    """Words and their sampling weights: the old 43 words uniform, or a Zipf law."""

    def __init__(self, kind: str, size: int = 8000) -> None:
        self.kind = kind
        if kind == "degenerate":
            self.words = list(WORDS)
            self.cum: list[float] | None = None
            return
        # Zipf-Mandelbrot (s=1, q=2.7) over stop words, then domain words, then generated
        # terms: the top words are stop words (~40 % of tokens, as in English), a domain
        # word is in ~20 % of texts, most generated words in well under 1 %.
        self.words = STOP_WORDS + WORDS + _generated_words(size - len(STOP_WORDS) - len(WORDS), 2)
        weights = 1.0 / (np.arange(len(self.words)) + 1 + 2.7)
        self.cum = np.cumsum(weights).tolist()

    def draw(self, rng: random.Random, n: int) -> list[str]:
        """n words drawn from the distribution."""
        if self.cum is None:
            return [rng.choice(self.words) for _ in range(n)]
        return rng.choices(self.words, cum_weights=self.cum, k=n)


def sentences(n: int, words: int, seed: int, vocab: Vocabulary | None = None) -> list[str]:
    """n generated sentences of about ``words`` words (roughly 1.3 tokens per word)."""
    rng = random.Random(seed)
    vocab = vocab or Vocabulary("degenerate")
    return [" ".join(vocab.draw(rng, words)).capitalize() + "." for _ in range(n)]


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(1000, 9999)}-{rng.choice(letters)}"


BUDGET = KnowledgeConfig().embedding_batch_tokens
ONNX_PATHS = {  # name: (fused export, tokens per batch); 0 = 64 texts a batch, as before
    "onnx_old": (False, 0),
    "onnx_plain_budget": (False, BUDGET),
    "onnx_new": (True, BUDGET),
}
ONNX_LABELS = {
    "onnx_old": "old: plain export, 64 texts a batch",
    "onnx_plain_budget": f"plain export, batches of <= {BUDGET} tokens by length",
    "onnx_new": f"new: fused export, batches of <= {BUDGET} tokens by length",
}


def mixed_chunks(n: int, seed: int) -> list[str]:
    """n chunks of mixed lengths (8 to 180 words: headings, short answers, long paragraphs)."""
    rng = random.Random(seed)
    return [sentences(1, rng.choice([8, 20, 40, 75, 120, 180]), seed=seed + i)[0] for i in range(n)]


def _plain_export(models_dir: Path, state: Path) -> Path:
    """The plain (pre-fusion) export: an older install's file if there, else made now."""
    from appliance.knowledge.embedding import (
        export_onnx_in_child,
        onnx_export_name,
        resolve_model,
    )

    spec = resolve_model(models_dir, KnowledgeConfig().embedding_model)
    name = onnx_export_name(spec, fused=False)
    placed = models_dir / "onnx" / name
    return placed if placed.is_file() else export_onnx_in_child(spec, state / name, fused=False)


def _time_passages(
    config: KnowledgeConfig, models_dir: Path, texts: list[str], **kw: Any
) -> tuple[float, np.ndarray, Embedder]:
    """Seconds to embed ``texts`` with an empty cache (after a warm-up), the vectors, and the
    embedder (its cache closed and gone; it still embeds queries)."""
    with tempfile.TemporaryDirectory() as state:
        embedder = Embedder(config, models_dir, Path(state), **kw)
        embedder.embed_passages(sentences(16, 8, seed=99))  # load + warm up
        started = time.perf_counter()
        vectors, _ = embedder.embed_passages(texts)
        elapsed = time.perf_counter() - started
        embedder.close()
    return elapsed, vectors, embedder


def _query_p50_ms(embedder: Embedder, n: int = 60) -> float:
    queries = sentences(n, 8, seed=41)
    for q in queries[:5]:
        embedder.embed_query(q)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        embedder.embed_query(q)
        times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 2)


def bench_embedding(
    models_dir: Path, texts: list[str], batch: int, rounds: int = 3
) -> dict[str, Any]:
    """chunks/s of torch and of the old and new ONNX paths on the same texts (uniform ~85
    tokens, then mixed lengths), each with an empty cache; the ONNX paths interleaved over
    ``rounds`` (median kept: other jobs share the cores); cosine old vs new; query p50."""
    mixed = mixed_chunks(max(len(texts) // 2, 1), seed=500)
    out: dict[str, Any] = {"chunks": len(texts), "mixed_chunks": len(mixed)}
    with tempfile.TemporaryDirectory() as scratch:
        plain = _plain_export(models_dir, Path(scratch))
        torch_config = KnowledgeConfig(embedding_batch_size=batch, embedding_device="cpu")
        elapsed, _, probe = _time_passages(torch_config, models_dir, texts, backend="flagembedding")
        out["flagembedding"] = {
            "seconds": round(elapsed, 2),
            "chunks_per_s": round(len(texts) / elapsed, 1),
        }
        runs: dict[str, dict[str, list[float]]] = {
            n: {"uniform": [], "mixed": []} for n in ONNX_PATHS
        }
        vectors: dict[str, np.ndarray] = {}
        embedders: dict[str, Embedder] = {}
        for _ in range(rounds):
            for name, (fused, budget) in ONNX_PATHS.items():
                config = KnowledgeConfig(
                    embedding_batch_size=batch,
                    embedding_batch_tokens=budget,
                    embedding_device="cpu",
                )
                export = None if fused else plain
                for kind, chunk_texts in (("uniform", texts), ("mixed", mixed)):
                    elapsed, vecs, embedders[name] = _time_passages(
                        config, models_dir, chunk_texts, backend="onnx", onnx_export=export
                    )
                    runs[name][kind].append(len(chunk_texts) / elapsed)
                    vectors[f"{name}/{kind}"] = vecs
        for name in ONNX_PATHS:
            out[name] = {
                "chunks_per_s": round(float(np.median(runs[name]["uniform"])), 1),
                "mixed_chunks_per_s": round(float(np.median(runs[name]["mixed"])), 1),
                "rounds": {k: [round(x, 1) for x in v] for k, v in runs[name].items()},
                "query_p50_ms": _query_p50_ms(embedders[name]),
            }
        cos = [
            float(np.min(np.sum(vectors[f"onnx_old/{k}"] * vectors[f"onnx_new/{k}"], axis=1)))
            for k in ("uniform", "mixed")
        ]
        out["min_cosine_old_vs_new"] = round(min(cos), 7)
        out["mean_tokens"] = round(
            sum(probe.count_tokens(t) for t in texts[:200]) / min(200, len(texts)), 1
        )
        out["mixed_mean_tokens"] = round(sum(probe.count_tokens(t) for t in mixed) / len(mixed), 1)
    new, old = out["onnx_new"], out["onnx_old"]
    out["new_vs_old"] = round(new["chunks_per_s"] / old["chunks_per_s"], 2)
    out["new_vs_old_mixed"] = round(new["mixed_chunks_per_s"] / old["mixed_chunks_per_s"], 2)
    out["new_vs_torch"] = round(new["chunks_per_s"] / out["flagembedding"]["chunks_per_s"], 2)
    return out


def print_embedding(console: Any, emb: dict[str, Any]) -> None:
    """The embedding table: torch, old and new ONNX paths side by side."""
    from rich.table import Table

    table = Table(
        title=f"embedding: {emb['chunks']} chunks of ~{emb['mean_tokens']} tokens, and"
        f" {emb['mixed_chunks']} of mixed length (~{emb['mixed_mean_tokens']} tokens mean);"
        " chunks/s, empty cache, ONNX medians of interleaved rounds"
    )
    for col in ("path", "chunks/s", "mixed chunks/s", "query p50 ms"):
        table.add_column(col)
    table.add_row("FlagEmbedding (torch)", str(emb["flagembedding"]["chunks_per_s"]), "", "")
    for name, label in ONNX_LABELS.items():
        row = emb[name]
        table.add_row(
            label,
            str(row["chunks_per_s"]),
            str(row["mixed_chunks_per_s"]),
            str(row["query_p50_ms"]),
        )
    table.add_row("new / old", f"{emb['new_vs_old']}x", f"{emb['new_vs_old_mixed']}x", "")
    table.add_row("new / torch", f"{emb['new_vs_torch']}x", "", "")
    console.print(table)
    console.print(f"min cosine, old vs new vectors: {emb['min_cosine_old_vs_new']}")


def build_corpus(
    store: Store, embedder: Embedder, rows: int, distinct: int, vocab: Vocabulary
) -> tuple[dict[str, Any], np.ndarray[Any, Any], list[str]]:
    """Write ``rows`` perturbed children (and their parents); also return vectors and ids."""
    rng = random.Random(7)
    nprng = np.random.default_rng(7)
    base_texts = sentences(distinct, 60, seed=1, vocab=vocab)
    started = time.perf_counter()
    base_vectors, _ = embedder.embed_passages(base_texts)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    per_doc = 1000
    docs = (rows + per_doc - 1) // per_doc
    all_vectors = np.empty((rows, base_vectors.shape[1]), dtype=np.float32)
    all_ids: list[str] = []
    swaps = 3 if vocab.kind == "degenerate" else 8
    for doc in range(docs):
        count = min(per_doc, rows - doc * per_doc)
        pick = nprng.integers(0, distinct, size=count)
        noise = nprng.normal(0, 0.02, size=(count, base_vectors.shape[1])).astype(np.float32)
        vectors = base_vectors[pick] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        all_vectors[doc * per_doc : doc * per_doc + count] = vectors
        children, parents = [], []
        for n in range(count):
            words = base_texts[pick[n]].split()
            for new in vocab.draw(rng, swaps):
                words[rng.randrange(len(words))] = new
            parent = n // CHILDREN_PER_PARENT
            all_ids.append(child_id(doc + 1, 1, n))
            children.append(
                {
                    "id": all_ids[-1],
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
    info = {
        "kind": vocab.kind,
        "vocabulary": len(vocab.words),
        "rows": rows,
        "distinct_texts": distinct,
        "embed_distinct_s": round(embed_s, 1),
        "write_s": round(write_s, 1),
        "optimize_s": round(time.perf_counter() - started, 1),
    }
    return info, all_vectors, all_ids


def _pct(times: list[float]) -> dict[str, float]:
    arr = np.asarray(times)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "mean_ms": round(float(arr.mean()), 1),
    }


ParentKey = tuple[int, int, int]


def _run(
    retriever: Retriever, store: Store, queries: list[str], k: int
) -> tuple[dict[str, float], list[list[ParentKey]]]:
    """Timed hybrid searches (candidates, fusion, dedupe, parent fetch) and their top-k parents."""
    times, tops = [], []
    for query in queries:
        started = time.perf_counter()
        picked = best_per_parent(retriever.candidates(query, mode="hybrid"))[:k]
        store.cite([c.row for c in picked])
        times.append((time.perf_counter() - started) * 1000)
        tops.append([c.parent_key for c in picked])
    return _pct(times), tops


def _recall(tops: list[list[ParentKey]], reference: list[list[ParentKey]]) -> float:
    """Mean share of the reference top-k parents that a run also returned."""
    shares = [len(set(t) & set(r)) / len(r) for t, r in zip(tops, reference, strict=True) if r]
    return round(float(np.mean(shares)), 4)


def exact_reference(
    retriever: Retriever,
    store: Store,
    vectors: np.ndarray[Any, Any],
    ids: list[str],
    queries: list[str],
    k: int,
    candidates: int,
) -> list[list[ParentKey]]:
    """Top-k parents of an exact hybrid search: brute-force cosine top-n (numpy) + full text."""
    out = []
    for query in queries:
        vector, _ = retriever.embedder.embed_query(query)
        scores = vectors @ np.asarray(vector, dtype=np.float32)
        top = np.argpartition(-scores, candidates)[:candidates]
        top = top[np.argsort(-scores[top])]
        dense = [_row_of(ids[i]) for i in top]
        lists = {"dense": dense, "fulltext": store.fulltext(query, candidates, None)}
        out.append([c.parent_key for c in best_per_parent(rrf(lists, retriever.config.rrf_k))[:k]])
    return out


def _row_of(cid: str) -> dict[str, Any]:
    """The fields RRF and dedupe need, from a child id ``doc:version:c<index>``."""
    doc, version, child = cid.split(":")
    index = int(child[1:])
    return {
        "id": cid,
        "document_id": int(doc),
        "version": int(version),
        "parent_index": index // CHILDREN_PER_PARENT,
    }


def _stages(
    retriever: Retriever, store: Store, texts: list[str], codes: list[str]
) -> dict[str, Any]:
    """p50 of each stage, run one after the other (the search itself overlaps some)."""
    n = retriever.config.search_candidates
    embed: list[float] = []
    dense: list[float] = []
    ft_text: list[float] = []
    ft_code: list[float] = []
    fetch: list[float] = []
    for query in texts + codes:
        t0 = time.perf_counter()
        vector, _ = retriever.embedder.embed_query(query)
        t1 = time.perf_counter()
        rows = store.dense(vector, n, None)
        t2 = time.perf_counter()
        found = store.fulltext(query, n, None)
        t3 = time.perf_counter()
        lists = {"dense": rows, "fulltext": found}
        picked = best_per_parent(rrf(lists, retriever.config.rrf_k))[: retriever.config.search_k]
        t4 = time.perf_counter()
        store.cite([c.row for c in picked])
        t5 = time.perf_counter()
        embed.append((t1 - t0) * 1000)
        dense.append((t2 - t1) * 1000)
        (ft_code if query in codes else ft_text).append((t3 - t2) * 1000)
        fetch.append((t5 - t4) * 1000)
    return {
        "query_embedding": _pct(embed),
        "dense": _pct(dense),
        "fulltext_sentence": _pct(ft_text),
        "fulltext_code": _pct(ft_code),
        "cite": _pct(fetch),  # parents + the winners' page, section and text
    }


# (candidates per retriever, nprobes) on the configured index kind (IVF_FLAT by default)
SWEEP = [(50, 64), (50, 32), (50, 20), (30, 32), (30, 20), (20, 20), (20, 12)]


def bench_search(
    models_dir: Path,
    rows: int,
    distinct: int,
    queries: int,
    backend: str,
    kind: str,
    served_only: bool = False,
) -> dict[str, Any]:
    """Hybrid search latency and recall at ``rows`` children: flat scan, ANN index, a sweep.

    ``served_only``: the default setting only (no flat scan, old IVF_PQ setting or sweep).
    """
    chosen: Backend = backend  # type: ignore[assignment]
    config = KnowledgeConfig(embedding_backend=chosen, embedding_device="cpu")
    vocab = Vocabulary(kind)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        embedder = Embedder(config, models_dir, state)
        store = Store(
            state / "lancedb",
            model=embedder.name,
            dim=embedder.dim,
            vector_index_min_rows=10**12,  # built explicitly below, timed
            nprobes=config.search_nprobes,
            refine_factor=config.search_refine_factor,
        )
        corpus, vectors, ids = build_corpus(store, embedder, rows, distinct, vocab)
        store.load_row_keys()
        retriever = Retriever(config, embedder, store)
        rng = random.Random(11)
        texts = sentences(queries // 2, 10, seed=5, vocab=vocab)
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
        k = config.search_k
        reference = exact_reference(retriever, store, vectors, ids, mixed, k, 50)
        for q in mixed[:5]:  # warm caches
            retriever.candidates(q)
        baselines: dict[str, Any] = {}
        if not served_only:
            retriever.parallel = False
            flat, flat_tops = _run(retriever, store, mixed, k)
            baselines["flat"] = flat | {"recall": _recall(flat_tops, reference)}
            # the old setting first: IVF_PQ, 50 candidates, nprobes 32, refine_factor 4
            started = time.perf_counter()
            store.build_vector_index("IVF_PQ")
            pq_build_s = time.perf_counter() - started
            store.optimize()
            store.load_row_keys()
            retriever.parallel = True
            store.nprobes, store.refine_factor = 32, 4
            retriever.config = msgspec.structs.replace(config, search_candidates=50)
            for q in mixed[:5]:
                retriever.candidates(q)
            ivf_pq, tops = _run(retriever, store, mixed, k)
            baselines["ivf_pq_old_default"] = ivf_pq | {
                "recall": _recall(tops, reference),
                "index_build_s": round(pq_build_s, 1),
            }
        started = time.perf_counter()
        store.build_vector_index(config.vector_index_type)
        index_s = time.perf_counter() - started
        built = store.has_vector_index()
        store.optimize()
        store.load_row_keys()
        for q in mixed[:5]:
            retriever.candidates(q)
        sweep = []
        for candidates, nprobes in [] if served_only else SWEEP:
            retriever.config = msgspec.structs.replace(config, search_candidates=candidates)
            store.nprobes = nprobes
            unindexed = store.children.index_stats("vector_idx").num_unindexed_rows
            figures, tops = _run(retriever, store, mixed, k)
            sweep.append(
                {"candidates": candidates, "nprobes": nprobes, "unindexed_rows": unindexed}
                | figures
                | {"recall": _recall(tops, reference)}
            )
        retriever.config = config
        store.nprobes, store.refine_factor = config.search_nprobes, config.search_refine_factor
        retriever.parallel = False
        ann, tops = _run(retriever, store, mixed, k)
        ann["recall"] = _recall(tops, reference)
        retriever.parallel = True
        store.load_row_keys()  # as a running server has them (optimize compacted the table)
        ann_parallel, tops = _run(retriever, store, mixed, k)
        ann_parallel["recall"] = _recall(tops, reference)
        store.use_row_keys = False
        no_row_keys, tops = _run(retriever, store, mixed, k)
        no_row_keys["recall"] = _recall(tops, reference)
        store.use_row_keys = True
        ann_parallel_again, tops = _run(retriever, store, mixed, k)
        ann_parallel_again["recall"] = _recall(tops, reference)
        stages = _stages(retriever, store, texts, codes)
        store.close()
        embedder.close()
    return {
        "corpus": corpus,
        "queries": len(mixed),
        "backend": backend,
        "defaults": {
            "candidates": config.search_candidates,
            "nprobes": config.search_nprobes,
            "refine_factor": config.search_refine_factor,
            "index": config.vector_index_type,
        },
        **baselines,
        "ann": ann | {"index_build_s": round(index_s, 1), "built": built},
        "ann_parallel": ann_parallel,
        "no_row_keys": no_row_keys,
        "ann_parallel_again": ann_parallel_again,
        "stages": stages,
        "sweep": sweep,
        **_ratios(baselines, ann, ann_parallel),
        "parallel_vs_sequential_p50": round(ann["p50_ms"] / max(ann_parallel["p50_ms"], 0.01), 2),
        "row_keys_p50": round(no_row_keys["p50_ms"] / max(ann_parallel["p50_ms"], 0.01), 2),
    }


def _ratios(
    baselines: dict[str, Any], ann: dict[str, Any], served: dict[str, Any]
) -> dict[str, float]:
    if not baselines:
        return {}
    flat, old = baselines["flat"], baselines["ivf_pq_old_default"]
    return {
        "ann_vs_flat_p50": round(flat["p50_ms"] / max(ann["p50_ms"], 0.01), 2),
        "new_vs_old_p50": round(old["p50_ms"] / max(served["p50_ms"], 0.01), 2),
        "new_vs_old_p99": round(old["p99_ms"] / max(served["p99_ms"], 0.01), 2),
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
    corpora: tuple[str, ...] = CORPORA,
    served_only: bool = False,
    out: Path,
) -> dict[str, Any]:
    """Run both parts (embedding skipped when embed_chunks is 0), print tables, write JSON."""
    from rich.console import Console
    from rich.table import Table

    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    console = Console()
    if embed_chunks > 0:
        result["embedding"] = emb = bench_embedding(
            models_dir,
            sentences(embed_chunks, embed_words, seed=3),
            batch=Settings().knowledge.embedding_batch_size,
        )
        print_embedding(console, emb)
    result["search"] = {}
    for kind in corpora:
        search = bench_search(models_dir, rows, distinct, queries, backend, kind, served_only)
        result["search"][kind] = search
        out.write_text(json.dumps(result, indent=2))
        table = Table(
            title=f"hybrid search, {kind} corpus, {search['corpus']['rows']} children "
            f"({search['queries']} queries; recall@k of parents vs exact dense + full text)"
        )
        for col in ("setting", "p50 ms", "p99 ms", "mean ms", "recall"):
            table.add_column(col)
        labels = {
            "flat": "flat scan (no index)",
            "ivf_pq_old_default": "old: IVF_PQ, cand 50, nprobes 32, refine 4",
            "ann": f"new defaults {search['defaults']}, one query after the other",
            "ann_parallel": "new defaults, dense + full text together (served path)",
            "no_row_keys": "served path, but every hit's keys read from the table",
            "ann_parallel_again": "served path again",
        }
        for name, label in labels.items():
            if name not in search:
                continue
            s = search[name]
            table.add_row(
                label,
                str(s["p50_ms"]),
                str(s["p99_ms"]),
                str(s["mean_ms"]),
                str(s["recall"]),
            )
        for s in search["sweep"]:
            table.add_row(
                f"{search['defaults']['index']} cand {s['candidates']} nprobes {s['nprobes']}",
                str(s["p50_ms"]),
                str(s["p99_ms"]),
                str(s["mean_ms"]),
                str(s["recall"]),
            )
        console.print(table)
        stages = ", ".join(f"{n} {v['p50_ms']}" for n, v in search["stages"].items())
        console.print(f"stages p50 ms: {stages}")
        console.print(
            f"corpus: {search['corpus']}; ANN index built in {search['ann']['index_build_s']} s"
        )
    out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {out}")
    return result
