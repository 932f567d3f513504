"""Typed LLM errors; each ``code`` is stable and reaches HTTP/WS clients as ``{code, message, detail}``."""

from __future__ import annotations

from typing import Any

from appliance.errors import AppError


class LLMError(AppError):
    """Base of every LLM runtime error (a backend failed to produce text)."""

    status_code = 502
    code = "llm_error"


class LLMNotStarted(LLMError):
    """The backend was used before ``start()`` (or after ``stop()``)."""

    status_code = 503
    code = "llm_not_started"


class LLMBusy(LLMError):
    """The request queue is full; ``detail`` carries the queue position and a retry hint."""

    status_code = 429
    code = "busy"

    def __init__(self, message: str, *, queue_position: int, retry_after: int) -> None:
        super().__init__(
            message,
            detail={"queue_position": queue_position, "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        self.queue_position = queue_position
        self.retry_after = retry_after


class LLMTimeout(LLMError):
    """The request (queueing included) ran past its timeout."""

    status_code = 504
    code = "llm_timeout"


class LLMUnavailable(LLMError):
    """The backend's circuit breaker is open: recent requests failed; try again later."""

    status_code = 503
    code = "llm_unavailable"

    def __init__(self, message: str, *, backend: str, retry_after: int) -> None:
        super().__init__(
            message,
            detail={"backend": backend, "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class StructuredOutputError(LLMError):
    """The model's output did not validate against the requested type, twice."""

    code = "structured_output_invalid"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message, detail=detail)


class SchemaError(LLMError):
    """A msgspec type cannot be expressed as a JSON-schema grammar (raised at registration)."""

    status_code = 500
    code = "llm_schema_unsupported"
