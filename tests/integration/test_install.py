"""install.sh: a second run on an installed tree is fast and changes nothing; the script is clean."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from appliance.config import PROJECT_ROOT


def test_second_install_is_fast_and_idempotent() -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["./install.sh", "--dev"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Python packages already installed" in result.stdout, result.stdout[-2000:]
    assert "bundled models already in place" in result.stdout
    assert "admin account already exists" in result.stdout  # the password is printed only once
    assert elapsed < 60, f"second install took {elapsed:.0f} s"


def test_install_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed: ./install.sh --dev installs it when run as root")
    result = subprocess.run(
        ["shellcheck", "install.sh", ".ci/run"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
