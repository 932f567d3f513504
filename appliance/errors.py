"""One error base class; HTTP maps each to ``{code, message, detail?}`` with its status."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error a client may see: a stable ``code``, an HTTP status, a human message."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers or {}


class InvalidInput(AppError):
    """The request is well-formed but a value is wrong."""

    status_code = 400
    code = "invalid_input"


class NotAuthenticated(AppError):
    """No valid session or token."""

    status_code = 401
    code = "not_authenticated"


class InvalidCredentials(AppError):
    """Wrong username or password (never says which)."""

    status_code = 401
    code = "invalid_credentials"


class Forbidden(AppError):
    """Authenticated, but the role or ownership does not allow it."""

    status_code = 403
    code = "forbidden"


class PasswordChangeRequired(Forbidden):
    """The account must change its password before doing anything else."""

    code = "password_change_required"


class NotFound(AppError):
    """The thing named does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(AppError):
    """The request conflicts with the current state (a taken name, say)."""

    status_code = 409
    code = "conflict"


class TooManyRequests(AppError):
    """Throttled; ``Retry-After`` says when to come back."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(
            message, detail={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
        )
        if code:
            self.code = code


class LockedOut(TooManyRequests):
    """Too many failed logins for this user from this address."""

    code = "locked_out"


SQLITE_INT_MAX = 2**63 - 1


class OutOfRange(InvalidInput):
    """A number past what the database holds (SQLite integers are 64-bit)."""

    code = "out_of_range"

    def __init__(self, what: str = "a number in the request") -> None:
        super().__init__(f"{what} is out of range (the largest is {SQLITE_INT_MAX})")
