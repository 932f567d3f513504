"""The one route guard: every handler declares ``opt={"access": ...}`` and this enforces it.

A handler without an ``access`` declaration is refused for everyone, and the role-matrix
test fails, so a new route cannot ship unguarded by accident.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from appliance.auth.service import Principal
from appliance.errors import Forbidden, NotAuthenticated, PasswordChangeRequired

Access = Literal["public", "user", "manager", "admin"]
ACCESS_LEVELS: tuple[Access, ...] = ("public", "user", "manager", "admin")


def access(level: Access, *, password_change_ok: bool = False) -> dict[str, Any]:
    """The ``opt`` for a handler: who may call it (and whether a pending password change allows it)."""
    return {"access": level, "password_change_ok": password_change_ok}


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The authenticated caller, or None."""
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


async def access_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Enforce the handler's declared access level (async: Litestar would run a sync guard in a thread)."""
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
