"""One handler per client message type: ``hello``, ``say``, ``end``, ``ping``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from appliance.errors import AppError
from appliance.llm.errors import LLMBusy, LLMUnavailable
from appliance.practice import events as ev
from appliance.practice.coordinator import Coordinator
from appliance.realtime.connection import Connection
from appliance.realtime.protocol import ClientFrame, End, Hello, Ping, Say

log = logging.getLogger(__name__)
Handler = Callable[[Coordinator, Connection, Any], Awaitable[None]]


def error_frame(
    conn: Connection,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    client_turn_id: str | None = None,
) -> None:
    """Queue an ``error`` event for this connection (the connection stays)."""
    event = ev.ErrorEvent(
        seq=conn.delivered_seq,
        code=code,
        message=message,
        retry_after=retry_after,
        client_turn_id=client_turn_id,
    )
    conn.send_direct(ev.encoder.encode(event))


def app_error(conn: Connection, err: AppError, client_turn_id: str | None = None) -> None:
    """An AppError as an ``error`` event, with its retry hint when it has one."""
    retry = None
    if isinstance(err, LLMBusy | LLMUnavailable) and isinstance(err.detail, dict):
        retry = float(err.detail.get("retry_after", 1))
    error_frame(conn, err.code, err.message, retry_after=retry, client_turn_id=client_turn_id)


async def on_hello(coordinator: Coordinator, conn: Connection, msg: Hello) -> None:
    """Send ``welcome`` (the session as it stands), then every stored event after ``last_seq``."""
    session = await coordinator.session(conn.session.id)
    conn.session = session
    ctx = await coordinator.context(session)
    last_seq = coordinator.current_seq(session)
    welcome = ev.Welcome(
        seq=last_seq,
        session={
            "id": session.id,
            "state": session.state,
            "trainee": session.username,
            "turns": session.turns,
            "created_at": session.created_at,
            "ended_at": session.ended_at,
            "end_reason": session.end_reason,
            "report_id": session.report_id,
            "turn_in_flight": coordinator.turn_in_flight(session.id),
        },
        scenario={
            "id": ctx.scenario.id,
            "name": ctx.scenario.name,
            "description": ctx.scenario.description,
            "objective": ctx.scenario.objective,
        },
        persona={
            "id": ctx.persona.id,
            "name": ctx.persona.name,
            "difficulty": ctx.persona.difficulty,
            "description": ctx.persona.description,
            "language": ctx.persona.language,
        },
        stage=ctx.stage.stage,
        slots=ctx.stage.slots,
        mood=ctx.mood,
        history=[
            ev.TurnView(
                turn=t.turn,
                trainee_text=t.trainee_text,
                npc_text=t.npc_text,
                intent=t.intent,
                stage=t.stage,
                mood=t.mood,
            )
            for t in ctx.history
        ],
        last_seq=last_seq,
        role=conn.role,
        observers=coordinator.observers_of(session.id),
        dimensions={d.key: d.name for d in ctx.rubric.dimensions},
    )
    first, conn.greeted = not conn.greeted, True
    conn.ready = False  # live events wait in conn.held while the log is replayed
    conn.send_direct(ev.encoder.encode(welcome))
    if msg.last_seq is None:
        conn.delivered_seq = last_seq
    else:
        conn.delivered_seq = max(0, msg.last_seq)
        for row in await coordinator.repo.events_after(session.id, conn.delivered_seq):
            conn.enqueue(row.body)
    conn.done_turn = max(conn.done_turn, len(ctx.history))
    conn.release_held()
    if conn.role == "trainee" and session.state == "active":
        coordinator.warm(session.id)
    if first and conn.role == "observer":
        await coordinator.observer_joined(session.id, conn.username)


async def on_say(coordinator: Coordinator, conn: Connection, msg: Say) -> None:
    """Run a turn in its own task; the reply reaches every connection through the hub."""
    if conn.role != "trainee":
        error_frame(
            conn,
            "read_only",
            "observers cannot speak in a session",
            client_turn_id=msg.client_turn_id,
        )
        return

    async def run() -> None:
        try:
            outcome = await coordinator.say(conn.session.id, msg.client_turn_id, msg.text)
        except AppError as err:
            app_error(conn, err, msg.client_turn_id)
            return
        except Exception:
            log.exception("practice: turn failed in session %s", conn.session.id)
            error_frame(conn, "internal_error", "internal error", client_turn_id=msg.client_turn_id)
            return
        if outcome.duplicate:  # a resend: this client gets the stored result, no second reply
            for data in outcome.events:
                conn.send_direct(data)

    task = asyncio.ensure_future(run())
    conn.tasks.add(task)
    task.add_done_callback(conn.tasks.discard)


async def on_end(coordinator: Coordinator, conn: Connection, msg: End) -> None:
    """End the session; ``session_ended`` and then ``report_ready`` follow through the hub."""
    if conn.role != "trainee":
        error_frame(conn, "read_only", "observers cannot end a session")
        return
    if not await coordinator.end(conn.session.id):
        error_frame(conn, "session_ended", "the session has already ended")


async def on_ping(coordinator: Coordinator, conn: Connection, msg: Ping) -> None:
    """Answer with ``pong``."""
    conn.send_direct(ev.encoder.encode(ev.Pong(seq=conn.delivered_seq)))


HANDLERS: dict[type[Any], Handler] = {Hello: on_hello, Say: on_say, End: on_end, Ping: on_ping}


async def dispatch(coordinator: Coordinator, conn: Connection, msg: ClientFrame) -> None:
    """Route a decoded frame to its handler; typed errors become ``error`` events."""
    if not conn.ready and not isinstance(msg, Hello | Ping):
        cid = msg.client_turn_id if isinstance(msg, Say) else None  # so a client can match it
        error_frame(conn, "not_ready", "send hello first", client_turn_id=cid)
        return
    try:
        await HANDLERS[type(msg)](coordinator, conn, msg)
    except AppError as err:
        app_error(conn, err)
    except Exception:  # logged with its traceback; the connection stays
        log.exception("practice: %s failed in session %s", type(msg).__name__, conn.session.id)
        error_frame(conn, "internal_error", "internal error")


def decode_error(err: msgspec.MsgspecError) -> tuple[str, str]:
    """The error code and message for a frame that did not decode."""
    text = str(err)
    if isinstance(err, msgspec.ValidationError) and "$.type" in text:
        return "unknown_type", f"unknown message type ({text})"
    if isinstance(err, msgspec.ValidationError):
        return "invalid_message", text
    return "bad_frame", "frames must be JSON objects with a 'type'"
