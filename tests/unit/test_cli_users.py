"""`salesboost users …` on a real state dir: add, list, disable/enable, reset-password, audit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from appliance.testing import cli


def test_users_cli_round_trip(tmp_path: Path) -> None:
    added = cli(
        tmp_path,
        "users",
        "add",
        "dana",
        "--role",
        "trainee",
        "--team",
        "east",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    generated = cli(tmp_path, "users", "add", "eli", "--role", "manager", "--team", "east")
    assert "password (shown once" in generated.stdout
    listed = json.loads(cli(tmp_path, "users", "list", "--json").stdout)
    assert [(u["username"], u["role"], u["team"]) for u in listed] == [
        ("dana", "trainee", "east"),
        ("eli", "manager", "east"),
    ]
    assert cli(tmp_path, "users", "disable", "dana").returncode == 0
    assert json.loads(cli(tmp_path, "users", "list", "--json").stdout)[0]["disabled"] is True
    assert cli(tmp_path, "users", "enable", "dana").returncode == 0
    reset = cli(tmp_path, "users", "reset-password", "dana")
    assert reset.returncode == 0 and "new password for dana" in reset.stdout
    missing = cli(tmp_path, "users", "disable", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    duplicate = cli(tmp_path, "users", "add", "dana", "--role", "trainee")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    short = cli(
        tmp_path, "users", "add", "fay", "--role", "trainee", "--password-stdin", stdin="short\n"
    )
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    # the CLI refuses what the API refuses: a bidi override that makes a name read otherwise
    spoof = cli(tmp_path, "users", "add", "gil", "--role", "trainee", "--team", "east\u202eevil")
    assert spoof.returncode == 1 and "team: U+202E" in spoof.stderr, spoof.stderr
    with sqlite3.connect(tmp_path / "salesboost.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == [
        "user_created",
        "user_created",
        "user_disabled",
        "user_enabled",
        "password_reset",
    ]
