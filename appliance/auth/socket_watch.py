"""Close a long-lived WebSocket as soon as its caller's login is void.

HTTP checks the login on every request. A socket that only listens (an observer, the job
progress feed) sends no frames to check on, so this runs beside it: it waits for a login
change (:meth:`AuthService.wait_login_change`: one made in this process, or one the CLI made,
seen by :mod:`appliance.auth.other_writers`), or ``recheck_s`` at most, and asks
``still_allowed`` again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import WebSocket

from appliance.auth.service import AuthService


async def close_when_void(
    socket: WebSocket[Any, Any, Any],
    auth: AuthService,
    user_id: int,
    still_allowed: Callable[[], Awaitable[int | None]],
    recheck_s: float,
) -> None:
    """Run until ``still_allowed`` gives a close code, then close the socket with it."""
    while True:
        await auth.wait_login_change(user_id, recheck_s)
        if (code := await still_allowed()) is not None:
            with contextlib.suppress(Exception):
                await socket.close(code=code, reason="your login is no longer valid")
            return
