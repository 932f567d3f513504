"""KnowledgeService: upload, library, durable ingestion, search and retrieval-only answers.

The API and the CLI call this; it owns the pipeline order: file -> extract (router, OCR)
-> chunk (parent/child) -> embed (cached) -> store (LanceDB) -> mark done. Blocking steps
run in threads; SQLite writes go through the one writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from appliance.config import Settings
from appliance.db.database import Database
from appliance.db.documents import Document, DocumentRepository
from appliance.db.ids import next_id
from appliance.db.jobs import Job, JobRepository
from appliance.errors import (
    SQLITE_INT_MAX,
    AppError,
    Conflict,
    InvalidInput,
    NotFound,
    OutOfRange,
    check_text,
)
from appliance.knowledge.embedding import Embedder
from appliance.knowledge.errors import InvalidCollection, KnowledgeError, TooLarge
from appliance.knowledge.jobs import WorkerPool
from appliance.knowledge.search import (
    MAX_SEARCH_K,
    MODES,
    Mode,
    Retriever,
    best_per_parent,
    load_reranker,
)
from appliance.knowledge.store import Store, child_id, parent_id, tags_field

log = logging.getLogger(__name__)
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
Publish = Callable[[str, dict[str, Any]], None]


class Citation(msgspec.Struct, kw_only=True):
    """Where a search result comes from."""

    document_id: int
    title: str
    filename: str
    version: int
    collection: str
    page: int | None
    pages: list[int]
    section: list[str]
    snippet: str
    passage: int = 0
    """The cited passage (parent chunk) of the document: /knowledge/documents/{id}?passage=N."""


class SearchResult(msgspec.Struct, kw_only=True):
    """One parent chunk with its citation and how it was found."""

    score: float
    text: str
    citation: Citation
    ranks: dict[str, int]
    rerank_score: float | None = None


class SearchResponse(msgspec.Struct, kw_only=True):
    """Results of a search."""

    query: str
    mode: str
    results: list[SearchResult]
    reranker: str  # the model name, or "not configured"


@dataclass
class Upload:
    """What an upload produced for one file."""

    document: Document
    job: Job | None
    duplicate: bool


@dataclass
class Deleted:
    """What deleting a document version did."""

    document: Document
    """The version deleted (as it was)."""
    restored: Document | None
    """The older version that became current again (queued for re-indexing), if any."""
    job: Job | None
    """The restored version's re-indexing job."""


COLLECTION_NAME = re.compile(r"^[\w.\-]{1,100}$")


def check_collection(name: str | None) -> str:
    """The collection name to store (blank: ``default``); one a scenario could not name is refused.

    Scenarios name their collection with the same rule (letters, digits, '_', '-', '.'), so a
    document filed under "Product Docs!" would be unreachable by any scenario.
    """
    collection = (name or "default").strip() or "default"
    if not COLLECTION_NAME.match(collection):
        raise InvalidCollection(
            f"collection {collection[:100]!r}: use 1-100 letters, digits, '_', '-' or '.'",
            detail={"field": "collection"},
        )
    return collection


def check_upload_texts(
    filenames: list[str], collection: str, tags: list[str], title: str | None
) -> None:
    """``InvalidText`` for a control or bidi character in an upload's file names, collection,
    tags or title (the API checks a whole batch before storing any of it; ``upload`` checks
    its own)."""
    check_text("collection", collection, single_line=True)
    for n, name in enumerate(filenames):
        field = "filename" if len(filenames) == 1 else f"files[{n}].filename"
        check_text(field, Path(name or "upload").name or "upload", single_line=True)
    for n, tag in enumerate(tags):
        check_text(f"tags[{n}]", tag.strip(), single_line=True)
    if title is not None:
        check_text("title", title.strip(), single_line=True)


class KnowledgeService:
    """The knowledge pipeline behind the API and the CLI."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        publish: Publish | None = None,
        *,
        resume: bool = True,
    ) -> None:
        self.settings = settings
        self.config = settings.knowledge
        self.db = db
        self.documents = DocumentRepository(db)
        self.jobs = JobRepository(db)
        self.files_dir = settings.state_dir / "documents"
        self.lance_dir = settings.state_dir / "lancedb"
        self._publish = publish
        self._resume = resume
        self.pool = WorkerPool(self.jobs, self._run_job, self.config.workers)
        self._embedder: Embedder | None = None
        self._store: Store | None = None
        self._retriever: Retriever | None = None
        self._init_lock = asyncio.Lock()
        self._ocr: Any = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker pool, resuming interrupted jobs (the model loads on first use).

        The CLI passes resume=False: it runs only the jobs it creates, so that a server on the
        same state dir keeps its own.
        """
        self.files_dir.mkdir(parents=True, exist_ok=True)
        await self.pool.start(resume=self._resume)

    async def stop(self) -> None:
        """Stop workers and the background indexer."""
        await self.pool.stop()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
        if self._embedder is not None:
            self._embedder.close()
        if self._ocr is not None:  # its models and idle timer go with the service
            await asyncio.to_thread(self._ocr.release)

    async def parts(self) -> tuple[Embedder, Store, Retriever]:
        """The embedder, store and retriever, created (in a thread) on first use."""
        async with self._init_lock:
            if self._retriever is None:
                embedder, store, retriever = await asyncio.to_thread(self._build_parts)
                # a crash between "new version done" and dropping the old version's rows, or
                # between a delete's commit and dropping its rows, leaves rows search already
                # ignores; drop them now (no job writes before this returns)
                stale = set(await self.documents.retired_ids())
                known = set(await self.documents.all_ids())
                stale |= await asyncio.to_thread(store.document_ids) - known
                if stale:
                    log.info(
                        "knowledge: dropping the rows of %d retired or deleted documents",
                        len(stale),
                    )
                    await asyncio.to_thread(store.delete_documents, sorted(stale))
                self._embedder, self._store, self._retriever = embedder, store, retriever
        assert self._embedder is not None and self._store is not None
        assert self._retriever is not None
        return self._embedder, self._store, self._retriever

    def _build_parts(self) -> tuple[Embedder, Store, Retriever]:
        embedder = Embedder(self.config, self.settings.models_dir, self.settings.state_dir)
        store = Store(
            self.lance_dir,
            model=embedder.name,
            dim=embedder.dim,
            vector_index_min_rows=self.config.vector_index_min_rows,
            vector_index_type=self.config.vector_index_type,
            nprobes=self.config.search_nprobes,
            refine_factor=self.config.search_refine_factor,
        )
        retriever = Retriever(
            self.config,
            embedder,
            store,
            lambda: load_reranker(self.config, self.settings.models_dir, embedder.device),
        )
        return embedder, store, retriever

    # --- upload ---------------------------------------------------------------------------
    async def upload(
        self,
        *,
        filename: str,
        data: bytes | Path,
        uploader_id: int | None,
        collection: str = "default",
        tags: list[str] | None = None,
        title: str | None = None,
    ) -> Upload:
        """Store a file, dedupe it, create its document version and queue its job.

        Raises ``UnsupportedType`` (415, ``unsupported_type``) for a type no extractor reads.
        """
        tags = sorted({t.strip() for t in (tags or []) if t.strip()})
        check_upload_texts([filename], collection, tags, title)
        collection = check_collection(collection)
        name = Path(filename or "upload").name or "upload"
        sha, size = await asyncio.to_thread(self._store_file, data, name)
        existing = await self.documents.by_sha(collection, sha)
        if existing is not None:
            return Upload(existing, await self.jobs.latest_for(existing.id), duplicate=True)
        title = (title or Path(name).stem or name).strip()[:300]
        async with self.db.transaction() as conn:
            # again under the write lock: the same file uploaded twice at once (a double drop,
            # or the CLI and the API together) must still become one document
            same = await (
                await conn.execute(
                    "SELECT id FROM documents WHERE collection = ? AND sha256 = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (collection, sha),
                )
            ).fetchone()
            if same is not None:
                doc_id, job_id = int(same[0]), 0
            else:
                doc_id, job_id = await self._insert_version(
                    conn, title, name, sha, size, collection, tags, uploader_id
                )
        if not job_id:
            existing = await self.documents.get(doc_id)
            assert existing is not None
            return Upload(existing, await self.jobs.latest_for(doc_id), duplicate=True)
        self.pool.submit(job_id)
        document = await self.documents.get(doc_id)
        assert document is not None
        job = await self.jobs.get(job_id)
        self._announce(job)
        return Upload(document, job, duplicate=False)

    @staticmethod
    async def _insert_version(
        conn: Any,
        title: str,
        name: str,
        sha: str,
        size: int,
        collection: str,
        tags: list[str],
        uploader_id: int | None,
    ) -> tuple[int, int]:
        """Insert the next version of ``title`` and its job (inside the caller's transaction)."""
        row = await (
            await conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM documents WHERE collection = ? AND title = ?",
                (collection, title),
            )
        ).fetchone()
        version = int(row[0]) + 1 if row else 1
        doc_id = await next_id(conn, "documents")
        await conn.execute(
            "INSERT INTO documents (id, title, filename, sha256, size, version, collection, "
            "tags, uploader_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc_id, title, name, sha, size, version, collection, json.dumps(tags), uploader_id),
        )
        job_id = await next_id(conn, "jobs")
        await conn.execute(
            "INSERT INTO jobs (id, document_id, user_id) VALUES (?, ?, ?)",
            (job_id, doc_id, uploader_id),
        )
        return doc_id, job_id

    async def check_type(self, filename: str, data: bytes | Path) -> None:
        """Raise ``UnsupportedType`` when no extractor reads this file (nothing is stored)."""
        name = Path(filename or "upload").name or "upload"
        await asyncio.to_thread(self._check_type, data, name)

    def _check_type(self, data: bytes | Path, name: str) -> None:
        from appliance.knowledge.router import check_supported

        if isinstance(data, Path):
            check_supported(data, name)
            return
        self.files_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.files_dir, prefix=".check-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            check_supported(Path(tmp_name), name)
        finally:
            Path(tmp_name).unlink(missing_ok=True)

    def _store_file(self, data: bytes | Path, name: str = "upload") -> tuple[str, int]:
        """Write the bytes under documents/<sha256> atomically; returns (sha256, size).

        An unsupported type is refused here (``UnsupportedType``) before anything is kept.
        """
        from appliance.knowledge.router import check_supported

        self.files_dir.mkdir(parents=True, exist_ok=True)
        limit = self.config.max_file_bytes
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.files_dir, prefix=".upload-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, Path):
                    with data.open("rb") as src:
                        while chunk := src.read(1 << 20):
                            size += len(chunk)
                            if size > limit:
                                raise TooLarge(f"the file is over the {limit}-byte limit")
                            digest.update(chunk)
                            out.write(chunk)
                else:
                    size = len(data)
                    if size > limit:
                        raise TooLarge(f"the file is over the {limit}-byte limit")
                    digest.update(data)
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            check_supported(tmp, name)
            sha = digest.hexdigest()
            target = self.files_dir / sha
            if target.exists():
                tmp.unlink()
            else:
                tmp.replace(target)
            return sha, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # --- jobs -----------------------------------------------------------------------------
    def _announce(self, job: Job | None, **extra: Any) -> None:
        if job is None or self._publish is None or job.user_id is None:
            return
        event = {"type": "job", **msgspec.to_builtins(job), **extra}
        try:
            self._publish(f"jobs:user:{job.user_id}", event)
        except Exception:  # progress events are best-effort; the job row is the truth
            log.exception("could not publish job progress")

    async def _progress(self, job_id: int, stage: str, percent: float) -> None:
        await self.jobs.progress(job_id, stage, percent)
        self._announce(await self.jobs.get(job_id))

    async def _run_job(self, job_id: int) -> None:
        job = await self.jobs.get(job_id)
        if job is None or job.state != "queued":
            return
        document = await self.documents.get(job.document_id)
        if document is None:
            return
        await self.jobs.start(job_id)
        self._announce(await self.jobs.get(job_id))
        try:
            await self._ingest(job_id, document)
        except AppError as err:
            await self.jobs.fail(job_id, err.code, err.message)
        except Exception as err:
            log.exception("ingestion of document %s failed", document.id)
            await self.jobs.fail(job_id, "internal_error", f"{type(err).__name__}: {err}")
        self._announce(await self.jobs.get(job_id))

    async def _ingest(self, job_id: int, document: Document) -> None:
        embedder, store, _ = await self.parts()
        path = self.files_dir / document.sha256
        if not path.is_file():
            raise KnowledgeError(f"the stored file {document.sha256} is missing")
        extracted = await asyncio.to_thread(self._extract, path, document.filename)
        await self._progress(job_id, "chunk", 20)
        parents = await asyncio.to_thread(self._chunk, extracted, embedder.count_tokens)
        children = [c for p in parents for c in p.children]
        if not children:
            from appliance.knowledge.errors import NoTextFound

            tried = ", ".join(sorted({r.route for r in extracted.routes})) or "none"
            raise NoTextFound(f"no text to index (routes tried: {tried})")
        await self._progress(job_id, "embed", 25)
        loop = asyncio.get_running_loop()

        def report(done: int, total: int) -> None:
            percent = 25 + 65 * done / max(total, 1)
            asyncio.run_coroutine_threadsafe(self._progress(job_id, "embed", percent), loop)

        vectors, sparse = await asyncio.to_thread(
            embedder.embed_passages, [c.text for c in children], report
        )
        await self._progress(job_id, "store", 90)
        child_rows = [
            {
                "id": child_id(document.id, document.version, n),
                "document_id": document.id,
                "version": document.version,
                "parent_index": c.parent_index,
                "child_index": n,
                "page": -1 if c.page is None else int(c.page),
                "section": " > ".join(c.section),
                "collection": document.collection,
                "tags": tags_field(document.tags),
                "text": c.text,
                "sparse": json.dumps(sparse[n]) if sparse else "",
                "vector": vectors[n].tolist(),
            }
            for n, c in enumerate(children)
        ]
        parent_rows = [
            {
                "id": parent_id(document.id, document.version, p.index),
                "document_id": document.id,
                "version": document.version,
                "parent_index": p.index,
                "pages": json.dumps(list(p.pages)),
                "section": " > ".join(p.section),
                "text": p.text,
            }
            for p in parents
        ]
        await asyncio.to_thread(store.write_document, document.id, child_rows, parent_rows)
        retired = await self._complete(job_id, document, extracted, len(child_rows), len(parents))
        if await self.documents.get(document.id) is None:  # deleted while we worked
            retired.append(document.id)
        await asyncio.to_thread(store.delete_documents, retired)

    async def _complete(
        self, job_id: int, document: Document, extracted: Any, chunks: int, parents: int
    ) -> list[int]:
        """Mark the version done and retire older versions in one transaction; returns the
        ids whose rows must leave the index (none when the version was deleted meanwhile)."""
        routes = [
            {
                "page": r.page,
                "route": r.route,
                "reason": r.reason,
                "chars": r.chars,
                "ocr_confidence": r.ocr_confidence,
                "low_confidence": r.low_confidence,
            }
            for r in extracted.routes
        ]
        async with self.db.transaction() as conn:
            mine = await (
                await conn.execute("SELECT retired FROM documents WHERE id = ?", (document.id,))
            ).fetchone()
            if mine is None:  # deleted while it was indexed: it retires nothing
                return []
            await conn.execute(
                f"UPDATE documents SET state = 'done', sniffed_type = ?, routes = ?, warnings = ?, "  # noqa: S608
                f"pages = ?, chunk_count = ?, parent_count = ?, updated_at = {_NOW} WHERE id = ?",
                (
                    extracted.sniffed_type,
                    json.dumps(routes),
                    json.dumps(list(extracted.warnings)),
                    extracted.pages,
                    chunks,
                    parents,
                    document.id,
                ),
            )
            cur = await conn.execute(
                "SELECT id FROM documents WHERE collection = ? AND title = ? AND version < ? "
                "AND retired = 0",
                (document.collection, document.title, document.version),
            )
            older = [int(r[0]) for r in await cur.fetchall()]
            if older:
                marks = ",".join("?" * len(older))
                await conn.execute(
                    f"UPDATE documents SET retired = 1, updated_at = {_NOW} WHERE id IN ({marks})",  # noqa: S608
                    older,
                )
            await conn.execute(
                f"UPDATE jobs SET state = 'done', stage = 'done', progress = 100, "  # noqa: S608
                f"finished_at = {_NOW}, updated_at = {_NOW} WHERE id = ?",
                (job_id,),
            )
        if mine[0]:  # a newer version went live meanwhile: this one's rows leave the index
            older.append(document.id)
        return older

    def _extract(self, path: Path, filename: str) -> Any:
        """The extraction engineer's router (sync; this runs in a worker thread)."""
        from appliance.knowledge.ocr import Ocr
        from appliance.knowledge.router import extract

        if self._ocr is None:
            # loads its models lazily, thread-safe; knowledge.ocr_* tune it
            self._ocr = Ocr(self.settings.models_dir, self.settings.knowledge)
        return extract(path, filename, self.config, self._ocr)

    def _chunk(self, extracted: Any, count_tokens: Callable[[str], int]) -> list[Any]:
        from appliance.knowledge.chunking import chunk

        parents: list[Any] = chunk(
            extracted,
            count_tokens,
            parent_tokens=self.config.parent_tokens,
            child_tokens=self.config.child_tokens,
            overlap_tokens=self.config.child_overlap_tokens,
        )
        return parents

    # --- library --------------------------------------------------------------------------
    async def get_document(self, document_id: int) -> Document:
        """One document version, or NotFound."""
        document = await self.documents.get(document_id)
        if document is None:
            raise NotFound(f"no document {document_id}", detail={"document_id": document_id})
        return document

    async def page_passages(self, document_id: int, page: int) -> list[dict[str, Any]]:
        """The stored passages (parent chunks: section, text) of a document's page, in order."""
        document = await self.get_document(document_id)
        _, store, _ = await self.parts()
        return await asyncio.to_thread(store.passages_on_page, document.id, document.version, page)

    async def document_passages(self, document_id: int) -> list[dict[str, Any]]:
        """Every stored passage (parent chunk: index, section, text) of a document, in order
        (what the document page shows for a document without pages: Word, Excel, text)."""
        document = await self.get_document(document_id)
        _, store, _ = await self.parts()
        return await asyncio.to_thread(store.passages, document.id, document.version)

    async def get_job(self, job_id: int) -> Job:
        """One job, or NotFound."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", detail={"job_id": job_id})
        return job

    async def delete_document(self, document_id: int, user_id: int | None = None) -> Deleted:
        """Remove a document version: its rows in LanceDB, its file (unless shared) and SQLite rows.

        When the version deleted was the live one and no other live version of its title is
        done, the newest older version becomes current again: un-retired and re-indexed by a
        ``restore`` job (its chunks left the index when it was retired), in the same
        transaction as the delete, so a crash leaves either both or neither; the job resumes
        at the next start like any other. Deleting a retired version changes nothing else.
        """
        document = await self.get_document(document_id)
        restored_id = job_id = 0
        async with self.db.transaction() as conn:
            row = await (
                await conn.execute("SELECT retired FROM documents WHERE id = ?", (document_id,))
            ).fetchone()
            await conn.execute("DELETE FROM documents WHERE id = ?", (document_id,))
            if row is not None and not row[0]:
                restored_id, job_id = await self._restore_previous(conn, document, user_id)
            cur = await conn.execute(
                "SELECT COUNT(*) FROM documents WHERE sha256 = ?", (document.sha256,)
            )
            count = await cur.fetchone()
            shared = bool(count and count[0])
        if self._store is not None or self.lance_dir.exists():
            _, store, _ = await self.parts()
            await asyncio.to_thread(store.delete_documents, [document_id])
        if not shared:
            (self.files_dir / document.sha256).unlink(missing_ok=True)
        restored = job = None
        if job_id:
            self.pool.submit(job_id)
            restored = await self.documents.get(restored_id)
            job = await self.jobs.get(job_id)
            self._announce(job)
        return Deleted(document=document, restored=restored, job=job)

    @staticmethod
    async def _restore_previous(
        conn: Any, deleted: Document, user_id: int | None
    ) -> tuple[int, int]:
        """After the live version of a title was deleted (in the caller's transaction): make
        the newest retired version live again and queue its re-indexing; (document, job) ids,
        or (0, 0) when another live version is done (it stays current) or none is left."""
        live = await (
            await conn.execute(
                "SELECT 1 FROM documents WHERE collection = ? AND title = ? AND retired = 0 "
                "AND state = 'done' LIMIT 1",
                (deleted.collection, deleted.title),
            )
        ).fetchone()
        if live is not None:
            return 0, 0
        previous = await (
            await conn.execute(
                "SELECT id FROM documents WHERE collection = ? AND title = ? AND retired = 1 "
                "ORDER BY version DESC LIMIT 1",
                (deleted.collection, deleted.title),
            )
        ).fetchone()
        if previous is None:
            return 0, 0
        doc_id = int(previous[0])
        # its rows left LanceDB when it was retired: queued until the job has written them
        # again (search skips a version that is not done)
        await conn.execute(
            f"UPDATE documents SET retired = 0, state = 'queued', updated_at = {_NOW} "  # noqa: S608
            "WHERE id = ?",
            (doc_id,),
        )
        job_id = await next_id(conn, "jobs")
        await conn.execute(
            "INSERT INTO jobs (id, document_id, user_id, kind) VALUES (?, ?, ?, 'restore')",
            (job_id, doc_id, user_id),
        )
        return doc_id, job_id

    async def reingest(self, document_id: int, user_id: int | None) -> Job:
        """Queue a new job for a document (a failed one, or after an extractor upgrade).

        A retired version (a newer one of its title is current) is ``conflict``: its rows
        would only be dropped again when the job finished."""
        document = await self.get_document(document_id)
        if document.retired:
            raise Conflict(
                f"document {document.id} is version {document.version} of {document.title!r}, "
                "retired by a newer version: re-ingest the current one, or delete the newer "
                "versions to make this one current again",
                detail={"document_id": document.id, "reason": "retired_version"},
            )
        latest = await self.jobs.latest_for(document.id)
        if latest is not None and latest.state in ("queued", "running"):
            return latest
        async with self.db.transaction() as conn:
            job_id = await next_id(conn, "jobs")
            await conn.execute(
                "INSERT INTO jobs (id, document_id, user_id) VALUES (?, ?, ?)",
                (job_id, document.id, user_id),
            )
            await conn.execute(
                f"UPDATE documents SET state = 'queued', updated_at = {_NOW} WHERE id = ?",  # noqa: S608
                (document.id,),
            )
        self.pool.submit(job_id)
        return await self.get_job(job_id)

    # --- search ---------------------------------------------------------------------------
    async def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: str = "hybrid",
        collection: str | None = None,
        tag: str | None = None,
        document_id: int | None = None,
    ) -> SearchResponse:
        """Parents best matching the query, one per parent, with citations."""
        query = query.strip()
        if not query:
            raise InvalidInput("the query is empty")
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        if document_id is not None and abs(document_id) > SQLITE_INT_MAX:
            raise OutOfRange("document")
        if k is not None and not 1 <= k <= MAX_SEARCH_K:
            raise InvalidInput(f"k must be between 1 and {MAX_SEARCH_K}")
        k = k or self.config.search_k
        _, store, retriever = await self.parts()
        chosen: Mode = mode
        for attempt in range(2):
            candidates = await asyncio.to_thread(
                retriever.candidates,
                query,
                mode=chosen,
                collection=collection,
                tag=tag,
                document_id=document_id,
            )
            live = await self.documents.by_ids(sorted({c.parent_key[0] for c in candidates}))
            candidates = [
                c
                for c in candidates
                if (d := live.get(c.parent_key[0])) is not None
                and d.state == "done"
                and not d.retired
                and d.version == c.parent_key[1]
            ]
            picked = best_per_parent(candidates)[: max(k * 3, k) if retriever.reranker else k]
            try:
                parents = await asyncio.to_thread(store.cite, [c.row for c in picked])
                break
            except (RuntimeError, OSError) as err:
                # `salesboost reindex` made a new generation live and dropped the table these
                # hits came from: search again, in the new one
                if attempt or not store.switched_under_us(err):
                    raise
        results = []
        for cand in picked:
            parent = parents.get(cand.parent_key)
            if parent is None or "text" not in cand.row:  # replaced or deleted meanwhile
                continue
            doc = live[cand.parent_key[0]]
            page = int(cand.row["page"])
            results.append(
                SearchResult(
                    score=round(cand.score, 6),
                    text=str(parent["text"]),
                    ranks=cand.ranks,
                    citation=Citation(
                        document_id=doc.id,
                        title=doc.title,
                        filename=doc.filename,
                        version=doc.version,
                        collection=doc.collection,
                        page=None if page < 0 else page,
                        pages=json.loads(parent["pages"] or "[]"),
                        section=[s for s in str(cand.row["section"]).split(" > ") if s],
                        snippet=str(cand.row["text"]),
                        passage=cand.parent_key[2],
                    ),
                )
            )
        scores = await asyncio.to_thread(retriever.rerank, query, [r.text for r in results])
        if scores is not None:
            for result, score in zip(results, scores, strict=True):
                result.rerank_score = score
            results.sort(key=lambda r: r.rerank_score or 0.0, reverse=True)
        return SearchResponse(
            query=query,
            mode=mode,
            results=results[:k],
            reranker=self.config.reranker_model or "not configured",
        )

    async def index_stats(self) -> dict[str, Any]:
        """Rows in the store and whether the vector index exists."""
        _, store, _ = await self.parts()
        children, parents = await asyncio.to_thread(store.count)
        has_index = await asyncio.to_thread(store.has_vector_index)
        meta = store.meta
        return {
            "children": children,
            "parents": parents,
            "vector_index": has_index,
            "generation": meta.generation,
            "model": meta.model,
        }


def reindex(
    settings: Settings, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Re-embed every live child with the configured model into a new generation, then switch.

    Blocking. Search keeps reading the current generation until the switch (one rename of
    ``index.json``); children written meanwhile are caught up before the switch, and rows
    deleted meanwhile are dropped. Unchanged text under the same model comes from the cache.
    """
    config = settings.knowledge
    embedder = Embedder(config, settings.models_dir, settings.state_dir)
    store = Store(
        settings.state_dir / "lancedb",
        model=embedder.name,
        dim=embedder.dim,
        vector_index_min_rows=config.vector_index_min_rows,
        vector_index_type=config.vector_index_type,
        nprobes=config.search_nprobes,
        refine_factor=config.search_refine_factor,
    )
    try:
        old = store.meta
        meta, table = store.new_generation(embedder.name, embedder.dim)
        total = store.children.count_rows()
        done = 0
        embedded_before = embedder.embedded

        def copy(rows: list[dict[str, Any]]) -> None:
            nonlocal done
            vectors, sparse = embedder.embed_passages([r["text"] for r in rows])
            for n, row in enumerate(rows):
                row["vector"] = vectors[n].tolist()
                row["sparse"] = json.dumps(sparse[n]) if sparse else ""
            store.add_to(table, rows, meta.dim)
            done += len(rows)
            if progress:
                progress(done, max(total, done))

        for rows in store.iter_children():
            copy(rows)
        # catch up with writes that landed while we copied, then switch
        live_ids = store.child_ids(store.children)
        new_ids = store.child_ids(table)
        missing = live_ids - new_ids
        if missing:
            for rows in store.iter_children():
                extra = [r for r in rows if r["id"] in missing]
                if extra:
                    copy(extra)
        gone = new_ids - live_ids
        if gone:
            table.delete("id IN (" + ",".join(f"'{i}'" for i in gone) + ")")
        store.go_live(meta, table)
        return {
            "from_generation": old.generation,
            "to_generation": meta.generation,
            "from_model": old.model,
            "model": meta.model,
            "children": table.count_rows(),
            "embedded": embedder.embedded - embedded_before,
        }
    finally:
        store.close()
        embedder.close()
