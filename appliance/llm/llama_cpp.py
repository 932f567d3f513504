"""The in-process backend: a GGUF model on llama.cpp with KV reuse and continuous batching."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio.to_thread

from appliance.config import LLMConfig
from appliance.llm.base import PRIORITIES, Completion, GenerateRequest, LLMBackend
from appliance.llm.engine import Job, LlamaEngine
from appliance.llm.errors import LLMBusy, LLMError, LLMTimeout
from appliance.llm.prompts.render import (
    ChatTemplateFormat,
    Prompt,
    PromptFormat,
    TranscriptFormat,
    build_prompt,
)
from appliance.llm.scheduler import Scheduler
from appliance.llm.structured import CompiledSchema


class LlamaCppBackend(LLMBackend):
    """A GGUF chat model in this process (llama-cpp-python's low-level API)."""

    name: ClassVar[str] = "llama_cpp"
    # the caller's doing or the queue's state, not a broken backend
    breaker_ignores: ClassVar[tuple[type[BaseException], ...]] = (LLMBusy, LLMTimeout)

    def __init__(self, config: LLMConfig, model_path: Path) -> None:
        super().__init__(config)
        self.engine = LlamaEngine(model_path, config)
        self.scheduler = Scheduler(self.engine, queue_max=config.queue_max, backend=self.name)
        self.format: PromptFormat = TranscriptFormat()

    async def start(self) -> None:
        """Load the model off the event loop and start the decode thread."""
        if self._started:
            return
        await anyio.to_thread.run_sync(self.engine.load)
        template = self.engine.metadata.get("tokenizer.chat_template", "")
        if template:
            vocab = self.engine.vocab
            import llama_cpp

            self.format = ChatTemplateFormat(
                template,
                bos_token=self.engine.token_text(llama_cpp.llama_vocab_bos(vocab)),
                eos_token=self.engine.token_text(llama_cpp.llama_vocab_eos(vocab)),
            )
        for compiled in self._schemas.values():
            self._check_schema(compiled)
        self.scheduler.start()
        self._started = True

    async def stop(self) -> None:
        """Stop the decode thread and free the model."""
        if not self._started:
            return
        self._started = False
        await anyio.to_thread.run_sync(self.scheduler.stop)
        await anyio.to_thread.run_sync(self.engine.close)

    def forget_sessions(self, keys: Sequence[str]) -> None:
        """Their idle slots' KV is dropped by the decode thread (``Scheduler.forget_sessions``)."""
        self.scheduler.forget_sessions(keys)

    def _check_schema(self, schema: CompiledSchema) -> None:
        self.engine.check_grammar(schema.gbnf)

    @property
    def chat_template(self) -> bool:
        """Whether the model's own chat template renders prompts."""
        return isinstance(self.format, ChatTemplateFormat)

    def prompt(self, request: GenerateRequest) -> Prompt:
        """The request's prompt tokens, trimmed to the sequence's context (blocking; tokenizes)."""
        ctx = self.engine.n_ctx_seq
        max_tokens = max(1, min(request.max_tokens, ctx // 2))
        return build_prompt(
            self.format,
            self.engine.tokenize,
            request.messages,
            reply_name=request.reply_name,
            budget=ctx - max_tokens,
        )

    async def _events(
        self, request: GenerateRequest, schema: CompiledSchema | None
    ) -> AsyncGenerator[str | Completion, None]:
        prompt = await anyio.to_thread.run_sync(self.prompt, request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        timeout = request.timeout_s or self.config.request_timeout_s

        def emit(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        job = Job(
            prompt=prompt.tokens,
            stops=[*prompt.stops, *request.stop],
            max_tokens=max(1, min(request.max_tokens, self.engine.n_ctx_seq // 2)),
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            seed=request.seed,
            grammar=schema.gbnf if schema is not None else None,
            priority=PRIORITIES.index(request.priority),
            session_key=request.session_key,
            reuse_kv=request.reuse_kv,
            deadline=time.monotonic() + timeout,
            emit=emit,
        )
        self.scheduler.submit(job)
        done = False
        try:
            while True:
                left = job.deadline - time.monotonic() + 1.0  # the thread times out first
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=max(left, 0.01))
                except TimeoutError:
                    raise LLMTimeout("the generation ran past its timeout") from None
                if isinstance(item, BaseException):
                    done = True
                    if isinstance(item, LLMError):
                        raise item
                    raise LLMError(str(item))
                if isinstance(item, Completion):
                    done = True
                    yield item
                    return
                yield item
        finally:
            if not done:
                self.scheduler.cancel(job)
