"""What /readyz checks: the database answers, the models are present and intact, the disk has room."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread

from appliance.config import Settings
from appliance.db.database import Database
from appliance.models import HASH_CACHE, FileStatus, HashCache, ModelError, load_manifest, verify


@dataclass
class Check:
    """One readiness check's outcome."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Readiness:
    """Runs the checks; model hashing happens once, in the background, at start-up."""

    settings: Settings
    db: Database
    model_statuses: list[FileStatus] | None = None
    model_error: str | None = None
    extra: list[Check] = field(default_factory=list)
    probes: list[Callable[[], Check]] = field(default_factory=list)
    """Checks computed at each probe (the LLM backend's state and breaker)."""
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin verifying model files without holding up start-up."""
        self._task = asyncio.create_task(self._verify_models())

    async def stop(self) -> None:
        """Cancel verification if it is still running."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _verify_models(self) -> None:
        def run() -> list[FileStatus]:
            manifest = load_manifest(self.settings.models_dir)
            cache = HashCache(self.settings.state_dir / HASH_CACHE)
            return verify(self.settings.models_dir, manifest, cache)

        try:
            self.model_statuses = await anyio.to_thread.run_sync(run)
        except ModelError as err:
            self.model_error = str(err)
            self.model_statuses = []

    async def verify_models_now(self) -> list[FileStatus]:
        """Wait for the start-up verification (for `serve`'s refusal on corrupt models)."""
        if self._task is not None:
            await self._task
        return self.model_statuses or []

    async def checks(self) -> list[Check]:
        """Every check, in a fixed order."""
        out: list[Check] = []
        try:
            await self.db.ping()
            out.append(Check("database", True))
        except Exception as err:  # any failure to answer is "not ready", and says why
            out.append(Check("database", False, f"{type(err).__name__}: {err}"))
        out.append(self._models_check())
        usage = shutil.disk_usage(self.settings.state_dir)
        free_mb = usage.free // (1024 * 1024)
        need = self.settings.readiness.min_free_disk_mb
        out.append(
            Check("disk", free_mb >= need, f"{free_mb} MiB free in the state dir (need {need})")
        )
        out.extend(self.extra)
        out.extend(probe() for probe in self.probes)
        return out

    def _models_check(self) -> Check:
        if not self.settings.readiness.require_models:
            return Check("models", True, "not required by config")
        if self.model_error:
            return Check("models", False, self.model_error)
        if self.model_statuses is None:
            return Check("models", False, "verifying model files")
        # hashes were checked at start-up; each probe re-checks presence (a few stat calls)
        bad = [
            s if s.state != "ok" else FileStatus(s.model, s.path, "missing", "file disappeared")
            for s in self.model_statuses
            if s.state != "ok" or not s.path.is_file()
        ]
        if bad:
            return Check("models", False, "; ".join(f"{s.path} {s.state}: {s.detail}" for s in bad))
        return Check("models", True, f"{len(self.model_statuses)} files verified")
