"""Who is calling: a Bearer API token or the session cookie; plus the same-origin check."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Scopes

from appliance.auth.service import AuthService
from appliance.errors import Forbidden, NotAuthenticated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _own_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme = connection.scope.get("scheme", "http")
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        scheme = "https" if scheme == "wss" else "http"
    host = connection.headers.get("host", "")
    return f"{scheme}://{host}".lower()


def _normalise(origin: str) -> str:
    parts = urlsplit(origin.strip().lower())
    return f"{parts.scheme}://{parts.netloc}"


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``connection.user`` to a Principal or None; the route guard decides what that allows."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: AuthService,
        allowed_origins: list[str],
        exclude: str | list[str] | None = None,
        scopes: Scopes | None = None,
    ) -> None:
        super().__init__(app, exclude=exclude, scopes=scopes)
        self.auth = auth
        self.allowed_origins = {_normalise(o) for o in allowed_origins}

    def _check_origin(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        is_ws = connection.scope["type"] == ScopeType.WEBSOCKET
        if not is_ws and connection.scope.get("method", "GET") in SAFE_METHODS:
            return
        origin = connection.headers.get("origin")
        if origin is None or (origin == "null" and not is_ws):
            return  # not sent by a browser, or a privacy-stripped same-origin form post
        if (
            _normalise(origin) == _own_origin(connection)
            or _normalise(origin) in self.allowed_origins
        ):
            return
        raise Forbidden("cross-origin request refused", detail={"origin": origin})

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Resolve the caller; a bad token is an error, no credentials at all is anonymous."""
        self._check_origin(connection)
        header = connection.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise NotAuthenticated("Authorization must be 'Bearer <token>'")
            principal = await self.auth.from_token(value.strip())
            if principal is None:
                raise NotAuthenticated("invalid or revoked API token, or its user is disabled")
            return AuthenticationResult(user=principal, auth="token")
        session = connection.scope.get("session")
        if isinstance(session, dict) and session.get("uid") is not None:
            principal = await self.auth.from_session(session)
            if principal is not None:
                return AuthenticationResult(user=principal, auth="session")
            session.clear()  # void: disabled user, reset password or rotated key
        return AuthenticationResult(user=None, auth=None)
