"""Hybrid retrieval: dense top-k + full-text top-k (+ BGE-M3 sparse) fused by reciprocal rank.

Children are matched; results are their parents, one per parent, each with a citation.
``mode`` exposes the single retrievers (dense, fulltext) for tests and diagnosis. Every
function here blocks (model and LanceDB calls): the service runs them in a thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appliance.config import KnowledgeConfig
from appliance.knowledge.embedding import Embedder, EmbeddingModelError
from appliance.knowledge.store import Store, build_filter
from appliance.models import load_manifest

Mode = Literal["hybrid", "dense", "fulltext"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "fulltext")
MAX_SEARCH_K = 100
"""The most results one search returns."""


@dataclass
class Candidate:
    """A child that some retriever found, with its ranks and fused score."""

    row: dict[str, Any]
    ranks: dict[str, int] = field(default_factory=dict)
    score: float = 0.0

    @property
    def parent_key(self) -> tuple[int, int, int]:
        """(document id, version, parent index)."""
        return (
            int(self.row["document_id"]),
            int(self.row["version"]),
            int(self.row["parent_index"]),
        )


def rrf(ranked_lists: dict[str, list[dict[str, Any]]], k: int) -> list[Candidate]:
    """Reciprocal-rank fusion: score = sum over lists of 1 / (k + rank), rank from 1."""
    found: dict[str, Candidate] = {}
    for name, rows in ranked_lists.items():
        for rank, row in enumerate(rows, start=1):
            cand = found.setdefault(str(row["id"]), Candidate(row=row))
            cand.ranks[name] = rank
            cand.score += 1.0 / (k + rank)
    return sorted(found.values(), key=lambda c: c.score, reverse=True)


def best_per_parent(candidates: list[Candidate]) -> list[Candidate]:
    """Keep the best-scoring child of each parent, in score order."""
    seen: set[tuple[int, int, int]] = set()
    out = []
    for cand in candidates:
        if cand.parent_key not in seen:
            seen.add(cand.parent_key)
            out.append(cand)
    return out


class Reranker:
    """An optional FlagEmbedding cross-encoder (manifest role ``reranker``)."""

    def __init__(self, path: Path, device: str) -> None:
        from FlagEmbedding import FlagReranker

        self.model = FlagReranker(str(path), use_fp16=device.startswith("cuda"), devices=device)
        self._lock = threading.Lock()

    def scores(self, query: str, texts: list[str]) -> list[float]:
        """Relevance of each text to the query (higher is better)."""
        with self._lock:
            out = self.model.compute_score([[query, t] for t in texts], normalize=True)
        return [float(x) for x in (out if isinstance(out, list) else [out])]


def load_reranker(config: KnowledgeConfig, models_dir: Path, device: str) -> Reranker | None:
    """The configured reranker, or None when knowledge.reranker_model is empty."""
    if not config.reranker_model:
        return None
    entry = next(
        (m for m in load_manifest(models_dir).model if m.name == config.reranker_model), None
    )
    if entry is None or entry.role != "reranker":
        raise EmbeddingModelError(
            f"reranker {config.reranker_model!r} is not a model with role 'reranker' in the manifest"
        )
    return Reranker(models_dir / entry.path, device)


class Retriever:
    """Finds candidate children for a query; blocking."""

    def __init__(
        self,
        config: KnowledgeConfig,
        embedder: Embedder,
        store: Store,
        reranker_factory: Callable[[], Reranker | None] | None = None,
        *,
        parallel: bool = True,
    ) -> None:
        # hybrid: the dense and full-text queries run together on LanceDB's threads once the
        # query is embedded (False: one after the other, for the bench's comparison)
        self.parallel = parallel
        self.config = config
        self.embedder = embedder
        self.store = store
        self._reranker_factory = reranker_factory
        self._reranker: Reranker | None = None
        self._reranker_loaded = False

    @property
    def reranker(self) -> Reranker | None:
        """The reranker (loaded on first use), or None when not configured."""
        if not self._reranker_loaded and self._reranker_factory is not None:
            self._reranker = self._reranker_factory()
            self._reranker_loaded = True
        return self._reranker

    def candidates(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        collection: str | None = None,
        tag: str | None = None,
        document_id: int | None = None,
    ) -> list[Candidate]:
        """Children ranked by the chosen mode (hybrid: RRF of dense, full-text and sparse).

        A hybrid search for a query the embedding model cannot read (a Chinese query with the
        bundled English MiniLM: ``Embedder.reads``) is a full-text search: the dense ranking of
        such a query is noise, and RRF would weigh it like the exact hits (泽菲尔金卡年费 found
        first by full text came 8th of 8 in the fusion)."""
        if mode == "hybrid" and not self.embedder.reads(query):
            mode = "fulltext"
        self.store.check_model()
        where = build_filter(collection, tag, document_id)
        n = self.config.search_candidates
        columns = ["sparse"] if self.embedder.sparse else []
        lists: dict[str, list[dict[str, Any]]] = {}
        query_sparse = None
        if mode == "hybrid" and self.parallel:  # one LanceDB round trip for both retrievers
            vector, query_sparse = self.embedder.embed_query(query)
            lists["dense"], lists["fulltext"] = self.store.dense_and_fulltext(
                vector, query, n, where, columns
            )
        else:
            if mode in ("hybrid", "dense"):
                vector, query_sparse = self.embedder.embed_query(query)
                lists["dense"] = self.store.dense(vector, n, where, columns)
            if mode in ("hybrid", "fulltext"):
                lists["fulltext"] = self.store.fulltext(query, n, where, columns)
        if mode == "hybrid" and query_sparse is not None:
            lists["sparse"] = self._sparse_ranked(query_sparse, lists)
        return rrf(lists, self.config.rrf_k)

    def _sparse_ranked(
        self, query: dict[str, float], lists: dict[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """BGE-M3 lexical matching over the union of the other retrievers' candidates."""
        pool = {str(r["id"]): r for rows in lists.values() for r in rows}
        scored = []
        for row in pool.values():
            weights = json.loads(row["sparse"]) if row.get("sparse") else {}
            score = self.embedder.lexical_score(query, weights)
            if score > 0:
                scored.append((score, row))
        scored.sort(key=lambda x: x[0], reverse=True)
        return [row for _, row in scored]

    def rerank(self, query: str, texts: list[str]) -> list[float] | None:
        """Cross-encoder scores for parent texts, or None when no reranker is configured."""
        reranker = self.reranker
        return None if reranker is None else reranker.scores(query, texts)
