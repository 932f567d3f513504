"""Server events of a practice session: what the coordinator stores in the event log and publishes.

Sequence numbers: every stored event takes the next per-session ``seq`` and is written to the
session's event log before anyone sees it. ``npc_delta`` is never stored and takes no number of
its own: it carries the ``seq`` of the last stored event (it happens *after* that one) and its
``index`` within the turn. A client that reconnects with ``hello{last_seq}`` gets every stored
event after ``last_seq``; the deltas of a finished turn are not replayed, its ``npc_done`` carries
the whole text. ``error``, ``pong`` and ``welcome`` go to one connection and carry the current
``seq`` without advancing it. The WebSocket protocol itself is appliance.realtime.protocol.
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.practice.model import Citation, Stage

PROTOCOL_VERSION = 1


class ServerEvent(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=False):
    """Base of what the server sends; ``seq`` as described in the module docstring."""

    v: int = PROTOCOL_VERSION
    seq: int = 0
    at: float = 0.0
    """Server time (Unix seconds) when the event was sent (or stored, for stored events)."""


class TurnView(msgspec.Struct, kw_only=True):
    """A committed turn as the client sees it."""

    turn: int
    trainee_text: str
    npc_text: str
    intent: str
    stage: Stage
    mood: float


class Welcome(ServerEvent, tag="welcome"):
    """The session as it stands, sent first on every connection."""

    session: dict[str, Any]
    scenario: dict[str, Any]
    persona: dict[str, Any]
    stage: Stage
    slots: dict[str, bool]
    mood: float
    history: list[TurnView]
    last_seq: int
    role: str
    """``trainee`` or ``observer``."""
    observers: list[str] = msgspec.field(default_factory=list)
    """Who observes the session now (live connections; the stored ``observer_joined`` and
    ``observer_left`` events up to ``last_seq`` are history)."""
    dimensions: dict[str, str] = msgspec.field(default_factory=dict)
    """The rubric's dimensions, key -> name (``turn_score`` events carry the keys)."""


class NpcDelta(ServerEvent, tag="npc_delta"):
    """A piece of the customer's reply as it is generated (not stored)."""

    turn: int
    index: int
    text: str


class NpcDone(ServerEvent, tag="npc_done"):
    """The customer's whole reply; the turn is committed when this is sent."""

    turn: int
    text: str
    mood: float
    stage: Stage
    client_turn_id: str
    trainee_text: str
    slots: dict[str, bool] = msgspec.field(default_factory=dict)
    """Every stage slot after this turn (a turn can fill slots without changing the stage, so
    ``stage_changed`` alone would leave the page's list behind); empty in events stored
    before the field existed."""


class IntentEvent(ServerEvent, tag="intent"):
    """The intent of the customer's reply."""

    turn: int
    label: str
    confidence: float


class CoachTipEvent(ServerEvent, tag="coach_tip"):
    """The coach's advice after a turn."""

    turn: int
    advice: str
    script_example: str
    stage_hint: Stage | None
    citations: list[Citation]


class TurnScoreEvent(ServerEvent, tag="turn_score"):
    """The evaluator's quick score of a turn, per rubric dimension."""

    turn: int
    scores: dict[str, float]


class StageChanged(ServerEvent, tag="stage_changed"):
    """The conversation moved to another stage."""

    from_stage: Stage = msgspec.field(name="from")
    to_stage: Stage = msgspec.field(name="to")
    slots: dict[str, bool]
    reason: str
    turn: int


class ComplianceFlagEvent(ServerEvent, tag="compliance_flag"):
    """A compliance rule hit, in the trainee's or the customer's text."""

    turn: int
    who: str
    rule: str
    severity: str
    excerpt: str
    action: str
    """``flagged`` (warn, or a trainee's block) or ``removed`` (a customer's blocked sentence)."""


class ReportReady(ServerEvent, tag="report_ready"):
    """The end-of-session report is stored."""

    report_id: int
    overall: float
    scored: bool = True
    """False for a session with nothing to score (no turns): ``overall`` is then 0 and means nothing."""


class SessionEnded(ServerEvent, tag="session_ended"):
    """The session was ended (the report follows)."""

    reason: str


class ObserverJoined(ServerEvent, tag="observer_joined"):
    """A manager started observing this session."""

    observer: str
    observers: list[str] = msgspec.field(default_factory=list)
    """Who observes the session now, this one included (one name per user)."""


class ObserverLeft(ServerEvent, tag="observer_left"):
    """A manager stopped observing this session (their connection closed)."""

    observer: str
    observers: list[str] = msgspec.field(default_factory=list)
    """Who still observes the session (one name per user)."""


class ErrorEvent(ServerEvent, tag="error"):
    """Something this connection sent was refused; the connection stays unless it is closed."""

    code: str
    message: str
    retry_after: float | None = None
    client_turn_id: str | None = None


class Pong(ServerEvent, tag="pong"):
    """Answer to ``ping``."""


StoredEvent = (
    NpcDone
    | IntentEvent
    | CoachTipEvent
    | TurnScoreEvent
    | StageChanged
    | ComplianceFlagEvent
    | ReportReady
    | SessionEnded
    | ObserverJoined
    | ObserverLeft
)
AnyServerEvent = StoredEvent | Welcome | NpcDelta | ErrorEvent | Pong

encoder = msgspec.json.Encoder()
stored_decoder = msgspec.json.Decoder(StoredEvent)


def event_type(event: ServerEvent) -> str:
    """The ``type`` tag of an event."""
    return str(type(event).__struct_config__.tag)
