"""Migrations: fresh, incremental, tampered checksum refused, failure rolled back."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from appliance.db.migrations import MIGRATIONS_DIR, MigrationError, discover, migrate
from appliance.testing import appliance_env, cli


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    applied = migrate(db)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert {"users", "teams", "api_tokens", "audit_log", "schema_version"} <= tables(db)
    assert migrate(db) == []  # a second run has nothing to do
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_incremental_migration_applies_only_the_new_file(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    db = tmp_path / "s.db"
    migrate(db, directory)
    n = len(discover(directory)) + 1
    (directory / f"{n:04d}_widgets.sql").write_text(
        "CREATE TABLE widgets (id INTEGER PRIMARY KEY);\n"
    )
    applied = migrate(db, directory)
    assert [m.name for m in applied] == ["widgets"]
    assert "widgets" in tables(db)
    with sqlite3.connect(db) as conn:
        versions = [
            r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")
        ]
    assert versions == list(range(1, n + 1))


def test_tampered_migration_is_refused(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    db = tmp_path / "s.db"
    migrate(db, directory)
    first = sorted(directory.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        migrate(db, directory)


def test_failed_migration_rolls_back_whole(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    db = tmp_path / "s.db"
    migrate(db, directory)
    n = len(discover(directory)) + 1
    (directory / f"{n:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    with pytest.raises(MigrationError, match="rolled back"):
        migrate(db, directory)
    assert "half_done" not in tables(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == n - 1


def test_gap_in_numbering_is_refused(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "0010_skipped.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="expected version"):
        discover(directory)


def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    db = tmp_path / "s.db"
    n = len(discover(directory)) + 1
    extra = directory / f"{n:04d}_future.sql"
    extra.write_text("SELECT 1;\n")
    migrate(db, directory)
    extra.unlink()
    with pytest.raises(MigrationError, match="older than the database"):
        migrate(db, directory)


def test_serve_refuses_a_tampered_database(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = appliance_env(state)
    assert cli(state, "migrate", env=env).returncode == 0
    with sqlite3.connect(state / "salesboost.db") as conn:
        conn.execute("UPDATE schema_version SET checksum = 'deadbeef' WHERE version = 1")
    result = cli(state, "serve", "--port", "1", env=env)
    assert result.returncode == 1
    assert "0001_foundation.sql was changed after it was applied" in result.stderr


def hold_from(directory: Path, version: int) -> list[Path]:
    """Move the migrations from ``version`` on aside (an install from before them); returns
    where they were, for ``release``."""
    held = directory.parent / "held"
    held.mkdir(exist_ok=True)
    later = [m.path for m in discover(directory) if m.version >= version]
    for path in later:
        path.rename(held / path.name)
    return later


def release(later: list[Path]) -> None:
    """Put the held migrations back."""
    for path in later:
        (path.parent.parent / "held" / path.name).rename(path)


def test_old_reports_of_sessions_without_turns_become_unscored(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    later = hold_from(directory, 6)
    assert later[0].name == "0006_unscored_reports.sql"
    db = tmp_path / "s.db"
    migrate(db, directory)  # an install from before the change, with two old reports
    old_body = '{"overall": 0.0, "dimensions": [], "generated_by": "llm"}'
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO users (id, username, password_hash, role) VALUES (1, 't', 'x', 'trainee')"
        )
        for sid, turns in ((1, 0), (2, 3)):
            conn.execute(
                "INSERT INTO practice_sessions (id, user_id, scenario_id, persona_id, rubric_id, "
                "rubric_version, state, turns) VALUES (?, 1, 1, 1, 1, 1, 'ended', ?)",
                (sid, turns),
            )
            conn.execute(
                "INSERT INTO practice_reports (session_id, rubric_id, rubric_version, overall, body) "
                "VALUES (?, 1, 1, ?, ?)",
                (sid, 0.0 if turns == 0 else 3.5, old_body),
            )
    release(later)
    assert [m.name for m in migrate(db, directory)] == [
        "unscored_reports",
        "session_end_reason",
        "ids_never_reused",
    ]
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT session_id, json_extract(body, '$.scored'), "
            "json_extract(body, '$.not_scored_reason') FROM practice_reports ORDER BY session_id"
        ).fetchall()
    assert rows == [(1, 0, "no_turns"), (2, None, None)]  # the session with turns is untouched


def test_sessions_ended_before_end_reasons_were_kept_take_theirs_from_the_event(
    tmp_path: Path,
) -> None:
    directory = copy_migrations(tmp_path)
    later = hold_from(directory, 7)
    assert later[0].name == "0007_session_end_reason.sql"
    db = tmp_path / "s.db"
    migrate(db, directory)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO users (id, username, password_hash, role) VALUES (1, 't', 'x', 'trainee')"
        )
        for sid, state, reason in (
            (1, "ended", "idle"),
            (2, "ended", "trainee"),
            (3, "active", None),
        ):
            conn.execute(
                "INSERT INTO practice_sessions (id, user_id, scenario_id, persona_id, rubric_id, "
                "rubric_version, state) VALUES (?, 1, 1, 1, 1, 1, ?)",
                (sid, state),
            )
            conn.execute(
                "INSERT INTO practice_events (session_id, seq, type, body) VALUES (?, 1, 'hello', '{}')",
                (sid,),
            )
            if reason:
                conn.execute(
                    "INSERT INTO practice_events (session_id, seq, type, body) "
                    "VALUES (?, 2, 'session_ended', json_object('type', 'session_ended', 'reason', ?))",
                    (sid, reason),
                )
    release(later)
    assert [m.name for m in migrate(db, directory)] == [
        "session_end_reason",
        "ids_never_reused",
    ]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, end_reason FROM practice_sessions ORDER BY id").fetchall()
    assert rows == [(1, "idle"), (2, "trainee"), (3, None)]
