"""Parameter types shared by the HTTP and WebSocket handlers.

Litestar validates these bounds before a handler runs, so an out-of-range value is a 400
naming the parameter rather than an error from SQLite, which cannot bind an integer past
64 bits.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

from appliance.db.database import RowId
from appliance.errors import SQLITE_INT_MAX, InvalidInput

__all__ = ["PathId", "QueryId", "RowId", "one_cursor"]

PathId = Annotated[int, PathParameter(ge=1, le=SQLITE_INT_MAX)]
"""A database row id in the path."""

QueryId = Annotated[int | None, QueryParameter(ge=1, le=SQLITE_INT_MAX)]
"""An optional database row id (or version number) in the query string."""


def one_cursor(before: int | None, after: int | None) -> None:
    """A list pages back from ``before`` or forward from ``after`` (ids), never both."""
    if before is not None and after is not None:
        raise InvalidInput("give before or after, not both", detail={"field": "after"})
