"""One contract, every real backend: llama_cpp in-process and remote (llama_cpp.server)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from appliance.config import LLMConfig
from appliance.llm.base import Completion, GenerateRequest, LLMBackend, Message
from appliance.llm.errors import LLMNotStarted
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.llm.remote import RemoteBackend
from appliance.llm.samples import TurnScore, conversation, score_request

from tests.llm.conftest import MODEL, LoopThread


@pytest.fixture(params=["llama_cpp", "remote"])
def backend(request: pytest.FixtureRequest) -> LLMBackend:
    fixture = "local_llm" if request.param == "llama_cpp" else "remote_llm"
    value: LLMBackend = request.getfixturevalue(fixture)
    return value


def test_stream_arrives_in_order_and_concatenates_to_the_final_text(
    backend: LLMBackend, loop: LoopThread
) -> None:
    async def run() -> tuple[list[str], Completion | None]:
        stream = backend.stream(conversation("cars", 2, max_tokens=24))
        pieces = [piece async for piece in stream]
        return pieces, stream.completion

    pieces, completion = loop.run(run())
    assert completion is not None
    assert len(pieces) > 1, pieces
    assert "".join(pieces) == completion.text
    assert completion.text.strip()
    assert completion.finish_reason in ("stop", "length")
    assert completion.completion_tokens >= len([p for p in pieces if p])


def test_generate_json_is_valid_on_every_try(backend: LLMBackend, loop: LoopThread) -> None:
    for persona in ("cars", "software", "insurance"):
        score = loop.run(backend.generate_json(TurnScore, score_request(persona)))
        assert isinstance(score, TurnScore)
        assert 0 <= score.score <= 10
        assert len(score.reason) <= 80


def test_breaking_out_of_a_stream_cancels_and_the_backend_keeps_serving(
    backend: LLMBackend, loop: LoopThread
) -> None:
    async def first_piece_only() -> str:
        async for piece in backend.stream(conversation("coffee", 1, max_tokens=48)):
            return piece
        return ""

    assert loop.run(first_piece_only())
    completion = loop.run(backend.generate(conversation("coffee", 2, max_tokens=8)))
    assert completion.completion_tokens >= 1


def test_a_task_cancelled_mid_stream_does_not_poison_the_next_request(
    backend: LLMBackend, loop: LoopThread
) -> None:
    async def cancel_midway() -> None:
        task = asyncio.create_task(backend.generate(conversation("insurance", 3, max_tokens=48)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop.run(cancel_midway())
    assert loop.run(backend.generate(conversation("insurance", 1, max_tokens=8))).text


def test_use_before_start_says_what_was_forgotten(loop: LoopThread) -> None:
    for backend in (
        LlamaCppBackend(LLMConfig(), MODEL),
        RemoteBackend(LLMConfig(backend="remote", remote_url="http://127.0.0.1:9/v1")),
    ):
        with pytest.raises(LLMNotStarted, match="start"):
            loop.run(backend.generate(conversation("cars", 1)))


def test_messages_with_a_system_prompt_and_roles(backend: LLMBackend, loop: LoopThread) -> None:
    request = GenerateRequest(
        messages=[
            Message(role="system", content="You are a helpful assistant."),
            Message(role="user", content="Say hello."),
        ],
        max_tokens=12,
    )
    completion = loop.run(backend.generate(request))
    assert completion.completion_tokens >= 1
    assert msgspec.json.encode(completion)  # a plain Struct, serialisable as it is
