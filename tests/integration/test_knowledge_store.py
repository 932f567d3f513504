"""The LanceDB store on its own: the background ANN index, exact dense ranks, parent lookup."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from appliance.knowledge.store import SEARCH_COLUMNS, Store, child_id, parent_id

DIM = 16


def _document(doc: int, vectors: np.ndarray[Any, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    children = [
        {
            "id": child_id(doc, 1, i),
            "document_id": doc,
            "version": 1,
            "parent_index": i // 4,
            "child_index": i,
            "page": i % 7,
            "section": f"Part {i // 4}",
            "collection": "c",
            "tags": ",t,",
            "text": f"document {doc} passage {i}",
            "sparse": "",
            "vector": vectors[i].tolist(),
        }
        for i in range(len(vectors))
    ]
    parents = [
        {
            "id": parent_id(doc, 1, p),
            "document_id": doc,
            "version": 1,
            "parent_index": p,
            "pages": "[]",
            "section": f"Part {p}",
            "text": f"parent {p} of document {doc}",
        }
        for p in range((len(vectors) + 3) // 4)
    ]
    return children, parents


def test_ivf_flat_index_ranks_like_an_exact_scan(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=1500, nprobes=10_000)
    try:
        for doc in range(4):
            store.write_document(doc + 1, *_document(doc + 1, vectors[doc * 500 : doc * 500 + 500]))
        deadline = time.monotonic() + 60
        while not store.has_vector_index() and time.monotonic() < deadline:
            time.sleep(0.2)  # built by the background indexer past the threshold
        kinds = {tuple(i.columns): i.index_type for i in store.children.list_indices()}
        assert kinds[("vector",)] == "IvfFlat"
        assert ("id",) in {tuple(i.columns) for i in store.parents.list_indices()}
        for q in range(20):
            query = vectors[q * 97] + rng.normal(scale=0.3, size=DIM).astype(np.float32)
            exact = np.argsort(-(vectors @ (query / np.linalg.norm(query))))[:10]
            rows = store.dense(query, 10, None)
            assert set(rows[0]) == {*SEARCH_COLUMNS, "_distance"}
            expected = [child_id(int(i) // 500 + 1, 1, int(i) % 500) for i in exact]
            assert [r["id"] for r in rows] == expected  # every partition probed: exact
        parents = store.parents_of([(2, 1, 0), (4, 1, 124), (9, 1, 0)])
        assert sorted(parents) == [(2, 1, 0), (4, 1, 124)]
        assert parents[(4, 1, 124)]["text"] == "parent 124 of document 4"
    finally:
        store.close()


def test_full_text_ranks_equal_scores_by_id_every_time(tmp_path: Path) -> None:
    # LanceDB returns rows with equal BM25 scores in any order; the store breaks the tie by id
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(60, DIM)).astype(np.float32)
    store = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
    try:
        children, parents = _document(1, vectors)
        for child in children:  # 60 identical texts: one score for all
            child["text"] = "the annual fee is waived for premier customers"
        store.write_document(1, children, parents)
        runs = [[r["id"] for r in store.fulltext("annual fee", 60, None)] for _ in range(5)]
        assert len(runs[0]) == 60
        assert runs[0] == sorted(runs[0])
        assert all(run == runs[0] for run in runs)
    finally:
        store.close()
