"""The LLM contract every backend meets, and the request/response types callers use.

Callers (the practice agents, knowledge Q&A) hold an :class:`LLMBackend` and use only:

- ``stream(request)``: an async iterator of text pieces, in order; their concatenation is
  the final text. Breaking out of the loop (or the task being cancelled, e.g. the client went
  away) cancels the generation and frees its sequence.
- ``generate(request)``: the whole :class:`Completion` (text, finish reason, token counts).
- ``generate_json(type, request)``: an instance of a msgspec type, produced under a JSON-schema
  grammar, validated, retried once, else :class:`~appliance.llm.errors.StructuredOutputError`.
  Register the types you will use with ``register_schema`` when you are built, so a schema
  that cannot be expressed fails at start-up rather than at the first request.

A request carries the messages, sampling parameters, a priority (``interactive`` for an NPC
reply, then ``coach``, ``evaluator``, ``background``) and a session key: requests with the
same key reuse that session's KV prefix (the llama_cpp backend evaluates only new tokens).
Errors are typed (``appliance.llm.errors``): ``busy`` (queue full, with position and retry
hint), ``llm_timeout``, ``llm_unavailable`` (breaker open), ``llm_error``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from appliance.config import LLMConfig
from appliance.llm.breaker import Breaker
from appliance.llm.errors import LLMError, LLMNotStarted, StructuredOutputError
from appliance.llm.structured import CompiledSchema, compile_schema

T = TypeVar("T")
Priority = Literal["interactive", "coach", "evaluator", "background"]
PRIORITIES: tuple[Priority, ...] = ("interactive", "coach", "evaluator", "background")
FinishReason = Literal["stop", "length"]


class Message(msgspec.Struct, kw_only=True, frozen=True):
    """One turn of a conversation; ``name`` is the speaker label in transcript prompts."""

    role: Literal["system", "user", "assistant"]
    content: str
    name: str = ""


class GenerateRequest(msgspec.Struct, kw_only=True, frozen=True):
    """What to generate, how, how urgently and for which session."""

    messages: list[Message]
    max_tokens: int = 256
    temperature: float = 0.0
    """0 = greedy (deterministic)."""
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    stop: tuple[str, ...] = ()
    priority: Priority = "interactive"
    session_key: str = ""
    """Requests with the same key share a KV prefix; empty = no session."""
    reply_name: str = ""
    """Speaker label the reply is written under in transcript prompts (default "Assistant")."""
    timeout_s: float | None = None
    """Overrides llm.request_timeout_s (queueing included)."""
    reuse_kv: bool = True
    """False forces a full prefill (benchmarks, cold-run comparisons)."""


class Completion(msgspec.Struct, kw_only=True):
    """A finished generation."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens reused from the KV cache (not evaluated again)."""
    ttft_s: float = 0.0
    """Seconds from the request to its first token."""


class BackendState(msgspec.Struct, kw_only=True):
    """What /readyz and /metrics say about a backend."""

    backend: str
    ready: bool
    breaker: str
    detail: str


class TextStream:
    """What ``stream()`` returns: an async iterator of text pieces, then the Completion.

    ``async for piece in backend.stream(req)`` yields the pieces; after the loop ends,
    ``.completion`` is the final :class:`Completion` (its text is the pieces joined).
    Leaving the loop early (or ``await s.aclose()``) cancels the generation.
    """

    def __init__(self, events: AsyncGenerator[str | Completion, None]) -> None:
        self._events = events
        self.completion: Completion | None = None

    def __aiter__(self) -> TextStream:
        return self

    async def __anext__(self) -> str:
        while True:
            event = await self._events.__anext__()
            if isinstance(event, Completion):
                self.completion = event
                continue
            return event

    async def aclose(self) -> None:
        """Stop the generation (frees its sequence)."""
        await self._events.aclose()


class LLMBackend(ABC):
    """A language model behind one interface; an async context manager (start/stop)."""

    name: ClassVar[str]
    breaker_ignores: ClassVar[tuple[type[BaseException], ...]] = ()
    """Exceptions that do not count against the breaker (the caller's fault, not the backend's)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.breaker = Breaker(
            self.name,
            failures=config.breaker_failures,
            reset_s=config.breaker_reset_s,
            ignore=self.breaker_ignores,
        )
        self._schemas: dict[Any, CompiledSchema] = {}
        self._started = False

    @abstractmethod
    async def start(self) -> None:
        """Load the model or open the connection; after this the backend serves requests."""

    @abstractmethod
    async def stop(self) -> None:
        """Cancel what is running and release the model or connection."""

    @abstractmethod
    def _events(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> AsyncGenerator[str | Completion, None]:
        """Text pieces in order, then exactly one Completion; constrained to ``schema`` if given."""

    def _check_schema(self, schema: CompiledSchema) -> None:  # noqa: B027 - optional hook
        """Backend-specific check that a compiled schema is usable (raise SchemaError if not)."""

    def forget_sessions(self, keys: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """These session keys will not be used again: drop what is kept for them (a local
        backend's KV). Nothing by default (a remote server keeps its own cache)."""

    async def __aenter__(self) -> LLMBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require_started(self) -> None:
        if not self._started:
            raise LLMNotStarted(
                f"the {self.name} LLM backend is not started: enter it (`async with backend`) "
                "or call `await backend.start()` first"
            )

    async def _guarded(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> AsyncGenerator[str | Completion, None]:
        self._require_started()
        async with self.breaker.guard():
            events = self._events(request, schema)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()

    def stream(self, request: GenerateRequest) -> TextStream:
        """Text pieces of the reply, in order; afterwards ``.completion`` holds the result."""
        return TextStream(self._guarded(request, None))

    async def generate(self, request: GenerateRequest) -> Completion:
        """The whole completion."""
        return await self._complete(request, None)

    async def _complete(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> Completion:
        result: Completion | None = None
        gen = self._guarded(request, schema)
        try:
            async for event in gen:
                if isinstance(event, Completion):
                    result = event
        finally:
            await gen.aclose()
        if result is None:  # a backend that ends without a Completion is broken
            raise LLMError(f"the {self.name} backend ended without a result")
        return result

    def register_schema(self, tp: Any) -> CompiledSchema:
        """Compile a msgspec type's JSON-schema grammar now (raises SchemaError if impossible)."""
        compiled = self._schemas.get(tp)
        if compiled is None:
            compiled = compile_schema(tp)
            if self._started:
                self._check_schema(compiled)
            self._schemas[tp] = compiled
        return compiled

    async def generate_json(self, tp: type[T], request: GenerateRequest) -> T:
        """An instance of ``tp`` from a grammar-constrained generation; one retry, then an error."""
        schema = self.register_schema(tp)
        errors: list[str] = []
        for attempt in range(2):
            if attempt:  # a greedy retry would repeat the same output: sample a little instead
                request = msgspec.structs.replace(
                    request, temperature=request.temperature or 0.3, seed=request.seed + 1
                )
            completion = await self._complete(request, schema)
            try:
                value: T = schema.decode(completion.text)
                return value
            except (msgspec.ValidationError, msgspec.DecodeError) as err:
                errors.append(f"attempt {attempt + 1} ({completion.finish_reason}): {err}")
        raise StructuredOutputError(
            f"the model's output did not validate as {schema.name}", detail={"errors": errors}
        )

    def state(self) -> BackendState:
        """Readiness and breaker state."""
        breaker = self.breaker.state()
        ready = self._started and breaker != "open"
        detail = f"{self.name}: {'started' if self._started else 'not started'}, breaker {breaker}"
        return BackendState(backend=self.name, ready=ready, breaker=breaker, detail=detail)
