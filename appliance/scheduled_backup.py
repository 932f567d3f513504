"""Scheduled backups: the server writes an archive into ``backup.dir`` every
``backup.every_hours`` and keeps the newest ``backup.keep``.

For a box nobody looks after (a branch office, an edge box): point ``backup.dir`` at another
disk or a mounted share and the server backs itself up, online, with the same archive as
``salesboost backup`` (:mod:`appliance.backup`). The schedule survives restarts: the next
backup is due ``every_hours`` after the newest archive in the directory (at once when there is
none). Archives are named ``salesboost-<UTC time>.tar``; only files of that pattern are ever
pruned, so the directory can hold other things. A failed backup is logged, audited
(``backup_failed``), counted on ``/metrics`` and shown on the admin's System page; the next try
comes after ``retry_minutes``. Nothing here runs when ``backup.dir`` is empty (the default).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter, Gauge

from appliance.background import BackgroundTask
from appliance.backup import backup
from appliance.config import Settings
from appliance.db.audit import AuditRepository
from appliance.errors import AppError

log = logging.getLogger(__name__)

ARCHIVE = re.compile(r"^salesboost-\d{8}T\d{6}Z\.tar$")
"""The names scheduled backups get (and the only files pruning deletes)."""

LAST_SUCCESS = Gauge(
    "salesboost_backup_last_success_timestamp_seconds",
    "When the last scheduled backup was completed (Unix time; 0 = none since start).",
)
RUNS = Counter("salesboost_backup_runs", "Scheduled backups, by result.", ["result"])


@dataclass
class BackupStatus:
    """What the System page shows about scheduled backups."""

    enabled: bool
    directory: str
    every_hours: float
    keep: int
    last_archive: str = ""
    last_at: str = ""
    last_size: int = 0
    last_seconds: float = 0.0
    last_error: str = ""
    last_error_at: str = ""
    next_due: str = ""
    archives: int = 0


def archives_in(directory: Path) -> list[Path]:
    """Scheduled archives in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if ARCHIVE.match(p.name) and p.is_file())


def archive_name(now: datetime) -> str:
    """The file name of a scheduled archive written at ``now``."""
    return f"salesboost-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar"


class BackupScheduler:
    """Runs :func:`appliance.backup.backup` on a schedule inside the server."""

    def __init__(self, settings: Settings, audit: AuditRepository) -> None:
        self.settings = settings
        self.config = settings.backup
        self.audit = audit
        self.directory = Path(self.config.dir).expanduser() if self.config.dir else None
        self.status = BackupStatus(
            enabled=self.directory is not None,
            directory=str(self.directory or ""),
            every_hours=self.config.every_hours,
            keep=self.config.keep,
        )
        self._task = BackgroundTask("scheduled-backup")
        self._next: float = 0.0

    async def start(self) -> None:
        """Start the schedule (nothing when backup.dir is empty)."""
        if self.directory is None:
            return
        existing = archives_in(self.directory)
        self.status.archives = len(existing)
        if existing:
            newest = existing[-1].stat().st_mtime
            self._next = newest + self.config.every_hours * 3600
        else:
            self._next = time.time() + self.config.first_delay_s
        self._show_next()
        self._task.start(self._run())

    async def stop(self) -> None:
        """Stop the schedule; a backup being written is abandoned (its temp file is removed)."""
        await self._task.stop()

    def _show_next(self) -> None:
        self.status.next_due = datetime.fromtimestamp(self._next, UTC).isoformat(timespec="seconds")

    async def _run(self) -> None:
        while True:
            wait = self._next - time.time()
            if wait > 0:
                await asyncio.sleep(min(wait, 60))  # re-checked each minute: clock changes
                continue
            ok = await self.run_once()
            delay = self.config.every_hours * 3600 if ok else self.config.retry_minutes * 60
            self._next = time.time() + delay
            self._show_next()

    async def run_once(self) -> bool:
        """Write one archive now and prune old ones; True when it was written."""
        assert self.directory is not None
        now = datetime.now(UTC)
        dest = self.directory / archive_name(now)
        try:
            if not self.directory.is_dir():
                raise FileNotFoundError(f"backup.dir {self.directory} does not exist")
            result = await asyncio.to_thread(
                backup, self.settings, dest, with_secrets=self.config.with_secrets
            )
        except (AppError, OSError) as err:
            message = str(err)
            log.error("scheduled backup to %s failed: %s", dest, message)
            RUNS.labels("failed").inc()
            self.status.last_error = message
            self.status.last_error_at = now.isoformat(timespec="seconds")
            await self.audit.record(
                "backup_failed", actor="scheduler", target=str(dest), detail={"error": message}
            )
            return False
        removed = self._prune()
        RUNS.labels("written").inc()
        LAST_SUCCESS.set(time.time())
        self.status.last_archive = str(result.path)
        self.status.last_at = now.isoformat(timespec="seconds")
        self.status.last_size = result.size
        self.status.last_seconds = round(result.seconds, 1)
        self.status.last_error = ""
        self.status.archives = len(archives_in(self.directory))
        log.info(
            "scheduled backup written: %s (%d bytes, %.1f s; %d old archives removed)",
            result.path,
            result.size,
            result.seconds,
            len(removed),
        )
        await self.audit.record(
            "backup_written",
            actor="scheduler",
            target=str(result.path),
            detail={"bytes": result.size, "seconds": round(result.seconds, 1), "pruned": removed},
        )
        return True

    def _prune(self) -> list[str]:
        """Delete the oldest scheduled archives beyond ``keep``; their names."""
        assert self.directory is not None
        found = archives_in(self.directory)
        doomed = found[: max(0, len(found) - self.config.keep)]
        for path in doomed:
            path.unlink(missing_ok=True)
        return [p.name for p in doomed]
