"""Server-side browser sessions in a file store, written only when there is something to keep.

Litestar's stock server-side backend stores an empty session and sets a cookie for every
cookieless request (each API-token call, each anonymous probe): a file per request on disk.
This backend skips that, skips rewriting a session whose data did not change, and deletes
the stored session when it is emptied (logout, a voided session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty, Message, ScopeSession

_LOADED = "_salesboost_session_loaded"


class LazySessionBackend(ServerSideSessionBackend):
    """Stores a session only when it exists and changed."""

    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        """Load the session and remember its serialised form to detect changes."""
        data = await super().load_from_connection(connection)
        connection.scope[_LOADED] = self.serialize_data(data, connection.scope) if data else None  # type: ignore[literal-required]
        return data

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        """Write, delete or leave the session, then let the base class set the cookie."""
        has_cookie = connection.cookies.get(self.config.key) is not None
        empty = scope_session is Empty or not scope_session
        if empty and not has_cookie:
            return  # nothing was there and nothing is to be kept
        if empty:
            scope_session = Empty  # deletes the stored session and expires the cookie
        elif has_cookie and self.serialize_data(
            scope_session, connection.scope
        ) == connection.scope.get(_LOADED):
            return  # unchanged: the cookie and the stored data are already right
        await super().store_in_message(scope_session, message, connection)


@dataclass
class LazySessionConfig(ServerSideSessionConfig):
    """ServerSideSessionConfig with :class:`LazySessionBackend`."""

    _backend_class = LazySessionBackend
