"""Typed errors of practice sessions; each ``code`` reaches HTTP and WebSocket clients unchanged."""

from __future__ import annotations

from appliance.errors import AppError, Conflict, InvalidInput, NotFound


class EmptyMessage(InvalidInput):
    """The trainee's line is empty."""

    code = "empty_message"


class MessageTooLong(InvalidInput):
    """The trainee's line is over practice.max_message_chars."""

    code = "message_too_long"


class InvalidMessage(InvalidInput):
    """A message field is missing or malformed (e.g. client_turn_id)."""

    code = "invalid_message"


class SessionNotFound(NotFound):
    """No such practice session (or not yours to see)."""

    code = "session_not_found"


class SessionEnded(Conflict):
    """The session has ended: no more turns."""

    code = "session_ended"


class TurnInProgress(Conflict):
    """A turn of this session is being generated; wait for its ``npc_done``."""

    code = "turn_in_progress"


class ReportPending(NotFound):
    """The report is not written yet (the session is still running, or it is being generated)."""

    code = "report_pending"


class UnknownReference(AppError):
    """A scenario, persona or rubric named by the request does not exist (or is archived)."""

    status_code = 422
    code = "unknown_reference"
