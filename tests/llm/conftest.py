"""LLM fixtures: one real backend per kind, shared by the session, driven from a loop thread.

The backends are the real ones on the bundled model: ``llama_cpp`` in this process and
``remote`` against llama-cpp-python's own OpenAI-compatible server in a subprocess.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from appliance.config import LLMConfig
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.llm.remote import RemoteBackend
from appliance.secrets import SecretValue
from appliance.testing import free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
API_KEY = "test-remote-key"


class LoopThread:
    """An asyncio loop on its own thread, so session-scoped async backends work in sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class LlamaServer:
    """`python -m llama_cpp.server` with the bundled model on a loopback port."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    str(MODEL),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--n_ctx",
                    "2048",
                    "--api_key",
                    API_KEY,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                headers = {"Authorization": f"Bearer {API_KEY}"}
                if httpx.get(self.url + "/models", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("llama_cpp.server did not start:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


def engine_config(**overrides: Any) -> LLMConfig:
    """A small shared context: 4 sequences of 2,048 tokens, a short queue."""
    values: dict[str, Any] = {
        "context_tokens": 8192,
        "max_sequences": 4,
        "queue_max": 4,
        "batch_tokens": 256,
        "request_timeout_s": 60.0,
    }
    values.update(overrides)
    return LLMConfig(**values)


@pytest.fixture(scope="session")
def local_llm(loop: LoopThread) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(engine_config(), MODEL)
    loop.run(backend.start())
    yield backend
    loop.run(backend.stop())


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = LlamaServer(tmp_path_factory.mktemp("llama-server") / "server.log")
    server.start()
    yield server
    server.kill()


def remote_config(url: str, **overrides: Any) -> LLMConfig:
    values: dict[str, Any] = {
        "backend": "remote",
        "remote_url": url,
        "remote_model": "gemma",
        "remote_json_format": "json_object",
        "remote_api": "completions",
        "remote_timeout_s": 30.0,
    }
    values.update(overrides)
    return LLMConfig(**values)


@pytest.fixture(scope="session")
def remote_llm(loop: LoopThread, llama_server: LlamaServer) -> Iterator[RemoteBackend]:
    backend = RemoteBackend(remote_config(llama_server.url), SecretValue(API_KEY))
    loop.run(backend.start())
    yield backend
    loop.run(backend.stop())
