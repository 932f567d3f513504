"""Plain-SQL migrations: ``migrations/NNNN_name.sql`` applied in order, each in one transaction.

Each applied file is recorded in ``schema_version`` with its sha256; a file whose
checksum changed after it was applied stops start-up with a message naming it.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.config import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database and the migration files disagree, or a migration failed."""

    code = "migration_error"


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's bytes."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in version order; a gap or duplicate version is an error."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path, path.read_text(encoding="utf-8")))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{migration.path.name}: expected version {expected:04d} (no gaps, no duplicates)"
            )
    return found


_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


def connect_sync(db_path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the appliance's pragmas (for migrations and the CLI)."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def applied(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the applied migrations."""
    conn.execute(_SCHEMA_VERSION)
    rows = conn.execute("SELECT version, name, checksum FROM schema_version").fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def check(conn: sqlite3.Connection, migrations: list[Migration]) -> list[Migration]:
    """Verify applied checksums; return the migrations still pending."""
    done = applied(conn)
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(done.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} but no such file exists: "
                "this build is older than the database"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.path.name} was changed after it was applied "
                f"(checksum {checksum[:12]}… in the database, {migration.checksum[:12]}… on disk); "
                "restore the file and add a new migration instead"
            )
    return [m for m in migrations if m.version not in done]


def migrate(db_path: Path, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations, each in its own transaction; returns those applied."""
    migrations = discover(directory)
    conn = connect_sync(db_path)
    try:
        pending = check(conn, migrations)
        for migration in pending:
            _apply(conn, migration)
        return pending
    finally:
        conn.close()


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    # executescript runs the whole file; BEGIN/COMMIT around it keeps it one transaction,
    # and the schema_version row commits with it or not at all.
    # the values are an int, a [a-z0-9_] name and a hex digest, checked by discover(): safe to inline
    record = (
        "INSERT INTO schema_version (version, name, checksum) VALUES "  # noqa: S608
        f"({migration.version}, '{migration.name}', '{migration.checksum}');"
    )
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n;{record}\nCOMMIT;")
    except sqlite3.Error as err:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise MigrationError(f"{migration.path.name} failed and was rolled back: {err}") from None
