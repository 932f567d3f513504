"""The remote backend against a real OpenAI-compatible server, and its circuit breaker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from appliance.config import load_settings
from appliance.llm.errors import LLMUnavailable
from appliance.llm.factory import build_backend
from appliance.llm.remote import RemoteBackend, RemoteError
from appliance.llm.samples import conversation
from appliance.secrets import SecretStore, SecretValue
from prometheus_client import REGISTRY

from tests.llm.conftest import API_KEY, LlamaServer, LoopThread, remote_config


def breaker_gauge() -> float | None:
    return REGISTRY.get_sample_value("salesboost_llm_breaker_open", {"backend": "remote"})


def test_the_key_comes_from_the_secret_store(
    tmp_path: Path, loop: LoopThread, llama_server: LlamaServer
) -> None:
    env = {
        "SALESBOOST__PATHS__STATE_DIR": str(tmp_path),
        "SALESBOOST__SECRETS__KEYRING": "file",
        "SALESBOOST__LLM__BACKEND": "remote",
        "SALESBOOST__LLM__REMOTE_URL": llama_server.url,
        "SALESBOOST__LLM__REMOTE_API": "completions",
    }
    settings = load_settings(None, environ=env).settings
    secrets = SecretStore(settings, environ={})
    secrets.set("llm_remote_api_key", API_KEY)
    backend = build_backend(settings, secrets)
    assert isinstance(backend, RemoteBackend)

    async def run() -> str:
        async with backend:
            return (await backend.generate(conversation("cars", 1, max_tokens=8))).text

    assert loop.run(run())


def test_a_wrong_key_is_a_typed_error_that_names_the_status(
    loop: LoopThread, llama_server: LlamaServer
) -> None:
    backend = RemoteBackend(remote_config(llama_server.url), SecretValue("wrong"))

    async def run() -> None:
        async with backend:
            await backend.generate(conversation("cars", 1, max_tokens=8))

    with pytest.raises(RemoteError, match="401") as info:
        loop.run(run())
    assert info.value.code == "llm_remote_error"
    assert "wrong" not in str(info.value.detail)


def test_breaker_opens_when_the_server_dies_and_closes_when_it_is_back(
    tmp_path: Path, loop: LoopThread
) -> None:
    server = LlamaServer(tmp_path / "server.log")
    server.start()
    backend = RemoteBackend(
        remote_config(server.url, breaker_failures=2, breaker_reset_s=1.0), SecretValue(API_KEY)
    )
    request = conversation("software", 1, max_tokens=6)
    try:
        loop.run(backend.start())
        assert loop.run(backend.generate(request)).completion_tokens >= 1
        assert backend.state().breaker == "closed"
        server.kill()
        for _ in range(2):
            with pytest.raises(RemoteError, match="unreachable"):
                loop.run(backend.generate(request))
        assert backend.state().breaker == "open"
        assert not backend.state().ready
        assert breaker_gauge() == 2
        started = time.monotonic()
        with pytest.raises(LLMUnavailable) as info:
            loop.run(backend.generate(request))
        assert time.monotonic() - started < 0.5  # refused at once, no connection attempt
        assert info.value.detail["retry_after"] >= 1
        server.start()  # same port
        time.sleep(1.1)
        assert backend.state().breaker == "half-open"
        assert loop.run(backend.generate(request)).completion_tokens >= 1  # the probe
        assert backend.state().breaker == "closed"
        assert backend.state().ready
        assert breaker_gauge() == 0
    finally:
        loop.run(backend.stop())
        server.kill()
