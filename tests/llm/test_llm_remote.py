"""The remote backend against a real OpenAI-compatible server, and its circuit breaker."""

from __future__ import annotations

import time
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from appliance.config import load_settings
from appliance.llm.base import Completion, GenerateRequest
from appliance.llm.errors import LLMUnavailable
from appliance.llm.factory import build_backend
from appliance.llm.prompts.render import Prompt
from appliance.llm.remote import RemoteBackend, RemoteError
from appliance.llm.samples import PERSONAS, conversation
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


def _server_count(server: LlamaServer, text: str) -> int:
    """The real server's own token count of ``text``."""
    root = server.url.removesuffix("/v1")
    resp = httpx.post(
        root + "/extras/tokenize/count",
        json={"input": text},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    resp.raise_for_status()
    return int(resp.json()["count"])


LONG_REPLIES = [
    "That sounds expensive, tell me more about the price and the warranty please."
] * 120


@pytest.mark.parametrize("tokenizer", ["auto", "estimate"])
def test_a_prompt_longer_than_the_remote_context_is_trimmed_by_the_local_policy(
    loop: LoopThread, llama_server: LlamaServer, tokenizer: str
) -> None:
    """The server runs with n_ctx 2048; the transcript is far longer."""
    request = conversation("software", 120, replies=LONG_REPLIES, max_tokens=16)
    full = RemoteBackend(remote_config(llama_server.url), SecretValue(API_KEY)).format.render(
        request.messages, request.reply_name
    )
    assert _server_count(llama_server, full.text) > 2 * 2048  # far past the server's context

    # told a larger context than the server has, the prompt overflows it: the server breaks
    # off the stream (llama-cpp-python's way of refusing it), a typed error here
    liar = RemoteBackend(
        remote_config(llama_server.url, remote_context_tokens=16_384), SecretValue(API_KEY)
    )

    async def refused() -> None:
        async with liar:
            await liar.generate(request)

    with pytest.raises(RemoteError, match="ended the stream"):
        loop.run(refused())

    backend = RemoteBackend(
        remote_config(llama_server.url, remote_context_tokens=2048, remote_tokenizer=tokenizer),
        SecretValue(API_KEY),
    )

    completion, prompt = _generate_and_prompt(loop, backend, request, chat=False)
    assert completion.completion_tokens >= 1
    assert backend.tokenizer == ("extras" if tokenizer == "auto" else "estimate")
    assert prompt.dropped_turns > 0 and not prompt.truncated
    assert prompt.messages[0].role == "system"  # the system prompt is kept...
    assert prompt.text.startswith(PERSONAS["software"][0])
    assert prompt.messages[-1] == request.messages[-1]  # ...and the latest turns
    used = _server_count(llama_server, prompt.text)
    assert used <= 2048 - 16
    if tokenizer == "auto":  # the server's own count: trimmed no more than needed
        assert used > 2048 - 16 - 200
    else:  # the estimate over-counts English: trimmed early, never over
        assert used > (2048 - 16) // 2


def _generate_and_prompt(
    loop: LoopThread, backend: RemoteBackend, request: GenerateRequest, *, chat: bool
) -> tuple[Completion, Prompt]:
    """Generate through the real server, then the prompt the backend built (trimmed) for it."""

    async def run() -> tuple[Completion, Prompt]:
        async with backend:
            done = await backend.generate(request)
            return done, await anyio.to_thread.run_sync(lambda: backend.prompt(request, chat=chat))

    return loop.run(run())


def test_chat_api_prompts_are_trimmed_as_messages(
    loop: LoopThread, llama_server: LlamaServer
) -> None:
    request = conversation("software", 120, replies=LONG_REPLIES, max_tokens=16)
    backend = RemoteBackend(
        remote_config(llama_server.url, remote_context_tokens=2048, remote_api="chat"),
        SecretValue(API_KEY),
    )

    completion, prompt = _generate_and_prompt(loop, backend, request, chat=True)
    assert completion.completion_tokens >= 1
    assert 0 < prompt.dropped_turns < len(request.messages)
    assert prompt.messages[0] == request.messages[0]
    assert prompt.messages[-1] == request.messages[-1]
