"""Types and lint hold for the whole package: `mypy --strict` and `ruff` (check + format)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"), "--strict", "appliance")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check() -> None:
    result = run(str(BIN / "ruff"), "check", "appliance", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", "appliance", "tests")
    assert result.returncode == 0, result.stdout + result.stderr
