"""The same interface against an OpenAI-compatible server (vLLM, llama-server, llama_cpp.server).

Streaming ``/chat/completions`` (or ``/completions`` with the transcript prompt, for base
models served without a chat template), server-sent events parsed as they arrive. Structured
output is sent as ``response_format`` (``json_schema`` as OpenAI and vLLM take it, or
``json_object`` with a ``schema`` as llama-cpp-python's server takes it) and validated here
as for the local backend. The API key comes from the secret store, never from config.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

import httpx

from appliance.config import LLMConfig
from appliance.llm.base import Completion, GenerateRequest, LLMBackend
from appliance.llm.errors import LLMBusy, LLMError
from appliance.llm.prompts.render import TranscriptFormat
from appliance.llm.structured import CompiledSchema
from appliance.secrets import SecretValue


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
        self._client = httpx.AsyncClient(
            base_url=self.config.remote_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(connect=min(t, 10.0), read=t, write=t, pool=t),
        )
        self._started = True

    async def stop(self) -> None:
        """Close the connection pool."""
        self._started = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _payload(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.config.remote_model or "default",
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
        }
        if request.seed:
            body["seed"] = request.seed
        if self.config.remote_api == "completions" and schema is None:
            rendered = self.format.render(request.messages, request.reply_name)
            body["prompt"] = rendered.text
            body["stop"] = [*rendered.stops, *request.stop]
            return "/completions", body
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
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

    async def _events(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> AsyncGenerator[str | Completion, None]:
        client = self._client
        assert client is not None
        path, body = self._payload(request, schema)
        started = time.monotonic()
        first = 0.0
        parts: list[str] = []
        finish = "stop"
        usage: dict[str, Any] = {}
        timeout = request.timeout_s or self.config.request_timeout_s
        try:
            async with client.stream(
                "POST", path, json=body, timeout=httpx.Timeout(timeout, connect=10.0)
            ) as resp:
                await self._check_status(resp)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
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
        yield Completion(
            text="".join(parts),
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", len(parts))),
            ttft_s=(first - started) if first else 0.0,
        )

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
