"""The practice WebSocket protocol: every frame is JSON, a msgspec tagged union on ``type``.

Client -> server: ``hello{last_seq?}``, ``say{client_turn_id, text}``, ``end``, ``ping``.
Server -> client: the events of appliance.practice.events (``welcome``, ``npc_delta``,
``npc_done``, ``intent``, ``coach_tip``, ``turn_score``, ``stage_changed``, ``compliance_flag``,
``session_ended``, ``report_ready``, ``observer_joined``, ``error``, ``pong``), each with the
protocol version ``v`` and the session's ``seq`` (see that module for how ``seq`` works).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from appliance.errors import SQLITE_INT_MAX
from appliance.practice.events import PROTOCOL_VERSION, AnyServerEvent


class ClientMessage(msgspec.Struct, tag_field="type", kw_only=True, forbid_unknown_fields=False):
    """Base of what a client sends."""

    v: int = PROTOCOL_VERSION


class Hello(ClientMessage, tag="hello"):
    """Start (or resume) receiving: events after ``last_seq`` are replayed first."""

    last_seq: Annotated[int, msgspec.Meta(ge=0, le=SQLITE_INT_MAX)] | None = None


class Say(ClientMessage, tag="say"):
    """The trainee's line; ``client_turn_id`` makes a resend (double click, reconnect) harmless."""

    client_turn_id: str
    text: str


class End(ClientMessage, tag="end"):
    """End the session; the report follows as ``report_ready``."""


class Ping(ClientMessage, tag="ping"):
    """Keep-alive; answered with ``pong``."""


ClientFrame = Hello | Say | End | Ping


client_decoder = msgspec.json.Decoder(ClientFrame)
server_decoder = msgspec.json.Decoder(AnyServerEvent)
