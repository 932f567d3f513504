"""One JSON error shape for every failure: ``{code, message, detail?}``; 500s hide internals."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from appliance.errors import AppError, OutOfRange

log = logging.getLogger("appliance.api")

_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


def _body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return body


def _missing_body(extra: Any) -> list[dict[str, str]] | None:
    """Litestar's detail for an absent body is the bare KeyError text "'data'": say it plainly."""
    if not isinstance(extra, list):
        return None
    missing = [
        e
        for e in extra
        if isinstance(e, dict) and e.get("key") == "data" and e.get("message") == "'data'"
    ]
    if not missing or len(missing) != len(extra):
        return None
    return [{"message": "the JSON body is missing", "key": "data", "source": "body"}]


def app_error_handler(_: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    """An AppError as its status and code."""
    return Response(
        _body(exc.code, exc.message, exc.detail), status_code=exc.status_code, headers=exc.headers
    )


def http_error_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    """Litestar's own HTTP errors (routing, validation, size, rate limit) in the same shape."""
    status = exc.status_code
    if status >= 500:
        return internal_error_handler(request, exc)
    detail: Any = None
    message = exc.detail
    if isinstance(exc, ValidationException):
        code = "invalid_request"
        missing = _missing_body(exc.extra)
        detail = missing or exc.extra or None
        message = (
            "the request has no body: send a JSON object"
            if missing
            else "the request body or parameters are invalid"
        )
    elif isinstance(exc, NotFoundException):
        code = "not_found"
        message = f"no route {request.method} {request.url.path}"
    elif isinstance(exc, TooManyRequestsException):
        code = "rate_limited"
        headers = dict(exc.headers or {})
        reset = next((v for k, v in headers.items() if k.lower() == "ratelimit-reset"), None)
        headers.setdefault("Retry-After", str(reset or 60))
        return Response(
            _body(code, message, {"retry_after": int(reset or 60)}),
            status_code=status,
            headers=headers,
        )
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    elif status == 413:
        code = "too_large"
        settings = request.app.state.get("settings")
        limit = settings.server.max_body_bytes if settings is not None else None
        message = (
            f"the request body is over the {limit}-byte limit (server.max_body_bytes)"
            if limit
            else "the request body is too large"
        )
    elif status == 400:
        code = "invalid_request"
        message = f"malformed request: {exc.detail}"
    else:
        code = _CODES.get(status, "http_error")
    return Response(_body(code, message, detail), status_code=status, headers=exc.headers)


def overflow_handler(
    request: Request[Any, Any, Any], exc: OverflowError
) -> Response[dict[str, Any]]:
    """A number past SQLite's 64-bit integers (an id like 99999999999999999999) is bad input."""
    if "SQLite INTEGER" not in str(exc):
        return internal_error_handler(request, exc)
    return app_error_handler(request, OutOfRange())


def recursion_handler(
    request: Request[Any, Any, Any], exc: RecursionError
) -> Response[dict[str, Any]]:
    """JSON nested past msgspec's depth limit (``[[[[...]]]]``) is a malformed request."""
    if "while deserializing" not in str(exc):  # msgspec's decoder says so; anything else is a bug
        return internal_error_handler(request, exc)
    return Response(
        _body("invalid_request", "malformed request: the JSON is nested too deeply"),
        status_code=400,
    )


def internal_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    """Anything unexpected: logged with its traceback, answered without internals."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.exception("unhandled error", extra={"path": request.url.path, "request_id": request_id})
    return Response(
        _body(
            "internal_error", "internal error", {"request_id": request_id} if request_id else None
        ),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: app_error_handler,
    HTTPException: http_error_handler,
    OverflowError: overflow_handler,
    RecursionError: recursion_handler,
    Exception: internal_error_handler,
}
