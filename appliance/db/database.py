"""The SQLite database: one writer connection (``BEGIN IMMEDIATE``) and one reader, via aiosqlite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import aiosqlite
import msgspec

from appliance.errors import SQLITE_INT_MAX

RowId = Annotated[int, msgspec.Meta(ge=1, le=SQLITE_INT_MAX)]
"""A row id or version number as a request may carry it (in a JSON body or a frame)."""

Row = aiosqlite.Row
Params = Iterable[Any] | dict[str, Any]


class DatabaseClosedError(Exception):
    """The database was used before ``start()`` or after ``close()``."""

    code = "database_closed"


async def _open(path: Path, readonly: bool) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=10000")
    await conn.execute("PRAGMA synchronous=NORMAL")
    # deleted rows (a practice transcript, an erased user) are overwritten with zeros, not
    # left readable in free pages of the file until they happen to be reused
    await conn.execute("PRAGMA secure_delete=ON")
    if readonly:
        await conn.execute("PRAGMA query_only=ON")
    return conn


class Database:
    """All writes go through one connection, serialized by a lock; reads use a second one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def start(self) -> None:
        """Open both connections."""
        self._writer = await _open(self.path, readonly=False)
        self._reader = await _open(self.path, readonly=True)

    async def close(self) -> None:
        """Close both connections; later use raises DatabaseClosedError."""
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        async with self._write_lock:
            if writer is not None:
                await writer.close()
        if reader is not None:
            await reader.close()

    async def __aenter__(self) -> Database:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _read_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise DatabaseClosedError("the database is not open (start() not called, or closed)")
        return self._reader

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """First row of a read query."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """All rows of a read query (one hop to the connection's thread, not two)."""
        return list(await self._read_conn().execute_fetchall(sql, params))

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """First column of the first row, or None."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    @asynccontextmanager
    async def _writer_alone(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection, held by the caller alone (no transaction open)."""
        async with self._write_lock:
            conn = self._writer
            if conn is None:
                raise DatabaseClosedError(
                    "the database is not open (start() not called, or closed)"
                )
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on error)."""
        async with self._writer_alone() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                await conn.execute("COMMIT")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction; returns lastrowid."""
        async with self.transaction() as conn:
            cur = await conn.execute(sql, params)
            return cur.lastrowid or 0

    async def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database file and truncate it (``wal_checkpoint(TRUNCATE)``).

        After a deletion this leaves no old copy of the deleted pages in the WAL; returns
        SQLite's (busy, WAL frames, frames checkpointed): busy 1 means a reader held it back.
        """
        async with self._writer_alone() as conn:
            cur = await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = await cur.fetchone()
            return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))

    async def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on the writer connection: it changes when another
        connection commits to the file (another process, such as the CLI), never for this
        process's own writes (they all go through the writer)."""
        async with self._writer_alone() as conn:
            cur = await conn.execute("PRAGMA data_version")
            row = await cur.fetchone()
            return 0 if row is None else int(row[0])

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        await self.fetchone("SELECT 1")
