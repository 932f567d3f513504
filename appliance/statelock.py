"""The state directory's lock: one `salesboost serve` (or one `restore`) per state dir.

`serve` holds an exclusive ``fcntl.flock`` on ``<state_dir>/salesboost.lock`` for its whole
life; the kernel drops it when the process ends, however it ends (``kill -9`` included), so
a stale lock file never blocks a restart. A second `serve` on the same state dir, and a
`restore` into a state dir a server is using, are refused with ``StateInUse``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from appliance.errors import AppError

LOCK_NAME = "salesboost.lock"


class StateInUse(AppError):
    """Another process (a running `salesboost serve`) holds the state directory."""

    status_code = 409
    code = "state_in_use"


def lock_path(state_dir: Path) -> Path:
    """Where the lock file of a state dir lives."""
    return state_dir / LOCK_NAME


def hold_state_lock(state_dir: Path, *, purpose: str = "salesboost serve") -> int:
    """Take the state dir's lock and return its file descriptor (keep it open to keep the lock).

    Raises StateInUse, naming the holder's pid, when another process holds it.
    """
    path = lock_path(state_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StateInUse(
            f"the state directory {state_dir} is in use by another process"
            f"{holder or ' (a running `salesboost serve`?)'}: stop it first",
            detail={"state_dir": str(state_dir)},
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
    return fd


def release_state_lock(fd: int) -> None:
    """Drop a lock taken by hold_state_lock."""
    with contextlib.suppress(OSError):
        os.close(fd)


def state_in_use(state_dir: Path) -> bool:
    """Whether a process holds the state dir's lock now (without taking it for long)."""
    if not lock_path(state_dir).exists():
        return False
    try:
        fd = hold_state_lock(state_dir, purpose="check")
    except StateInUse:
        return True
    release_state_lock(fd)
    return False


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    pid, _, what = text.partition(" ")
    return f" (pid {pid}: {what})" if pid.isdigit() else ""
