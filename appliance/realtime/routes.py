"""The WebSocket endpoints: ``/ws/practice/{session_id}`` (the trainee) and ``/ws/observe/{session_id}``.

Both authenticate like HTTP (session cookie or ``Authorization: Bearer``; the same-origin check
applies). A refusal is never an HTTP status at the handshake (a browser cannot see one): the
socket is accepted and closed with a code. 4401 no valid login and 4403 not allowed (a trainee
on the observe route, a pending password change, a foreign origin) come from the route guard,
before the session is looked up. A session the caller may not see closes 4404 "no such
session", exactly like one that does not exist (HTTP answers both 404, so ids do not leak);
one they may see but not drive (its team's manager, an admin on the practice route) closes 4403.
Observers are admins and managers of the trainee's team. Every frame is decoded as a protocol
message; errors go back as ``error`` events and the connection stays. A connection silent for
``realtime.idle_timeout_s`` is closed (4408), unless a turn of its session is in flight (the
client waits on the server then); ``ping`` keeps it open. A deleted session's
connections are closed with 4410 (at once when this process deleted it; within about a second
when the CLI did, see ``appliance.auth.other_writers``). docs/practice-protocol.md lists every
close code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from appliance.auth.guards import access, principal_of
from appliance.auth.service import AuthService
from appliance.auth.socket_watch import close_when_void
from appliance.config import RealtimeConfig
from appliance.errors import SQLITE_INT_MAX
from appliance.practice.access import may_practice, may_view
from appliance.practice.coordinator import Coordinator
from appliance.realtime import connection as c
from appliance.realtime.handlers import decode_error, dispatch, error_frame
from appliance.realtime.hub import Hub
from appliance.realtime.protocol import Ping, client_decoder
from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath

log = logging.getLogger(__name__)


@websocket("/ws/practice/{session_id:int}", opt=access("user"))
async def practice_socket(
    socket: WebSocket[Any, Any, Any], session_id: FromPath[int], state: State
) -> None:
    """The trainee's live session."""
    await _serve(socket, session_id, state, role="trainee")


@websocket("/ws/observe/{session_id:int}", opt=access("manager"))
async def observe_socket(
    socket: WebSocket[Any, Any, Any], session_id: FromPath[int], state: State
) -> None:
    """A read-only live view of a session, for its trainee's manager or an admin."""
    await _serve(socket, session_id, state, role="observer")


async def _serve(
    socket: WebSocket[Any, Any, Any], session_id: int, state: State, *, role: str
) -> None:
    coordinator: Coordinator = state.coordinator
    hub: Hub = state.hub
    config: RealtimeConfig = state.settings.realtime
    principal = principal_of(socket)
    await socket.accept()
    if principal is None:  # the guard has refused it already (4401); kept for safety
        await socket.close(code=c.CLOSE_NOT_AUTHENTICATED, reason="not authenticated")
        return
    user = principal.user
    too_big = abs(session_id) > SQLITE_INT_MAX  # no such row, and SQLite cannot even look
    session = None if too_big else await coordinator.repo.get_session(session_id)
    if session is None or not may_view(
        session, user_id=user.id, role=user.role, team_id=user.team_id
    ):
        # one the caller may not see is closed exactly like one that does not exist
        await socket.close(code=c.CLOSE_NOT_FOUND, reason="no such session")
        return
    if role == "trainee" and not may_practice(session, user.id):
        # they may see it (its team's manager, an admin), so saying so leaks nothing
        await socket.close(code=c.CLOSE_FORBIDDEN, reason="only its trainee drives a session")
        return
    conn = c.Connection(
        session=session,
        user_id=user.id,
        username=user.username,
        role=role,
        outbox=c.Outbox(config.backlog),
        bucket=c.TokenBucket(config.rate_per_s, config.rate_burst),
    )
    auth: AuthService = state.auth
    cookie_session = socket.scope.get("session")

    async def still_allowed() -> int | None:
        """None while the caller may go on, else the close code (disabled, signed out...)."""
        now = await auth.revalidate(
            principal, cookie_session if isinstance(cookie_session, dict) else None
        )
        if now is None:
            return c.CLOSE_NOT_AUTHENTICATED
        if await coordinator.repo.get_session(session_id) is None:  # deleted by another process
            return c.CLOSE_GONE
        if role == "observer" and not may_view(
            session, user_id=now.user.id, role=now.user.role, team_id=now.user.team_id
        ):
            return c.CLOSE_FORBIDDEN
        return None

    deleted = coordinator.deleted_signal(session_id)
    async with hub.subscribe(session_id) as subscriber:
        gone = asyncio.ensure_future(_close_when_deleted(socket, deleted))
        pump = asyncio.ensure_future(_pump(subscriber.iter_events(), conn))
        writer = asyncio.ensure_future(_write(socket, conn))
        watch = asyncio.ensure_future(
            close_when_void(
                socket, auth, user.id, still_allowed, state.settings.auth.socket_recheck_s
            )
        )
        try:
            await _read(socket, coordinator, conn, config, still_allowed)
        finally:
            pump.cancel()
            writer.cancel()
            watch.cancel()
            gone.cancel()
            for task in (pump, writer, watch, gone):
                with contextlib.suppress(BaseException):
                    await task
            for task in list(conn.tasks):  # a turn in flight goes on: it is not the socket's
                task.remove_done_callback(conn.tasks.discard)
            # the trainee's "watching" note ends (a deleted session has no log to note it in)
            if role == "observer" and conn.greeted and not deleted.is_set():
                await _observer_left(coordinator, session_id, user.username)


async def _observer_left(coordinator: Coordinator, session_id: int, name: str) -> None:
    try:
        await coordinator.observer_left(session_id, name)
    except LookupError:  # deleted by another process (the CLI) meanwhile
        pass
    except Exception:
        log.exception("practice: could not record an observer leaving %s", session_id)


async def _close_when_deleted(socket: WebSocket[Any, Any, Any], deleted: asyncio.Event) -> None:
    await deleted.wait()
    with contextlib.suppress(Exception):
        await socket.close(code=c.CLOSE_GONE, reason="this session was deleted")


async def _pump(events: Any, conn: c.Connection) -> None:
    async for data in events:
        conn.deliver(data if isinstance(data, bytes) else str(data).encode())


async def _write(socket: WebSocket[Any, Any, Any], conn: c.Connection) -> None:
    while True:
        data = await conn.outbox.get()
        if data is None:
            log.info("practice: closing a connection to session %s: too slow", conn.session.id)
            await socket.close(code=c.CLOSE_TOO_SLOW, reason="too slow: reconnect with last_seq")
            return
        await socket.send_data(data.decode(), mode="text")


async def _read(
    socket: WebSocket[Any, Any, Any],
    coordinator: Coordinator,
    conn: c.Connection,
    config: RealtimeConfig,
    still_allowed: Callable[[], Awaitable[int | None]],
) -> None:
    while True:
        try:
            raw = await asyncio.wait_for(socket.receive_data(mode="text"), config.idle_timeout_s)
        except TimeoutError:
            if coordinator.turn_in_flight(conn.session.id):
                continue  # the client waits on the server (a slow reply), it is not idle
            with contextlib.suppress(Exception):
                await socket.close(code=c.CLOSE_IDLE, reason="idle: send ping to stay connected")
            return
        except WebSocketDisconnect:
            return
        if not conn.bucket.take():
            _rate_limited(conn)
            continue
        data = raw.encode() if isinstance(raw, str) else raw
        if len(data) > config.max_frame_bytes:
            error_frame(conn, "bad_frame", f"frames are limited to {config.max_frame_bytes} bytes")
            continue
        try:
            msg = client_decoder.decode(data)
        except msgspec.MsgspecError as err:
            code, message = decode_error(err)
            error_frame(conn, code, message)
            continue
        if not isinstance(msg, Ping) and (close := await still_allowed()) is not None:
            # disabled, password reset, token revoked or no longer the team's manager since
            # the socket opened: HTTP refuses them at once, so does this socket
            with contextlib.suppress(Exception):
                await socket.close(code=close, reason="your login is no longer valid")
            return
        await dispatch(coordinator, conn, msg)


def _rate_limited(conn: c.Connection) -> None:
    """Tell a flooding client once a second at most; its frames are dropped meanwhile."""
    now = time.monotonic()
    if now - conn.last_rate_error >= 1.0:
        conn.last_rate_error = now
        error_frame(
            conn,
            "rate_limited",
            "too many frames: slow down",
            retry_after=round(conn.bucket.wait_s(), 2),
        )
