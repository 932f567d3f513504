"""The same interface against an OpenAI-compatible server (vLLM, llama-server, llama_cpp.server).

Streaming ``/chat/completions`` (or ``/completions`` with the transcript prompt, for base
models served without a chat template), server-sent events parsed as they arrive. Structured
output is sent as ``response_format`` (``json_schema`` as OpenAI and vLLM take it, or
``json_object`` with a ``schema`` as llama-cpp-python's server takes it) and validated here
as for the local backend. The API key comes from the secret store, never from config.

Long prompts are trimmed by the local engine's policy (:mod:`appliance.llm.prompts.render`:
system messages and the latest turns kept, the oldest turns dropped) to the remote model's
context (``llm.remote_context_tokens``, or what the server reports: vLLM's ``max_model_len``
in ``/v1/models``, llama-server's ``n_ctx`` in ``/props``; else 4,096) less the reply's
``max_tokens`` (at most half the context, as locally). Tokens are counted by the server's
own tokenizer when it has a tokenize endpoint (llama-cpp-python ``/extras/tokenize/count``,
llama-server and vLLM ``/tokenize``), else estimated at one token per 3 UTF-8 bytes, which
over-counts English (~4 bytes a token) and matches CJK text (3 bytes, about one token), so
an estimated prompt is trimmed early rather than overflowing. With ``remote_api = "chat"``
the server applies its own template; the count there is of a plain role-tagged rendering,
and :data:`CHAT_MARGIN` tokens are kept free for the template's own markup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

import anyio.to_thread
import httpx

from appliance.config import LLMConfig
from appliance.llm.base import Completion, GenerateRequest, LLMBackend, Message
from appliance.llm.errors import LLMBusy, LLMError
from appliance.llm.prompts.render import (
    Prompt,
    PromptFormat,
    Rendered,
    TranscriptFormat,
    alternate_roles,
    build_prompt,
)
from appliance.llm.structured import CompiledSchema
from appliance.secrets import SecretValue

log = logging.getLogger(__name__)
DEFAULT_CONTEXT = 4096
"""The remote model's context when neither the config nor the server says."""
CHAT_MARGIN = 16
"""Tokens kept free for a server-side chat template's markup (chat API)."""
BYTES_PER_TOKEN = 3
"""The token estimate when the server has no tokenizer: one token per this many UTF-8 bytes."""


def estimate_tokens(text: str) -> int:
    """A conservative token count for servers without a tokenize endpoint."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN) + 1


class _ChatCountFormat(PromptFormat):
    """A role-tagged rendering of chat messages, to count what a server's template will see."""

    def render(self, messages: Sequence[Message], reply_name: str) -> Rendered:
        """One ``<|role|>`` header and the content per message."""
        text = "".join(f"<|{m.role}|>\n{m.content}\n" for m in messages)
        return Rendered(text=text + "<|assistant|>\n", stops=[])


class RemoteError(LLMError):
    """The remote server failed, refused, timed out or could not be reached."""

    code = "llm_remote_error"


class RemoteBackend(LLMBackend):
    """An OpenAI-compatible HTTP server."""

    name: ClassVar[str] = "remote"
    breaker_ignores: ClassVar[tuple[type[BaseException], ...]] = (LLMBusy,)

    def __init__(self, config: LLMConfig, api_key: SecretValue | None = None) -> None:
        super().__init__(config)
        self.api_key = api_key
        self.format = TranscriptFormat()
        self._client: httpx.AsyncClient | None = None
        self._counter: httpx.Client | None = None
        self.context_tokens = 0
        """The remote model's context, once known (config, the server, or the default)."""
        self.tokenizer = ""
        """How prompts are counted: "extras" / "tokenize" (the server's endpoint) or "estimate"."""
        self._discovered = asyncio.Lock()

    async def start(self) -> None:
        """Open the connection pool (nothing is sent until the first request)."""
        if self._started:
            return
        if not self.config.remote_url:
            raise LLMError("llm.backend = 'remote' needs llm.remote_url")
        headers = {"Accept": "text/event-stream"}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.reveal()}"
        t = self.config.remote_timeout_s
        timeout = httpx.Timeout(connect=min(t, 10.0), read=t, write=t, pool=t)
        self._client = httpx.AsyncClient(
            base_url=self.config.remote_url.rstrip("/"), headers=headers, timeout=timeout
        )
        # token counts for trimming run in a worker thread (the trimming policy is synchronous)
        self._counter = httpx.Client(base_url=self._root(), headers=headers, timeout=timeout)
        self.context_tokens = self.config.remote_context_tokens
        self.tokenizer = "estimate" if self.config.remote_tokenizer == "estimate" else ""
        self._started = True

    async def stop(self) -> None:
        """Close the connection pool."""
        self._started = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._counter is not None:
            self._counter.close()
            self._counter = None

    def _root(self) -> str:
        """The server's root URL (the tokenize endpoints live outside /v1)."""
        url = self.config.remote_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    # --- context and token counts, for trimming -----------------------------------------
    async def _discover(self) -> None:
        """Learn the remote model's context and tokenize endpoint once (first request)."""
        async with self._discovered:
            if self.context_tokens and self.tokenizer:
                return
            try:
                await anyio.to_thread.run_sync(self._probe)
            except httpx.TransportError as err:
                raise RemoteError(
                    f"the remote LLM server at {self.config.remote_url} is unreachable "
                    f"({type(err).__name__})"
                ) from None

    def _probe(self) -> None:
        client = self._counter
        assert client is not None
        if not self.context_tokens:
            found = self._reported_context(client)
            if not found:
                log.warning(
                    "the remote LLM server does not report its context; assuming %d tokens "
                    "(set llm.remote_context_tokens)",
                    DEFAULT_CONTEXT,
                )
            self.context_tokens = found or DEFAULT_CONTEXT
        if not self.tokenizer:
            self.tokenizer = "estimate"
            for kind in ("extras", "tokenize"):
                if self._server_count(client, kind, "Hello") is not None:
                    self.tokenizer = kind
                    break
            log.info("remote LLM prompts counted by: %s", self.tokenizer)

    def _reported_context(self, client: httpx.Client) -> int:
        v1 = self.config.remote_url.rstrip("/")
        for url, keys in ((v1 + "/models", ("max_model_len",)), ("/props", ("n_ctx",))):
            try:
                resp = client.get(url)
                data = resp.json() if resp.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                continue
            for item in [
                data,
                *(data.get("data") or []),
                data.get("default_generation_settings") or {},
            ]:
                if isinstance(item, dict):
                    for key in keys:
                        value = item.get(key)
                        if isinstance(value, int) and value > 0:
                            return value
        return 0

    def _server_count(self, client: httpx.Client, kind: str, text: str) -> int | None:
        """Tokens in ``text`` by the server's own tokenizer; None when it has no endpoint."""
        if kind == "extras":  # llama-cpp-python's server
            url, body = "/extras/tokenize/count", {"input": text}
        else:  # llama-server ("content") and vLLM ("prompt")
            url, body = "/tokenize", {"content": text, "prompt": text}
        try:
            resp = client.post(url, json=body)
            if resp.status_code != 200:
                return None
            data = resp.json()
        except (httpx.HTTPError, ValueError):
            return None
        if isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        return None

    def count_tokens(self, text: str) -> int:
        """Prompt tokens in ``text``: the server's count, or the estimate (blocking)."""
        if self.tokenizer in ("extras", "tokenize") and self._counter is not None:
            n = self._server_count(self._counter, self.tokenizer, text)
            if n is not None:
                return n
        return estimate_tokens(text)

    def max_tokens(self, request: GenerateRequest) -> int:
        """The reply's token budget: at most half the remote context, as locally."""
        return max(1, min(request.max_tokens, (self.context_tokens or DEFAULT_CONTEXT) // 2))

    def prompt(self, request: GenerateRequest, *, chat: bool) -> Prompt:
        """The request trimmed to the remote context by the local policy (blocking: counts)."""
        ctx = self.context_tokens or DEFAULT_CONTEXT
        budget = ctx - self.max_tokens(request) - (CHAT_MARGIN if chat else 0)
        fmt: PromptFormat = _ChatCountFormat() if chat else self.format

        def tokenize(text: str, add_bos: bool, special: bool) -> list[int]:
            return [0] * self.count_tokens(text)  # the policy needs only the count

        return build_prompt(
            fmt, tokenize, request.messages, reply_name=request.reply_name, budget=budget
        )

    def _payload(
        self, request: GenerateRequest, schema: CompiledSchema | None, prompt: Prompt
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.config.remote_model or "default",
            "max_tokens": self.max_tokens(request),
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
        }
        if request.seed:
            body["seed"] = request.seed
        if self.config.remote_api == "completions" and schema is None:
            body["prompt"] = prompt.text
            body["stop"] = [*prompt.stops, *request.stop]
            return "/completions", body
        body["messages"] = [
            {"role": m.role, "content": m.content} for m in alternate_roles(prompt.messages)
        ]
        if request.stop:
            body["stop"] = list(request.stop)
        if schema is not None:
            mode = self.config.remote_json_format
            if mode == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": schema.name,
                        "schema": schema.json_schema,
                        "strict": True,
                    },
                }
            elif mode == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema.json_schema}
        return "/chat/completions", body

    async def _trimmed(self, request: GenerateRequest, schema: CompiledSchema | None) -> Prompt:
        await self._discover()
        chat = self.config.remote_api != "completions" or schema is not None
        prompt = await anyio.to_thread.run_sync(lambda: self.prompt(request, chat=chat))
        if prompt.dropped_turns or prompt.truncated:
            log.info(
                "remote prompt trimmed to %d tokens: %d oldest turns dropped%s",
                len(prompt.tokens),
                prompt.dropped_turns,
                ", text cut" if prompt.truncated else "",
            )
        return prompt

    async def _events(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> AsyncGenerator[str | Completion, None]:
        client = self._client
        assert client is not None
        prompt = await self._trimmed(request, schema)
        path, body = self._payload(request, schema, prompt)
        started = time.monotonic()
        first = 0.0
        parts: list[str] = []
        finish = ""
        usage: dict[str, Any] = {}
        timeout = request.timeout_s or self.config.request_timeout_s
        try:
            async with client.stream(
                "POST", path, json=body, timeout=httpx.Timeout(timeout, connect=10.0)
            ) as resp:
                await self._check_status(resp)
                async for chunk in self._chunks(resp):
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or choice.get("text")
                        if text:
                            if not parts:
                                first = time.monotonic()
                                text = text.lstrip() if path == "/completions" else text
                            if text:
                                parts.append(text)
                                yield text
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.TimeoutException as err:
            raise RemoteError(f"the remote LLM server timed out ({type(err).__name__})") from None
        except httpx.TransportError as err:
            raise RemoteError(
                f"the remote LLM server at {self.config.remote_url} is unreachable "
                f"({type(err).__name__})"
            ) from None
        except json.JSONDecodeError:
            raise RemoteError("the remote LLM server sent a malformed event") from None
        if not finish:
            # no finish_reason: the server broke off (llama-cpp-python's server ends the stream
            # this way when the prompt does not fit its context)
            raise RemoteError("the remote LLM server ended the stream before the reply finished")
        yield Completion(
            text="".join(parts),
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens", len(prompt.tokens))),
            completion_tokens=int(usage.get("completion_tokens", len(parts))),
            ttft_s=(first - started) if first else 0.0,
        )

    @staticmethod
    async def _chunks(resp: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
        """The server-sent events' JSON payloads, up to ``[DONE]``."""
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            yield chunk if isinstance(chunk, dict) else {}

    @staticmethod
    async def _check_status(resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        text = (await resp.aread()).decode("utf-8", "replace")[:300]
        if resp.status_code in (429, 503) and resp.headers.get("Retry-After", "").isdigit():
            retry = int(resp.headers["Retry-After"])
            raise LLMBusy("the remote LLM server is busy", queue_position=0, retry_after=retry)
        raise RemoteError(
            f"the remote LLM server answered {resp.status_code}", detail={"body": text}
        )
