"""Ids that are never given twice.

SQLite gives a new row ``MAX(id) + 1`` of an ``INTEGER PRIMARY KEY`` table, so once the row
with the highest id is deleted (a person erased, a practice session deleted or purged, a
document removed) the next row takes that id again: an audit entry, a bookmarked report, a
data warehouse keyed by id or a job still running for the deleted row would then name the
newcomer. Migration 0008 adds an ``AFTER DELETE`` trigger to each table in ``TABLES`` that
keeps the highest id ever deleted in ``appliance_state`` (key ``max_id.<table>``); a new
row takes one more than the larger of that and the table's own highest id. Cascaded
deletes fire the triggers too, and the restore carries the marks over from the database it
replaces (``appliance.deletion_replay``), so a restored archive does not give out again the
ids the box had given since it was taken.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

TABLES = ("users", "api_tokens", "practice_sessions", "documents", "jobs")


def mark_key(table: str) -> str:
    """The ``appliance_state`` key that holds ``table``'s highest deleted id."""
    assert table in TABLES, table
    return f"max_id.{table}"


def new_id_sql(table: str) -> str:
    """An SQL expression for a new id of ``table``, for the ``id`` column of one INSERT:
    ``INSERT INTO t (id, …) VALUES ({new_id_sql("t")}, …)`` (one statement, so atomic)."""
    return (
        f"(SELECT MAX(COALESCE((SELECT MAX(id) FROM {table}), 0), "  # noqa: S608 - fixed names
        f"COALESCE((SELECT CAST(value AS INTEGER) FROM appliance_state "
        f"WHERE key = '{mark_key(table)}'), 0)) + 1)"
    )


async def next_id(conn: Any, table: str) -> int:
    """A new id of ``table``, read inside the caller's write transaction (so no other
    writer takes it before the caller's INSERT)."""
    row = await (await conn.execute(f"SELECT {new_id_sql(table)}")).fetchone()
    return int(row[0])


def carry_marks(from_db: Path, to_db: Path) -> None:
    """Raise ``to_db``'s marks to every id ``from_db`` has given (its rows and its marks).

    A restore replaces a database with an older copy: without this, the copy would give out
    again the ids of the sessions, people and documents made since its snapshot, which the
    audit entries, reports and exports taken meanwhile still name. Both databases are closed
    (the restore holds the state lock); a table ``from_db`` lacks is passed over.
    """
    with closing(sqlite3.connect(from_db)) as source:
        marks: dict[str, int] = {}
        for table in TABLES:
            try:
                row = source.execute(
                    f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {table}), 0), "  # noqa: S608 - fixed names
                    "COALESCE((SELECT CAST(value AS INTEGER) FROM appliance_state WHERE key = ?), 0))",
                    (mark_key(table),),
                ).fetchone()
            except sqlite3.OperationalError:  # an older schema: no such table yet
                continue
            marks[table] = int(row[0])
    with closing(sqlite3.connect(to_db)) as target, target:
        for table, mark in marks.items():
            target.execute(
                "INSERT INTO appliance_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO "
                "UPDATE SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', "
                "'now') WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER)",
                (mark_key(table), str(mark)),
            )
