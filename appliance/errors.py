"""One error base class; HTTP maps each to ``{code, message, detail?}`` with its status."""

from __future__ import annotations

import re
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


class UserExists(Conflict):
    """A user of that name already exists."""

    code = "user_exists"


class LastAdmin(Conflict):
    """The change would leave no enabled admin."""

    code = "last_admin"


class SelfErase(Conflict):
    """An admin asked to erase their own account."""

    code = "self_erase"


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


# --- text fields: one check for every stored text ----------------------------------------------

_CONTROLS_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters (Unicode category Cc: C0, DEL, C1) but tab, newline, carriage return."""
_CONTROLS_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Every control character, and the bidi embeddings/overrides (U+202A-U+202E) and isolates
(U+2066-U+2069) that can make a name read differently from what it is (the plain marks
U+200E/U+200F are not among them)."""


class InvalidText(InvalidInput):
    """A text field holds a control character (or, in a name or key, a bidi control)."""

    code = "invalid_text"

    def __init__(self, field: str, char: str, position: int) -> None:
        point = f"U+{ord(char):04X}"
        why = "a bidi control character" if ord(char) > 0x9F else "a control character"
        super().__init__(
            f"{field}: {point} ({why}) at position {position} is not allowed",
            detail={"field": field, "character": point, "position": position},
        )
        self.field = field


def check_text(field: str, value: str, *, single_line: bool) -> str:
    """``value`` unchanged, or InvalidText naming ``field`` and its first bad character.

    Every text refuses control characters (C0, DEL, C1), except tab, newline and carriage
    return when ``single_line`` is False. Single-line names, titles and keys also refuse the
    bidi embedding/override/isolate controls; long free text keeps them (right-to-left text
    needs them).
    """
    pattern = _CONTROLS_SINGLE_LINE if single_line else _CONTROLS_MULTILINE
    found = pattern.search(value)
    if found is not None:
        raise InvalidText(field, found.group(), found.start())
    return value
