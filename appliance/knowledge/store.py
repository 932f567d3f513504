"""The LanceDB store: child chunks (vector + text + ids) and parent chunks, with indexes.

Children are what is searched: a dense vector per child, and a native full-text index on
the child text with an n-gram tokenizer (CJK has no spaces). Parents are what a caller
gets back. Every row is keyed ``<document id>:<version>:<index>`` and a document's rows are
replaced as a whole, so a resumed job never leaves duplicates. Children live in one table
per *generation*: ``salesboost reindex`` fills the next generation while search keeps
reading the current one, then switches ``index.json`` in one atomic rename.

Every method blocks: callers run them off the event loop (``asyncio.to_thread``).

Reads (dense, full text, parent lookups) go to LanceDB's async query API, run as one
coroutine on LanceDB's own background loop, the one its sync API already uses: the sync
query builder makes about six round trips to that loop per query (schema lookups, blob
checks), ~0.4 ms each on two cores; one coroutine per search is one round trip (dense
7.0 -> 5.6 ms, full text 6.1 -> 4.8 ms at 100k children; see BENCHMARKS.md). The queries
return row ids and scores only: each hit's keys come from an in-memory map (``RowKeys``),
and only the winners' text is read, beside their parents (``Store.cite``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.background_loop import LOOP
from lancedb.index import FTS, BTree, IvfFlat, IvfPq

from appliance.errors import AppError

log = logging.getLogger(__name__)

META = "index.json"
PARENTS = "parents"
DEFAULT_NPROBES = 32
DEFAULT_REFINE_FACTOR = 4
# A write that loses a commit race against another writer of the same table (the server and
# `salesboost ingest` in one data dir) is retried this many times, with a doubling backoff.
WRITE_RETRIES = 8
READ_CONSISTENCY = timedelta(seconds=2)
# a search whose hits moved between its query and the read of their keys runs again
READ_ATTEMPTS = 3
WRITE_BACKOFF_S = 0.05
_CONFLICT = re.compile(r"commit conflict|too many concurrent writers", re.IGNORECASE)
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a LanceDB coroutine on LanceDB's background loop (where its tables live); block."""
    result: T = LOOP.run(coro)  # type: ignore[no-untyped-call]
    return result


def async_table(table: Any) -> Any:
    """The async half of a sync LanceDB table (lancedb is pinned: ``LanceTable._table``)."""
    return table._table


def is_commit_conflict(err: BaseException) -> bool:
    """Whether a LanceDB error is a lost commit race that a retry from the latest version fixes."""
    return isinstance(err, (RuntimeError, OSError, ValueError)) and bool(_CONFLICT.search(str(err)))


# Two full-text indexes: words on the text (exact Latin terms and codes: "zx", "4471", "q"),
# and character n-grams on the CJK part of the text (CJK has no spaces between words). One
# n-gram index over all text was measured at 540 ms per English query at 100k children
# (every bigram of the query is a long posting list); the split keeps both fast.
WORD_FTS: dict[str, Any] = {
    "base_tokenizer": "simple",
    "lower_case": True,
    "stem": False,  # exact terms: a product code must not be stemmed
    "remove_stop_words": True,  # "the", "what", "does" would match every English passage
    "ascii_folding": True,
}
CJK_FTS: dict[str, Any] = {
    "base_tokenizer": "ngram",
    "ngram_min_length": 2,  # two characters make most Chinese words
    "ngram_max_length": 3,
    "lower_case": True,
    "stem": False,
    "remove_stop_words": False,
}
_CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+"
)


def cjk_part(text: str) -> str:
    """The CJK runs of a text, space-separated (what the n-gram index sees)."""
    return " ".join(_CJK.findall(text))


def latin_part(text: str) -> str:
    """A text without its CJK runs (what the word index needs to match)."""
    return _CJK.sub(" ", text).strip()


CHILD_COLUMNS = [
    "id",
    "document_id",
    "version",
    "parent_index",
    "child_index",
    "page",
    "section",
    "collection",
    "tags",
    "text",
    "cjk",
    "sparse",
]


# A search asks LanceDB for row ids and scores only and gets each hit's keys (all that fusion,
# dedupe and the parent lookup need) from RowKeys; the winners' page, section and text are
# read beside their parents (Store.cite). "sparse" is read for every hit, for BGE-M3 only.
KEY_COLUMNS = ["document_id", "version", "parent_index", "child_index"]
CITE_COLUMNS = ["page", "section", "text"]


def children_schema(dim: int) -> pa.Schema:
    """Arrow schema of a children table for vectors of ``dim`` floats."""
    return pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("document_id", pa.int64()),
            pa.field("version", pa.int32()),
            pa.field("parent_index", pa.int32()),
            pa.field("child_index", pa.int32()),
            pa.field("page", pa.int32()),  # -1: unpaged
            pa.field("section", pa.string()),  # heading trail joined by " > "
            pa.field("collection", pa.string()),
            pa.field("tags", pa.string()),  # ",a,b," so a tag filter is one LIKE
            pa.field("text", pa.string()),
            pa.field("cjk", pa.string()),  # the CJK runs of text (n-gram indexed)
            pa.field("sparse", pa.string()),  # BGE-M3 lexical weights as JSON, else ""
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


PARENT_COLUMNS = ["document_id", "version", "parent_index", "pages", "section", "text"]
PARENTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("document_id", pa.int64()),
        pa.field("version", pa.int32()),
        pa.field("parent_index", pa.int32()),
        pa.field("pages", pa.string()),  # JSON list of page numbers
        pa.field("section", pa.string()),
        pa.field("text", pa.string()),
    ]
)


def child_id(document_id: int, version: int, child_index: int) -> str:
    """The key of a child row."""
    return f"{document_id}:{version}:c{child_index}"


def parent_id(document_id: int, version: int, parent_index: int) -> str:
    """The key of a parent row."""
    return f"{document_id}:{version}:p{parent_index}"


def quote(value: str) -> str:
    """A SQL string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def tags_field(tags: Sequence[str]) -> str:
    """Tags as stored: ``,a,b,``."""
    return "," + ",".join(t.replace(",", " ") for t in tags) + "," if tags else ""


def build_filter(
    collection: str | None = None, tag: str | None = None, document_id: int | None = None
) -> str | None:
    """The LanceDB ``where`` for search filters (None: no filter)."""
    parts = []
    if collection:
        parts.append(f"collection = {quote(collection)}")
    if tag:
        like = "%," + tag.replace(",", " ").replace("%", "").replace("_", "\\_") + ",%"
        parts.append(f"tags LIKE {quote(like)}")
    if document_id is not None:
        parts.append(f"document_id = {int(document_id)}")
    return " AND ".join(parts) or None


@dataclass
class Meta:
    """Which children table is live, and the model its vectors came from."""

    generation: int
    model: str
    dim: int


class RowKeys:
    """A children table's row keys (KEY_COLUMNS) by LanceDB row id, in memory (24 bytes a child).

    Reading the key columns of 50 hits per retriever is a random read per row: ~4 of the ~9 ms
    that dense + full text took at 100k children. A row id is the row's address (fragment,
    offset); Lance never rewrites a fragment in place and never reuses a fragment id, so an id
    names the same row for the table's life, and a deleted row is never a hit. Rows written
    after the load are read from the table, and the map is reloaded in the background.
    """

    def __init__(self, table: Any, rowids: np.ndarray[Any, Any], keys: np.ndarray[Any, Any]):
        self.table = table  # the table object it was read from (a new generation: a new map)
        self.rowids = rowids  # sorted
        self.keys = keys  # one row of KEY_COLUMNS per row id

    @classmethod
    def load(cls, table: Any) -> RowKeys:
        """Read every row's keys (~25 ms at 100k children)."""
        data = run_async(async_table(table).query().select(KEY_COLUMNS).with_row_id().to_arrow())
        rowids = data["_rowid"].to_numpy()
        order = np.argsort(rowids)
        keys = np.stack([data[c].to_numpy().astype(np.int32) for c in KEY_COLUMNS], axis=1)
        return cls(table, rowids[order], keys[order])

    def find(self, rowids: Sequence[int]) -> tuple[dict[int, tuple[int, ...]], list[int]]:
        """The keys of the row ids it has, and the row ids it has not."""
        if not len(self.rowids):
            return {}, list(rowids)
        wanted = np.asarray(rowids, dtype=np.uint64)
        pos = np.minimum(np.searchsorted(self.rowids, wanted), len(self.rowids) - 1)
        found = self.rowids[pos] == wanted
        keys = {
            int(r): tuple(k)
            for r, k in zip(wanted[found].tolist(), self.keys[pos[found]].tolist(), strict=True)
        }
        return keys, wanted[~found].tolist()


class StoreMismatchError(AppError):
    """The index on disk was built with another embedding model."""

    status_code = 503
    code = "index_model_mismatch"


class Store:
    """LanceDB tables under one directory; thread-safe; vector index built in the background."""

    def __init__(
        self,
        path: Path,
        *,
        model: str,
        dim: int,
        vector_index_min_rows: int,
        vector_index_type: str = "IVF_FLAT",
        nprobes: int = DEFAULT_NPROBES,
        refine_factor: int = DEFAULT_REFINE_FACTOR,
    ) -> None:
        self.path = path
        self.model = model
        self.dim = dim
        self.vector_index_min_rows = vector_index_min_rows
        self.vector_index_type = vector_index_type  # IVF_FLAT or IVF_PQ
        self.nprobes = nprobes  # IVF partitions searched per query (ANN index only)
        self.refine_factor = refine_factor  # k x this many PQ hits re-scored exactly; 0: none
        self.conflict_retries = 0  # commit conflicts retried so far (diagnosis, tests)
        path.mkdir(parents=True, exist_ok=True)
        # another process (`salesboost ingest` beside the server) writes the same tables: look
        # for newer versions at most every READ_CONSISTENCY, so its documents become searchable
        self.db = lancedb.connect(str(path), read_consistency_interval=READ_CONSISTENCY)
        self._write_lock = threading.RLock()
        self._meta = self._read_meta()
        self._meta_mtime = self._stat_meta()
        self.children = self._open_children(self._meta.generation, self._meta.dim)
        self.parents = self._open(PARENTS, PARENTS_SCHEMA)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._indexing = threading.Lock()
        self._fts_ready = False
        self._parents_indexed = False
        # optimize only after writes, ours (dirty) or another process's (the table moved past
        # the version we last optimized): an idle store never re-optimizes, which with an
        # IVF_FLAT index would mean a rebuild every minute
        self._dirty = False
        self._optimized_version = self.children.version
        self._vector_indexed: tuple[int, str] = (-1, "")  # (table version, index type)
        self.vector_index_builds = 0
        self.use_row_keys = True  # False: every hit's keys read from the table (bench)
        self._row_keys: RowKeys | None = None
        self._row_keys_stale = True  # (re)loaded by the background thread
        self._thread = threading.Thread(target=self._maintain, name="lancedb-indexer", daemon=True)
        self._wake.set()  # load the row keys now
        self._thread.start()

    # --- tables and generations ---------------------------------------------------------
    def _read_meta(self) -> Meta:
        file = self.path / META
        if file.is_file():
            data = json.loads(file.read_text(encoding="utf-8"))
            return Meta(int(data["generation"]), str(data["model"]), int(data["dim"]))
        meta = Meta(1, self.model, self.dim)
        self._write_meta(meta)
        return meta

    def _write_meta(self, meta: Meta) -> None:
        tmp = self.path / (META + ".tmp")
        tmp.write_text(json.dumps(meta.__dict__), encoding="utf-8")
        tmp.replace(self.path / META)

    def _stat_meta(self) -> float:
        try:
            return (self.path / META).stat().st_mtime
        except OSError:
            return 0.0

    def _open(self, name: str, schema: pa.Schema) -> Any:
        try:
            return self.db.open_table(name)
        except (FileNotFoundError, ValueError):
            return self.db.create_table(name, schema=schema, exist_ok=True)

    def _open_children(self, generation: int, dim: int) -> Any:
        return self._open(f"children_g{generation}", children_schema(dim))

    @property
    def meta(self) -> Meta:
        """The live generation (re-read when another process, `salesboost reindex`, switched it)."""
        mtime = self._stat_meta()
        if mtime != self._meta_mtime:
            with self._write_lock:
                meta = self._read_meta()
                if meta.generation != self._meta.generation:
                    self.children = self._open_children(meta.generation, meta.dim)
                    self._fts_ready = False
                self._meta, self._meta_mtime = meta, mtime
        return self._meta

    def check_model(self) -> None:
        """Raise when the live index was embedded with a different model than the configured one."""
        meta = self.meta
        if meta.model != self.model and self.children.count_rows() > 0:
            raise StoreMismatchError(
                f"the index was built with {meta.model!r} but this process embeds with "
                f"{self.model!r} (knowledge.embedding_model): set it to {meta.model!r} and "
                f"restart, or run `salesboost reindex` to rebuild the index with {self.model!r}"
            )
        if meta.model != self.model:  # empty index: adopt the configured model
            self._switch(Meta(meta.generation + 1, self.model, self.dim))

    def _switch(self, meta: Meta) -> None:
        with self._write_lock:
            old = self._meta.generation
            self.children = self._open_children(meta.generation, meta.dim)
            self._fts_ready = False
            self._write_meta(meta)
            self._meta, self._meta_mtime = meta, self._stat_meta()
            if old != meta.generation:
                try:
                    self.db.drop_table(f"children_g{old}")
                except (FileNotFoundError, ValueError) as err:
                    log.warning("could not drop children_g%s: %s", old, err)

    # --- writes ---------------------------------------------------------------------------
    def write_document(
        self, document_id: int, children: list[dict[str, Any]], parents: list[dict[str, Any]]
    ) -> None:
        """Replace every row of a document (delete then add: a rerun leaves no duplicates)."""
        self.meta  # noqa: B018 — pick up a generation switch first
        where = f"document_id = {int(document_id)}"
        with self._write_lock:
            self._retrying(lambda: self.children.delete(where))
            self._retrying(lambda: self.parents.delete(where))
            if parents:
                batch = pa.Table.from_pylist(parents, schema=PARENTS_SCHEMA)
                self._retrying(lambda: self.parents.add(batch))
            if children:
                for row in children:
                    row["cjk"] = cjk_part(row["text"])
                rows = pa.Table.from_pylist(children, schema=children_schema(self._meta.dim))
                self._retrying(lambda: self.children.add(rows))
            self._retrying(lambda: self._ensure_fts(self.children))
            self._retrying(self._ensure_parent_index)
            self._dirty = True
        self._wake.set()

    def _retrying(self, write: Callable[[], object]) -> None:
        """Run one LanceDB write; on a commit conflict with another writer, back off and retry.

        Every write here is idempotent from the latest table version (a delete by document,
        an append that did not commit, an index (re)build), so a retry cannot duplicate rows.
        """
        for attempt in range(WRITE_RETRIES + 1):
            try:
                write()
                return
            except Exception as err:
                if attempt == WRITE_RETRIES or not is_commit_conflict(err):
                    raise
                self.conflict_retries += 1
                delay = WRITE_BACKOFF_S * 2**attempt * (0.5 + random.random())
                log.warning("LanceDB commit conflict (attempt %d), retrying: %s", attempt + 1, err)
                time.sleep(delay)
                # a handle stays on the version it last saw: without this, a compaction or an
                # index build is planned on the same stale version again and loses again
                for table in (self.children, self.parents):
                    table.checkout_latest()

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        """Remove every row of these documents."""
        if not document_ids:
            return
        ids = ",".join(str(int(i)) for i in document_ids)
        with self._write_lock:
            self._retrying(lambda: self.children.delete(f"document_id IN ({ids})"))
            self._retrying(lambda: self.parents.delete(f"document_id IN ({ids})"))
            self._dirty = True
        self._wake.set()

    def _ensure_fts(self, table: Any) -> None:
        if table.count_rows() == 0:
            return
        have = {tuple(i.columns) for i in table.list_indices() if i.index_type == "FTS"}
        if ("text",) not in have:
            table.create_index("text", config=FTS(**WORD_FTS), replace=False)
        if ("cjk",) not in have:
            table.create_index("cjk", config=FTS(**CJK_FTS), replace=False)
        self._fts_ready = True

    def _ensure_parent_index(self) -> None:
        """A BTREE index on the parent id: the parent fetch is a lookup, not a table scan."""
        if self._parents_indexed or self.parents.count_rows() == 0:
            return
        if not any(i.columns == ["id"] for i in self.parents.list_indices()):
            self.parents.create_index("id", config=BTree())
        self._parents_indexed = True

    def optimize(self, *, if_changed: bool = False) -> None:
        """Compact small fragments, fold new rows into the indexes, drop old versions.

        ``if_changed``: only if nothing optimized the table while this call waited its turn.
        """
        with self._indexing:  # never alongside an index build
            if if_changed and not self._changed():
                return
            before = self._vector_index_uuid()
            with self._write_lock:  # nor a write
                self._dirty = False
                for table in (self.children, self.parents):
                    self._optimize_table(table, timedelta(seconds=60))
                self._retrying(self._ensure_parent_index)
            if (
                before
                and self._vector_index_kind() == "IvfFlat"
                and self._vector_index_uuid() != before
            ):
                # LanceDB's optimize rewrites an IVF_FLAT index into a form that searched 2.2x
                # slower here (13.5 vs 6.0 ms at 100k children, any nprobes); a fresh build
                # (~7 s at 100k, in this background thread, search keeps serving) restores it
                self._build_vector_index("IVF_FLAT")
            self._optimized_version = self.children.version

    def _vector_index_uuid(self) -> str:
        return next(
            (str(i.index_uuid) for i in self.children.list_indices() if i.columns == ["vector"]),
            "",
        )

    def _optimize_table(self, table: Any, keep: Any) -> None:
        self._retrying(lambda: table.optimize(cleanup_older_than=keep))

    def close(self) -> None:
        """Stop the background indexer."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    # --- background indexing --------------------------------------------------------------
    def _maintain(self) -> None:
        last_optimize = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=30)
            self._wake.clear()
            if self._stop.is_set():
                return
            time.sleep(2)  # let a burst of writes finish first
            try:
                if self._row_keys_stale:
                    self.load_row_keys()
                self.build_vector_index_if_due()
                if self._changed() and time.monotonic() - last_optimize > 60:
                    # a redundant optimize is not free: LanceDB rewrites an IVF_FLAT index even
                    # with no new rows, which means a rebuild (above)
                    self.optimize(if_changed=True)
                    last_optimize = time.monotonic()
            except Exception:  # the indexer must never die; the next wake-up retries
                log.exception("background index maintenance failed")

    def _changed(self) -> bool:
        """Written since the last optimize: by us, or by another process (a newer version)."""
        return self._dirty or self.children.version != self._optimized_version

    def load_row_keys(self) -> None:
        """(Re)load the in-memory row keys of the live children table."""
        self._row_keys_stale = False
        self._row_keys = RowKeys.load(self.children)

    def has_vector_index(self, table: Any | None = None) -> bool:
        """Whether the live children table has an ANN index on its vectors."""
        if table is not None:
            return any(i.columns == ["vector"] for i in table.list_indices())
        return self._vector_index_kind() != ""

    def _vector_index_kind(self) -> str:
        """The live table's vector index type ("" for none), looked up once per table version."""
        table = self.children
        version = table.version
        if self._vector_indexed[0] != version:
            kinds = [i.index_type for i in table.list_indices() if i.columns == ["vector"]]
            self._vector_indexed = (version, kinds[0] if kinds else "")
        return self._vector_indexed[1]

    def build_vector_index_if_due(self) -> bool:
        """Build the ANN index once the table passes the threshold; search keeps flat-scanning meanwhile."""
        if not self._indexing.acquire(blocking=False):
            return False
        try:
            table = self.children
            rows = table.count_rows()
            if rows < self.vector_index_min_rows or self.has_vector_index(table):
                return False
            self._build_vector_index(self.vector_index_type)
            return True
        finally:
            self._indexing.release()

    def build_vector_index(self, index_type: str) -> None:
        """(Re)build the ANN index of the live children table now (blocking; the bench times it)."""
        with self._indexing:  # never alongside the background indexer's build or compaction
            self._build_vector_index(index_type)

    def _build_vector_index(self, index_type: str) -> None:
        """Build the ANN index (replacing one).

        IVF_FLAT keeps exact vectors per partition: at 100k children of 384 floats it builds
        in ~7 s, searches 32 partitions in ~9 ms and ranks exactly within them; IVF_PQ (24
        bytes a vector) took 45 s and lost 40 % of the exact top 50 even with refine_factor 4.
        """
        table = self.children
        rows = table.count_rows()
        version = table.version
        started = time.monotonic()
        partitions = max(1, min(4096, int(rows**0.5)))
        config: IvfFlat | IvfPq
        if index_type == "IVF_PQ":
            sub_vectors = max(1, self._meta.dim // 16)
            config = IvfPq(
                distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub_vectors
            )
        else:
            config = IvfFlat(distance_type="cosine", num_partitions=partitions)
        self._retrying(lambda: table.create_index("vector", config=config, replace=True))
        if self._optimized_version == version:  # a new index is not a reason to optimize
            self._optimized_version = table.version
        self.vector_index_builds += 1
        log.info(
            "%s vector index built on %d rows in %.1f s",
            index_type,
            rows,
            time.monotonic() - started,
        )

    # --- reads ----------------------------------------------------------------------------
    def switched_under_us(self, err: Exception) -> bool:
        """Whether a read failed because `salesboost reindex` switched and dropped the table.

        The other process writes index.json before it drops the old generation, so a read
        that lost its files re-reads the meta and can retry on the new generation once.
        """
        if "not found" not in str(err).lower():
            return False
        old = self._meta.generation
        self._meta_mtime = -1.0  # force a re-read
        return self.meta.generation != old

    def dense(
        self,
        vector: np.ndarray[Any, Any],
        k: int,
        where: str | None,
        columns: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Nearest children by cosine distance: their keys, ``_distance`` and ``columns``."""
        return self._read_retrying(
            lambda: self._dense_and_fulltext(vector, None, k, where, columns)
        )[0]

    def fulltext(
        self, text: str, k: int, where: str | None, columns: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Best children by BM25: words for the Latin part, n-grams for the CJK part (RRF of both)."""
        return self._read_retrying(lambda: self._dense_and_fulltext(None, text, k, where, columns))[
            1
        ]

    def dense_and_fulltext(
        self,
        vector: np.ndarray[Any, Any],
        text: str,
        k: int,
        where: str | None,
        columns: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Both retrievers' lists, their queries run concurrently on LanceDB's threads."""
        return self._read_retrying(
            lambda: self._dense_and_fulltext(vector, text, k, where, columns)
        )

    def _read_retrying(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except (RuntimeError, OSError) as err:
            if not self.switched_under_us(err):
                raise
            return read()

    def _dense_and_fulltext(
        self,
        vector: np.ndarray[Any, Any] | None,
        text: str | None,
        k: int,
        where: str | None,
        columns: Sequence[str],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        # the live generation may have switched since the caller checked (`salesboost reindex`
        # in another process): a query embedded by another model is refused, not run
        self.check_model()
        children = self.children
        table = async_table(children)
        dense_kind = self._vector_index_kind() if vector is not None else ""
        parts: list[tuple[str, str]] = []
        if text is not None and (self._fts_ready or children.count_rows() > 0):
            if not self._fts_ready:
                with self._write_lock:
                    self._ensure_fts(children)
            parts = [(c, p) for c, p in (("text", latin_part(text)), ("cjk", cjk_part(text))) if p]
        queries = []
        if vector is not None:
            query = (
                table.query()
                .nearest_to(np.asarray(vector, dtype=np.float32))
                .column("vector")
                .distance_type("cosine")
            )
            if dense_kind:
                query = query.nprobes(self.nprobes)
                if self.refine_factor > 0 and dense_kind != "IvfFlat":  # IVF_FLAT is exact
                    query = query.refine_factor(self.refine_factor)
            if where:
                query = query.where(where)  # a filter before the search (prefilter) by default
            queries.append(query.with_row_id().select(["_distance"]).limit(k))
        for column, part in parts:
            query = table.query().nearest_to_text(part, columns=column)
            if where:
                query = query.where(where)
            queries.append(query.with_row_id().select(["_score"]).limit(k))
        hits: list[list[dict[str, Any]]] = []
        for attempt in range(READ_ATTEMPTS):
            found = run_async(_gather([q.to_arrow() for q in queries])) if queries else []
            hits = [t.to_pylist() for t in found]
            self._add_keys(children, [row for rows in hits for row in rows], columns)
            if all("id" in row for rows in hits for row in rows):
                break
            # a hit's row was gone when its keys were read: a commit (a compaction, here or
            # in another process) came between the query and the read; the next query sees it
            log.info("search hits moved by a concurrent commit, reading again (%d)", attempt + 1)
        hits = [[row for row in rows if "id" in row] for rows in hits]
        dense = hits.pop(0) if vector is not None else []
        # LanceDB returns equal BM25 scores in any order: rank ties by id, so that the same
        # query gives the same list every time
        lists = [sorted(rows, key=lambda r: (-float(r["_score"]), str(r["id"]))) for rows in hits]
        return dense, _fuse_fulltext(lists, k)

    def _add_keys(self, children: Any, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
        """Give each hit (``_rowid``) its keys and id from RowKeys, and ``columns`` if asked.

        A hit whose row was deleted since the query (its document replaced) gets no "id".
        """
        wanted = list({int(r["_rowid"]) for r in rows})
        cache = self._row_keys
        keys: dict[int, tuple[int, ...]] = {}
        missing = wanted
        if cache is not None and cache.table is children and self.use_row_keys:
            keys, missing = cache.find(wanted)
        extra: dict[int, dict[str, Any]] = {}
        read = wanted if columns else missing
        if read:  # rows written since the map was loaded (or BGE-M3's "sparse" column)
            if missing and self.use_row_keys:
                self._row_keys_stale = True
                self._wake.set()
            take = async_table(children).take_row_ids(read).select([*KEY_COLUMNS, *columns])
            for row in run_async(take.with_row_id().to_arrow()).to_pylist():
                rowid = int(row.pop("_rowid"))
                keys[rowid] = tuple(int(row.pop(c)) for c in KEY_COLUMNS)
                extra[rowid] = row
        for row in rows:
            rowid = int(row["_rowid"])
            if rowid not in keys:
                continue
            document_id, version, parent_index, child_index = keys[rowid]
            row.update(
                id=child_id(document_id, version, child_index),
                document_id=document_id,
                version=version,
                parent_index=parent_index,
                child_index=child_index,
                **extra.get(rowid, {}),
            )

    def parents_of(
        self, keys: Sequence[tuple[int, int, int]]
    ) -> dict[tuple[int, int, int], dict[str, Any]]:
        """Parent rows by (document id, version, parent index)."""
        if not keys:
            return {}
        return _by_key(run_async(self._parents_query(keys)))

    def _parents_query(self, keys: Sequence[tuple[int, int, int]]) -> Coroutine[Any, Any, pa.Table]:
        ids = ",".join(quote(parent_id(d, v, p)) for d, v, p in keys)
        query: Coroutine[Any, Any, pa.Table] = (  # the BTREE index on id: a lookup, not a scan
            async_table(self.parents)
            .query()
            .where(f"id IN ({ids})")
            .select(PARENT_COLUMNS)
            .limit(len(keys))
            .to_arrow()
        )
        return query

    def cite(self, hits: Sequence[dict[str, Any]]) -> dict[tuple[int, int, int], dict[str, Any]]:
        """The parents of these hits, and each hit's page, section and text (one round trip).

        A hit whose row is gone (its document was replaced or deleted meanwhile) gets no text.
        """
        if not hits:
            return {}
        keys = list(
            dict.fromkeys(
                (int(h["document_id"]), int(h["version"]), int(h["parent_index"])) for h in hits
            )
        )
        rowids = [int(h["_rowid"]) for h in hits]
        take = (
            async_table(self.children)
            .take_row_ids(rowids)
            .select(["id", *CITE_COLUMNS])
            .with_row_id()
            .to_arrow()
        )
        parents, cited = run_async(_gather([self._parents_query(keys), take]))
        by_rowid = {int(r.pop("_rowid")): r for r in cited.to_pylist()}
        # a row id is an address in one generation's table: after `salesboost reindex` went
        # live the same address holds another child, so a row counts only if its id matches
        by_rowid = {
            int(h["_rowid"]): row
            for h in hits
            if (row := by_rowid.get(int(h["_rowid"]))) is not None and row.pop("id") == h["id"]
        }
        lost = [h for h in hits if int(h["_rowid"]) not in by_rowid]
        if lost:  # a compaction moved them (or a new generation went live): look up by id
            ids = ",".join(quote(str(h["id"])) for h in lost)
            by_id = {
                str(r.pop("id")): r
                for r in self.children.search()
                .where(f"id IN ({ids})")
                .select(["id", *CITE_COLUMNS])
                .limit(len(lost))
                .to_arrow()
                .to_pylist()
            }
            for hit in lost:
                if (row := by_id.get(str(hit["id"]))) is not None:
                    hit.update(row)
        for hit in hits:
            if (row := by_rowid.get(int(hit["_rowid"]))) is not None:
                hit.update(row)
        return _by_key(parents)

    def passages_on_page(self, document_id: int, version: int, page: int) -> list[dict[str, Any]]:
        """The parents of one document version that cover ``page``, in document order."""
        rows = self.passages(document_id, version)
        return [r for r in rows if int(page) in json.loads(r["pages"] or "[]")]

    def passages(self, document_id: int, version: int) -> list[dict[str, Any]]:
        """Every parent of one document version, in document order."""
        rows = (
            self.parents.search()
            .where(f"document_id = {int(document_id)} AND version = {int(version)}")
            .select(PARENT_COLUMNS)
            .limit(None)
            .to_arrow()
            .to_pylist()
        )
        return sorted(rows, key=lambda r: int(r["parent_index"]))

    def document_ids(self) -> set[int]:
        """Every document id that has rows here (children or parents): one column scanned."""
        ids: set[int] = set()
        for table in (self.children, self.parents):
            rows = table.search().select(["document_id"]).limit(None).to_arrow()
            ids.update(int(i) for i in pc.unique(rows.column("document_id")).to_pylist())
        return ids

    def count(self, document_id: int | None = None) -> tuple[int, int]:
        """(children, parents) rows, of one document or all."""
        where = None if document_id is None else f"document_id = {int(document_id)}"
        return self.children.count_rows(where), self.parents.count_rows(where)

    # --- reindex ----------------------------------------------------------------------------
    def iter_children(self, batch_rows: int = 2048) -> Iterator[list[dict[str, Any]]]:
        """Every live child row (without vectors), in batches."""
        reader = self.children.search().select(CHILD_COLUMNS).limit(None).to_batches(batch_rows)
        for batch in reader:
            yield batch.to_pylist()

    def child_ids(self, table: Any) -> set[str]:
        """The ids in a children table."""
        reader = table.search().select(["id"]).limit(None).to_batches(8192)
        return {str(i) for batch in reader for i in batch.column("id").to_pylist()}

    def new_generation(self, model: str, dim: int) -> tuple[Meta, Any]:
        """An empty children table for the next generation (not live yet)."""
        meta = Meta(self.meta.generation + 1, model, dim)
        name = f"children_g{meta.generation}"
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.db.drop_table(name)
        return meta, self.db.create_table(name, schema=children_schema(dim))

    def add_to(self, table: Any, rows: list[dict[str, Any]], dim: int) -> None:
        """Append rows to a (not yet live) children table."""
        for row in rows:
            row["cjk"] = cjk_part(row["text"])
        table.add(pa.Table.from_pylist(rows, schema=children_schema(dim)))

    def go_live(self, meta: Meta, table: Any) -> None:
        """Index the new generation's table and make it the live one, atomically."""
        self._ensure_fts(table)
        self.model, self.dim = meta.model, meta.dim
        self._switch(meta)


async def _gather(queries: list[Coroutine[Any, Any, pa.Table]]) -> list[pa.Table]:
    """Await LanceDB queries concurrently (LanceDB runs them on its own thread pool)."""
    return list(await asyncio.gather(*queries))


def _by_key(parents: pa.Table) -> dict[tuple[int, int, int], dict[str, Any]]:
    return {(r["document_id"], r["version"], r["parent_index"]): r for r in parents.to_pylist()}


def _fuse_fulltext(lists: list[list[dict[str, Any]]], k: int) -> list[dict[str, Any]]:
    """The word list and the CJK n-gram list as one (RRF, k=60), or the only one there is."""
    if len(lists) < 2:
        return lists[0] if lists else []
    fused: dict[str, tuple[float, dict[str, Any]]] = {}
    for rows in lists:
        for rank, row in enumerate(rows, start=1):
            score, _ = fused.get(row["id"], (0.0, row))
            fused[row["id"]] = (score + 1 / (60 + rank), row)
    ordered = sorted(fused.values(), key=lambda x: x[0], reverse=True)
    return [row for _, row in ordered[:k]]
