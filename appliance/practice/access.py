"""Who may see or drive a practice session: its trainee drives it; their manager and admins watch."""

from __future__ import annotations

from appliance.db.practice import SessionRow


def may_practice(session: SessionRow, user_id: int) -> bool:
    """Only the session's own trainee sends turns."""
    return session.user_id == user_id


def may_view(session: SessionRow, *, user_id: int, role: str, team_id: int | None) -> bool:
    """The trainee, an admin, or a manager of the session's team."""
    if session.user_id == user_id or role == "admin":
        return True
    return role == "manager" and team_id is not None and team_id == session.team_id


def may_delete(session: SessionRow, *, role: str, team_id: int | None) -> bool:
    """An admin, or a manager of the session's team (a trainee cannot delete, not even their own)."""
    if role == "admin":
        return True
    return role == "manager" and team_id is not None and team_id == session.team_id
