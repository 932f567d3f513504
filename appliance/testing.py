"""A real appliance in a subprocess on a loopback port, for tests and benchmarks.

It runs the same `salesboost serve` an operator runs, on its own state directory (SQLite,
sessions, the file keyring), and the bundled models under models/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def appliance_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment for a CLI or server run on this state dir (file keyring, offline)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESBOOST")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        SALESBOOST__PATHS__STATE_DIR=str(state_dir),
        SALESBOOST__SECRETS__KEYRING="file",
        SALESBOOST__SERVER__GRACEFUL_TIMEOUT_S="10",
        SALESBOOST__DEMO__LOAD_ON_EMPTY="false",  # tests that want the demo pack set "true"
    )
    env.update(overrides)
    return env


def cli(
    state_dir: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `salesboost ARGS` against a state dir; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env or appliance_env(state_dir),
        timeout=300,
        check=False,
    )


def add_user(
    state_dir: Path,
    username: str,
    role: str,
    password: str,
    *,
    team: str = "bench",
    env: dict[str, str] | None = None,
) -> None:
    """Create a user through the real CLI (`salesboost users add --password-stdin`)."""
    result = cli(
        state_dir,
        "users",
        "add",
        username,
        "--role",
        role,
        "--team",
        team,
        "--password-stdin",
        stdin=password + "\n",
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"could not create user {username}: {result.stderr}")


class ServerProcess:
    """`salesboost serve` on a free loopback port; ``with`` starts it and waits for /readyz."""

    def __init__(self, state_dir: Path, log_path: Path | None = None, **env: str) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = appliance_env(state_dir, **env)
        self.log_path = log_path or state_dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Launch and wait until /readyz answers 200."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it; returns its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9, as a power cut would."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        """What the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
