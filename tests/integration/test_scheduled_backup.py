"""Scheduled backups: a real server writes, prunes, reports and retries its own archives."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess, cli

from tests.conftest import Account, add_user, login

pytestmark = pytest.mark.timeout(600)

ADMIN = Account("sched-admin", "admin", "hq")


def _until(what: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s")


def _audited(admin: httpx.Client, action: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = admin.get("/api/audit", params={"action": action}).json()
    return rows


def _just_after_a_backup(admin: httpx.Client) -> None:
    """Return as soon as another backup has been written: the next is every_hours away."""
    before = len(_audited(admin, "backup_written"))
    _until(lambda: len(_audited(admin, "backup_written")) > before)


def _metric(admin: httpx.Client, result: str) -> float:
    text = admin.get("/metrics").text
    found = re.search(rf'^salesboost_backup_runs_total{{result="{result}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_server_backs_itself_up_keeps_the_newest_and_retries(tmp_path: Path) -> None:
    state, backups = tmp_path / "state", tmp_path / "backups"
    backups.mkdir()
    (backups / "notes.txt").write_text("not an archive of the schedule")
    (backups / "salesboost-by-hand.tar").write_bytes(b"taken by hand")
    add_user(state, ADMIN)
    with ServerProcess(
        state,
        SALESBOOST__BACKUP__DIR=str(backups),
        SALESBOOST__BACKUP__EVERY_HOURS="0.002",  # 7.2 s
        SALESBOOST__BACKUP__KEEP="2",
        SALESBOOST__BACKUP__FIRST_DELAY_S="0",
        SALESBOOST__BACKUP__RETRY_MINUTES="0.05",  # 3 s
    ) as server:
        admin = login(server, ADMIN)
        _until(lambda: len(_audited(admin, "backup_written")) >= 2)
        _just_after_a_backup(admin)  # the third: one archive must have been pruned
        archives = sorted(p.name for p in backups.glob("salesboost-2*.tar"))
        assert len(archives) == 2, archives  # the oldest went
        assert (backups / "notes.txt").exists() and (backups / "salesboost-by-hand.tar").exists()
        assert list(backups.glob(".*")) == []  # no temporary file left behind
        checked = cli(state, "backup", "--verify", str(backups / archives[-1]))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert _metric(admin, "written") >= 3
        newest = _audited(admin, "backup_written")[0]
        assert newest["detail"]["bytes"] > 0
        system = admin.get("/admin/system").text
        assert 'id="backup-status"' in system and str(backups) in system

        # the directory goes away (an unmounted share): a typed failure, shown, then a retry
        _just_after_a_backup(admin)
        backups.rename(tmp_path / "unmounted")
        failed = _until(lambda: _audited(admin, "backup_failed"))
        assert "does not exist" in failed[0]["detail"]["error"]
        assert _metric(admin, "failed") >= 1
        assert "does not exist" in admin.get("/admin/system").text
        before = len(_audited(admin, "backup_written"))
        (tmp_path / "unmounted").rename(backups)
        _until(lambda: len(_audited(admin, "backup_written")) > before)
        assert len(list(backups.glob("salesboost-2*.tar"))) == 2


def test_doctor_reports_the_schedule(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    off = cli(state, "doctor", "--json")
    assert '"backups"' in off.stdout and "scheduled backups off" in off.stdout
    env_dir = tmp_path / "missing"
    from appliance.testing import appliance_env

    missing = cli(
        state, "doctor", "--json", env=appliance_env(state, SALESBOOST__BACKUP__DIR=str(env_dir))
    )
    assert "is not writable" in missing.stdout
    # archives kept longer than the retention period keep what it deleted: doctor says so
    kept = tmp_path / "kept"
    kept.mkdir()
    longer = cli(
        state,
        "doctor",
        "--json",
        env=appliance_env(
            state,
            SALESBOOST__BACKUP__DIR=str(kept),
            SALESBOOST__PRACTICE__RETENTION_DAYS="3",
        ),
    )
    assert "span 7 days, longer than practice.retention_days=3" in longer.stdout
    assert "backup.keep=3 fits" in longer.stdout
    within = cli(
        state,
        "doctor",
        "--json",
        env=appliance_env(
            state,
            SALESBOOST__BACKUP__DIR=str(kept),
            SALESBOOST__PRACTICE__RETENTION_DAYS="30",
        ),
    )
    assert "longer than practice.retention_days" not in within.stdout
