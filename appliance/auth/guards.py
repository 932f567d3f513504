"""The one route guard: every handler declares ``opt={"access": ...}`` and this enforces it.

A handler without an ``access`` declaration is refused for everyone, and the role-matrix
test fails, so a new route cannot ship unguarded by accident. The one exception is the
``OPTIONS`` handler Litestar adds to every path: it answers ``204`` with an ``Allow`` header
and nothing else, and an ``OPTIONS`` request carries no credentials, so it is public.

A WebSocket is refused with a close code, not an HTTP status: a browser sees only the close
code of a socket, never the status of a refused handshake. So a refused socket is accepted
and closed at once, ``4401`` (not authenticated: log in again) or ``4403`` (not allowed),
with the reason below; nothing is sent on it before.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import WebSocket
from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.exceptions import WebSocketException
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler

from appliance.auth.service import Principal
from appliance.errors import AppError, Forbidden, NotAuthenticated, PasswordChangeRequired

Access = Literal["public", "user", "manager", "admin"]
ACCESS_LEVELS: tuple[Access, ...] = ("public", "user", "manager", "admin")

CLOSE_NOT_AUTHENTICATED = 4401
"""WebSocket close code: no valid login (none, a bad or revoked token, a void session)."""
CLOSE_FORBIDDEN = 4403
"""WebSocket close code: logged in, but not allowed (role, password change, origin)."""
CLOSE_REASON_MAX_BYTES = 123  # what a close frame has room for


def access(level: Access, *, password_change_ok: bool = False) -> dict[str, Any]:
    """The ``opt`` for a handler: who may call it (and whether a pending password change allows it)."""
    return {"access": level, "password_change_ok": password_change_ok}


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The authenticated caller, or None."""
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def is_automatic_options(handler: BaseRouteHandler) -> bool:
    """Whether this is the ``OPTIONS`` handler Litestar generates for a path (not one of ours)."""
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {HttpMethod.OPTIONS}
        and getattr(handler.fn, "__module__", None) == "litestar.routes.http"
    )


def socket_close_for(err: AppError) -> tuple[int, str]:
    """The close code and reason a refused WebSocket gets for ``err``."""
    if isinstance(err, NotAuthenticated):
        return CLOSE_NOT_AUTHENTICATED, "not authenticated"
    if isinstance(err, PasswordChangeRequired):
        return CLOSE_FORBIDDEN, "password change required"
    reason = err.message.encode()[:CLOSE_REASON_MAX_BYTES].decode(errors="ignore")
    return CLOSE_FORBIDDEN, reason


async def access_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Enforce the handler's declared access level (async: Litestar would run a sync guard in a thread)."""
    try:
        _check(connection, handler)
    except AppError as err:
        if isinstance(connection, WebSocket):
            code, reason = socket_close_for(err)
            await connection.accept()
            # Litestar's exception middleware sends this as the close frame
            raise WebSocketException(detail=reason, code=code) from err
        raise


def _check(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    refusal = connection.scope.get("auth")  # the auth middleware's, for a WebSocket
    if isinstance(refusal, AppError):
        raise refusal
    if is_automatic_options(handler):
        return
    level = handler.opt.get("access")
    if level not in ACCESS_LEVELS:
        raise Forbidden("this route declares no access policy")
    if level == "public":
        return
    principal = principal_of(connection)
    if principal is None:
        raise NotAuthenticated("log in or send 'Authorization: Bearer <token>'")
    if principal.user.must_change_password and not handler.opt.get("password_change_ok"):
        raise PasswordChangeRequired("change your password first (POST /api/auth/password)")
    if level != "user" and not principal.at_least(level):
        raise Forbidden(f"needs the {level} role")
