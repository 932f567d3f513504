"""Knowledge documents: one row per version of an uploaded file."""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from appliance.db.database import Database, Row

DocState = Literal["queued", "running", "done", "failed"]

_COLUMNS = (
    "id, title, filename, sniffed_type, sha256, size, version, collection, tags, uploader_id, "
    "state, routes, warnings, pages, chunk_count, parent_count, retired, created_at, updated_at, "
    "(SELECT username FROM users WHERE users.id = documents.uploader_id) AS uploader"
)


class Document(msgspec.Struct, kw_only=True, frozen=True):
    """A document version as stored."""

    id: int
    title: str
    filename: str
    sniffed_type: str
    sha256: str
    size: int
    version: int
    collection: str
    tags: list[str]
    uploader_id: int | None
    state: DocState
    routes: list[dict[str, Any]]
    warnings: list[str]
    pages: int | None
    chunk_count: int
    parent_count: int
    retired: bool
    created_at: str
    updated_at: str
    uploader: str | None = None
    """The uploader's username; None for a `salesboost ingest` or an erased uploader."""


def _document(row: Row) -> Document:
    data = dict(row)
    for key in ("tags", "routes", "warnings"):
        data[key] = json.loads(data[key])
    data["retired"] = bool(data["retired"])
    return msgspec.convert(data, Document)


class DocumentRepository:
    """Reads and writes of documents."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, document_id: int) -> Document | None:
        """One document version."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM documents WHERE id = ?",  # noqa: S608
            (document_id,),
        )
        return None if row is None else _document(row)

    async def by_sha(self, collection: str, sha256: str) -> Document | None:
        """The newest version with this content in this collection."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM documents WHERE collection = ? AND sha256 = ? "  # noqa: S608
            "ORDER BY version DESC LIMIT 1",
            (collection, sha256),
        )
        return None if row is None else _document(row)

    async def latest_version(self, collection: str, title: str) -> int:
        """Highest version number of a title in a collection (0 when new)."""
        value = await self.db.fetchval(
            "SELECT MAX(version) FROM documents WHERE collection = ? AND title = ?",
            (collection, title),
        )
        return int(value or 0)

    async def list_documents(
        self,
        *,
        collection: str | None = None,
        tag: str | None = None,
        state: str | None = None,
        include_retired: bool = False,
        limit: int = 500,
        before: int | None = None,
        after: int | None = None,
    ) -> list[Document]:
        """Documents, newest first, filtered; ``before`` (an id) pages back, ``after`` (an id)
        gives the ones past it oldest first."""
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        if collection is not None:
            where.append("collection = ?")
            params.append(collection)
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(documents.tags) WHERE value = ?)")
            params.append(tag)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if not include_retired:
            where.append("retired = 0")
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if after is not None:
            where.append("id > ?")
            params.append(after)
        order = "id DESC" if after is None else "id"
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM documents WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY {order} LIMIT ?",
            [*params, limit],
        )
        return [_document(r) for r in rows]

    async def by_ids(self, ids: list[int]) -> dict[int, Document]:
        """Documents by id (missing ids are absent)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM documents WHERE id IN ({marks})",  # noqa: S608
            ids,
        )
        return {int(r["id"]): _document(r) for r in rows}

    async def collections(self) -> list[tuple[str, int, int]]:
        """(collection, live documents, live chunks) for each collection."""
        rows = await self.db.fetchall(
            "SELECT collection, COUNT(*), COALESCE(SUM(chunk_count), 0) FROM documents "
            "WHERE retired = 0 GROUP BY collection ORDER BY collection"
        )
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def retired_ids(self) -> list[int]:
        """Ids of retired versions (their chunks should be gone from the store)."""
        rows = await self.db.fetchall("SELECT id FROM documents WHERE retired = 1")
        return [int(r[0]) for r in rows]

    async def all_ids(self) -> list[int]:
        """Every document id."""
        return [int(r[0]) for r in await self.db.fetchall("SELECT id FROM documents")]
