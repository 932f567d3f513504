"""The LanceDB store on its own: the background ANN index, exact dense ranks, parent lookup."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from appliance.knowledge.store import (
    KEY_COLUMNS,
    Store,
    StoreMismatchError,
    child_id,
    parent_id,
)

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
            assert set(rows[0]) == {"id", "_rowid", *KEY_COLUMNS, "_distance"}
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


def _hits(store: Store, query: np.ndarray[Any, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["id"], r["document_id"], r["version"], r["parent_index"], r["child_index"])
        for r in store.dense(query, 20, None)
    ]


def test_row_keys_in_memory_give_what_the_table_gives_across_writes_and_compaction(
    tmp_path: Path,
) -> None:
    # hits come back as row ids; their keys come from the in-memory map, or from the table for
    # rows the map has not seen (written, or moved by a compaction, since it was loaded)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    store = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
    try:
        for doc in range(3):
            store.write_document(doc + 1, *_document(doc + 1, vectors[doc * 100 : doc * 100 + 100]))
        queries = [
            vectors[i] + rng.normal(scale=0.2, size=DIM).astype(np.float32)
            for i in range(0, 300, 37)
        ]

        def from_table() -> list[list[tuple[Any, ...]]]:
            store.use_row_keys = False
            try:
                return [_hits(store, q) for q in queries]
            finally:
                store.use_row_keys = True

        store.load_row_keys()
        expected = from_table()
        assert [_hits(store, q) for q in queries] == expected
        # exact: child i of document d is vectors[(d - 1) * 100 + i]
        for q, hits in zip(queries, expected, strict=True):
            best = int(np.argmax(vectors @ q / np.linalg.norm(vectors, axis=1)))
            assert hits[0][0] == child_id(best // 100 + 1, 1, best % 100)
            assert all(parent == child // 4 for _, _, _, parent, child in hits)

        store.delete_documents([1])  # the map is now stale: rows of document 1 are gone
        store.write_document(4, *_document(4, vectors[:100]))  # new rows, unknown to the map
        assert [_hits(store, q) for q in queries] == from_table()
        assert any(h[1] == 4 for hits in from_table() for h in hits)
        before = {r["_rowid"] for q in queries for r in store.dense(q, 20, None)}
        store.optimize()  # compaction moves rows: new row ids, unknown to the map
        assert before != {r["_rowid"] for q in queries for r in store.dense(q, 20, None)}
        assert [_hits(store, q) for q in queries] == from_table()
        store.load_row_keys()
        assert [_hits(store, q) for q in queries] == from_table()
    finally:
        store.close()


def test_cite_reads_the_winners_text_beside_their_parents(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(40, DIM)).astype(np.float32)
    store = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
    try:
        store.write_document(1, *_document(1, vectors[:20]))
        store.write_document(2, *_document(2, vectors[20:]))
        store.load_row_keys()
        hits = store.dense(vectors[5], 3, None)
        assert "text" not in hits[0]
        parents = store.cite(hits)
        assert hits[0]["id"] == child_id(1, 1, 5)
        assert (hits[0]["text"], hits[0]["page"], hits[0]["section"]) == (
            "document 1 passage 5",
            5,
            "Part 1",
        )
        assert parents[(1, 1, 1)]["text"] == "parent 1 of document 1"
        # a hit whose document was deleted meanwhile gets no text and no parent
        hits = store.dense(vectors[25], 2, None)
        store.delete_documents([2])
        store.optimize()
        parents = store.cite(hits)
        assert hits[0]["document_id"] == 2
        assert "text" not in hits[0]
        assert (2, 1, 1) not in parents
    finally:
        store.close()


def test_a_reindex_going_live_between_query_and_cite_never_cites_another_childs_text(
    tmp_path: Path,
) -> None:
    """`salesboost reindex` (another process) switches generations while a search is between
    its query and its cite: the old table's files are gone, and in the new table the hits'
    row ids address other children (here written in reverse order)."""
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(20, DIM)).astype(np.float32)
    reader = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
    writer = None
    try:
        reader.write_document(1, *_document(1, vectors))
        reader.load_row_keys()
        hits = reader.dense(vectors[3], 2, None)
        assert hits[0]["id"] == child_id(1, 1, 3)
        writer = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
        meta, table = writer.new_generation("m", DIM)
        rows = [r for batch in writer.iter_children() for r in batch]
        writer.add_to(table, sorted(rows, key=lambda r: -int(r["child_index"])), DIM)
        writer.go_live(meta, table)

        # on the table it queried, the read fails, and says it was a switch: search again
        try:
            reader.cite([dict(h) for h in hits])
        except (RuntimeError, OSError) as err:
            assert reader.switched_under_us(err)
        # on the new table, the old row ids are other children's: found by id instead
        assert reader.meta.generation == meta.generation
        reader.cite(hits)
        assert [(h["id"], h["text"], h["page"]) for h in hits] == [
            (child_id(1, 1, i), f"document 1 passage {i}", i % 7)
            for i in (int(h["child_index"]) for h in hits)
        ]
    finally:
        reader.close()
        if writer is not None:
            writer.close()


def test_a_reindex_to_another_model_going_live_mid_search_is_a_typed_mismatch(
    tmp_path: Path,
) -> None:
    """The other process switched to a model of another size after this one checked: its
    query vector is refused with the stable code, not run against the new table (a 500)."""
    vectors = np.random.default_rng(5).normal(size=(12, DIM)).astype(np.float32)
    reader = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
    writer = None
    try:
        reader.write_document(1, *_document(1, vectors))
        reader.check_model()
        writer = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
        meta, table = writer.new_generation("m2", DIM // 2)
        rows = [r for batch in writer.iter_children() for r in batch]
        for row in rows:  # the other model's vectors
            row["vector"] = [0.5] * (DIM // 2)
        writer.add_to(table, rows, DIM // 2)
        writer.go_live(meta, table)
        with pytest.raises(StoreMismatchError) as err:
            reader.dense_and_fulltext(vectors[0], "passage", 3, None)
        assert err.value.code == "index_model_mismatch"
    finally:
        reader.close()
        if writer is not None:
            writer.close()


def test_an_index_build_alone_does_not_make_the_indexer_optimize_again(tmp_path: Path) -> None:
    # LanceDB's optimize rewrites an IVF_FLAT index even with no new rows, so the store
    # rebuilds it after every optimize: an optimize that nothing asked for costs a rebuild
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(400, DIM)).astype(np.float32)
    store = Store(tmp_path, model="m", dim=DIM, vector_index_min_rows=10**9)
    try:
        store.write_document(1, *_document(1, vectors[:200]))
        store.optimize(if_changed=True)  # the write asked for it
        store.build_vector_index("IVF_FLAT")
        builds = store.vector_index_builds
        store.optimize(if_changed=True)  # what the background indexer runs: nothing to do
        assert store.vector_index_builds == builds
        store.write_document(2, *_document(2, vectors[200:]))
        store.optimize(if_changed=True)  # new rows: compacted, folded in, the index rebuilt
        assert store.vector_index_builds == builds + 1
        assert store.children.index_stats("vector_idx").num_unindexed_rows == 0
    finally:
        store.close()
