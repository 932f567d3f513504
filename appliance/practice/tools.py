"""Run agent tools: read-only ones concurrently (bounded), side-effect ones one at a time.

Each tool is declared once with a name, a ``read_only`` flag, a timeout and an async
callable taking keyword arguments. ``ToolRunner.run_many(calls)`` returns one
:class:`ToolResult` per call, in call order, never raising: a tool that fails, times out or
whose circuit breaker is open gives a result with a typed :class:`ToolError`, and the other
calls go on. Every call is recorded as a :class:`~appliance.practice.model.ToolCallRecord`
(name, a short sha256 of the canonical JSON arguments, milliseconds, ok, error code).

Breakers are per tool, on ``purgatory`` (the library the LLM breaker uses; its
``appliance.llm.breaker.Breaker`` wrapper is not reused because it reports LLM-backend
metrics): ``breaker_failures`` consecutive failures open it, and after ``breaker_reset_s``
the next call is a half-open probe.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from appliance.errors import AppError
from appliance.practice.model import ToolCallRecord

ToolFn = Callable[..., Awaitable[Any]]


class ToolError(AppError):
    """A tool raised; the message says which and why."""

    status_code = 502
    code = "tool_error"


class ToolTimeout(ToolError):
    """A tool ran past its timeout."""

    status_code = 504
    code = "tool_timeout"


class ToolUnavailable(ToolError):
    """The tool's circuit breaker is open after repeated failures."""

    status_code = 503
    code = "tool_unavailable"


class UnknownTool(ToolError):
    """No tool of that name is registered."""

    status_code = 400
    code = "unknown_tool"


@dataclass(frozen=True)
class Tool:
    """A tool: its name, whether it only reads, its timeout and the async callable."""

    name: str
    fn: ToolFn
    read_only: bool = True
    timeout_s: float = 2.0


@dataclass(frozen=True)
class ToolCall:
    """A call of a tool by name with keyword arguments (JSON-encodable by msgspec)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    """A call's value, or its typed error, and its record."""

    call: ToolCall
    record: ToolCallRecord
    value: Any = None
    error: ToolError | None = None

    @property
    def ok(self) -> bool:
        """Whether the tool returned a value."""
        return self.error is None


def args_digest(args: dict[str, Any]) -> str:
    """First 16 hex digits of the sha256 of the arguments as canonical (sorted-key) JSON."""
    canonical = msgspec.json.encode(args, order="sorted")
    return hashlib.sha256(canonical).hexdigest()[:16]


class ToolRunner:
    """Registered tools, a concurrency bound for read-only calls and a breaker per tool."""

    def __init__(
        self,
        tools: Sequence[Tool] = (),
        *,
        concurrency: int = 4,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        self.tools: dict[str, Tool] = {}
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self._serial = asyncio.Lock()
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=max(1, breaker_failures), default_ttl=breaker_reset_s
        )
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add (or replace) a tool."""
        self.tools[tool.name] = tool

    async def run(self, call: ToolCall) -> ToolResult:
        """One call (bounded like ``run_many``)."""
        return (await self.run_many([call]))[0]

    async def run_many(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Every call's result in call order; read-only calls overlap, side-effect ones queue."""
        results: list[ToolResult | None] = [None] * len(calls)

        async def bounded(i: int) -> None:
            async with self._semaphore:
                results[i] = await self._invoke(calls[i])

        async def serial(indexes: list[int]) -> None:
            for i in indexes:
                async with self._serial:
                    results[i] = await self._invoke(calls[i])

        parallel: list[int] = []
        sequential: list[int] = []
        for i, call in enumerate(calls):
            tool = self.tools.get(call.name)
            (parallel if tool is None or tool.read_only else sequential).append(i)
        jobs = [bounded(i) for i in parallel]
        if sequential:
            jobs.append(serial(sequential))
        await asyncio.gather(*jobs)
        return [r for r in results if r is not None]

    async def _invoke(self, call: ToolCall) -> ToolResult:
        started = time.perf_counter()
        digest = args_digest(call.args)
        tool = self.tools.get(call.name)
        value: Any = None
        error: ToolError | None = None
        if tool is None:
            error = UnknownTool(f"no tool named {call.name!r}")
        else:
            value, error = await self._guarded(tool, call)
        record = ToolCallRecord(
            name=call.name,
            args_digest=digest,
            ms=round((time.perf_counter() - started) * 1000, 3),
            ok=error is None,
            error="" if error is None else error.code,
        )
        return ToolResult(call=call, record=record, value=value, error=error)

    async def _guarded(self, tool: Tool, call: ToolCall) -> tuple[Any, ToolError | None]:
        breaker = await self._breakers.get_breaker(tool.name)
        try:
            async with breaker:
                async with asyncio.timeout(tool.timeout_s):
                    return await tool.fn(**call.args), None
        except OpenedState:
            return None, ToolUnavailable(
                f"tool {tool.name!r} is unavailable after repeated failures",
                detail={"tool": tool.name},
            )
        except TimeoutError:
            return None, ToolTimeout(
                f"tool {tool.name!r} ran past its {tool.timeout_s:g} s timeout",
                detail={"tool": tool.name},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one tool's failure never fails the others
            if isinstance(exc, ToolError):
                return None, exc
            return None, ToolError(
                f"tool {tool.name!r} failed: {type(exc).__name__}: {exc}",
                detail={"tool": tool.name},
            )

    async def breaker_state(self, name: str) -> str:
        """closed / opened / half-opened, as purgatory names it (for tests and /metrics)."""
        breaker = await self._breakers.get_breaker(name)
        return str(breaker.context.state)
