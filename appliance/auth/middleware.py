"""Who is calling: a Bearer API token or the session cookie; plus the same-origin check.

``server.allowed_origins`` are origins besides the appliance's own that may call it: the
same-origin check lets them through, and CORS (Litestar's ``CORSConfig``, wired in
``appliance.app``) answers their preflights and marks the responses to them readable.
:class:`ForeignCorsFilter` keeps every ``Access-Control-*`` header off the responses to any
other origin.

A WebSocket is never refused here: a refused handshake is an HTTP status a browser cannot
see. The refusal (a bad token, a foreign origin) goes to the route guard in the scope's
``auth``, and the guard accepts the socket and closes it with a code
(:func:`appliance.auth.guards.access_guard`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod, ScopeType
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Message, Receive, Scope, Scopes, Send

from appliance.auth.service import AuthService
from appliance.errors import AppError, Forbidden, NotAuthenticated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _own_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme = connection.scope.get("scheme", "http")
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        scheme = "https" if scheme == "wss" else "http"
    host = connection.headers.get("host", "")
    return normalise_origin(f"{scheme}://{host}")


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port (as browsers send it)."""
    parts = urlsplit(origin.strip().lower())
    default_port = _DEFAULT_PORTS.get(parts.scheme)
    netloc = parts.netloc.removesuffix(default_port) if default_port else parts.netloc
    return f"{parts.scheme}://{netloc}"


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
        self.allowed_origins = {normalise_origin(o) for o in allowed_origins}

    def _check_origin(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        is_ws = connection.scope["type"] == ScopeType.WEBSOCKET
        if not is_ws and connection.scope.get("method", "GET") in SAFE_METHODS:
            return
        origin = connection.headers.get("origin")
        if origin is None or (origin == "null" and not is_ws):
            return  # not sent by a browser, or a privacy-stripped same-origin form post
        if (
            normalise_origin(origin) == _own_origin(connection)
            or normalise_origin(origin) in self.allowed_origins
        ):
            return
        raise Forbidden("cross-origin request refused", detail={"origin": origin})

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Resolve the caller; a bad token is an error, no credentials at all is anonymous."""
        if connection.scope["type"] == ScopeType.WEBSOCKET:
            try:
                return await self._authenticate(connection)
            except AppError as err:  # the guard closes the socket with its code
                return AuthenticationResult(user=None, auth=err)
        return await self._authenticate(connection)

    async def _authenticate(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
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


def cors_config(allowed_origins: list[str]) -> CORSConfig | None:
    """CORS for ``server.allowed_origins``; None (no CORS headers at all) when there are none.

    No credentials: the login cookie is SameSite=Strict and the API is for other origins
    token-based (``Authorization: Bearer``), so a response is never readable by a page that
    sent a cookie.
    """
    if not allowed_origins:
        return None
    return CORSConfig(
        allow_origins=sorted({normalise_origin(o) for o in allowed_origins}),
        allow_methods=[HttpMethod.GET, HttpMethod.POST, HttpMethod.PATCH, HttpMethod.DELETE],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After", "Content-Disposition"],
        allow_credentials=False,
        max_age=600,
    )


class ForeignCorsFilter:
    """Drops the ``Access-Control-*`` headers from responses to an origin not in ``allowed``.

    Litestar's CORS middleware adds ``Access-Control-Allow-Methods`` and ``-Headers`` to every
    response to a request with an ``Origin`` (``-Allow-Origin`` only to the allowed ones); a
    browser ignores them without ``-Allow-Origin``, but an origin that is not allowed gets no
    CORS header at all, which is plainer to check.
    """

    def __init__(self, app: ASGIApp, *, allowed: list[str]) -> None:
        self.app = app
        self.allowed = {normalise_origin(o) for o in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Filter one HTTP response."""
        origin = next((v for k, v in scope.get("headers", []) if k == b"origin"), None)
        if (
            scope["type"] != ScopeType.HTTP
            or origin is None
            or normalise_origin(origin.decode("latin-1")) in self.allowed
        ):
            await self.app(scope, receive, send)
            return

        async def filtered(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
            await send(message)

        await self.app(scope, receive, filtered)
