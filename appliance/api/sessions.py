"""/api/sessions: create, list, CSV export, detail with transcript, end, report (JSON and printable
HTML), trends."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, JSONBody, QueryParameter

from appliance.api.auth import actor_of
from appliance.api.openapi import documented, errors
from appliance.api.params import PathId, QueryId, RowId, one_cursor
from appliance.auth.guards import access, principal_of
from appliance.auth.service import Principal
from appliance.db.practice import SessionRow, TurnRow
from appliance.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from appliance.practice.access import may_delete, may_practice, may_view
from appliance.practice.coordinator import Coordinator
from appliance.practice.errors import ReportPending, SessionNotFound
from appliance.practice.export import sessions_csv
from appliance.practice.model import Report
from appliance.practice.retention import SESSIONS_DELETED
from appliance.web.reports import render_report_html, render_report_pending_html

CSV = "text/csv"

Scope = Literal["mine", "team", "all"]
"""Whose sessions to list (the query parameter `scope`; Litestar reserves that name)."""


class SessionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Start practising a scenario with a persona."""

    scenario_id: RowId
    persona_id: RowId


class SessionOut(msgspec.Struct, kw_only=True):
    """A practice session's summary."""

    id: int
    user_id: int
    trainee: str
    team_id: int | None
    team: str | None
    """The team's name (as on the user, ``GET /api/users``); null when started in no team."""
    scenario_id: int
    persona_id: int
    rubric_id: int
    rubric_version: int
    language: str
    state: str
    stage: str
    mood: float
    turns: int
    last_seq: int
    created_at: str
    ended_at: str | None
    end_reason: str | None
    """Why it ended: ``trainee`` (End on the practice page), ``api`` (``POST .../end``) or
    ``idle`` (the appliance ended it after ``practice.idle_end_minutes`` without a line)."""
    report_id: int | None
    overall: float | None
    websocket: str


class TurnOut(msgspec.Struct, kw_only=True):
    """One committed turn of the transcript."""

    turn: int
    trainee_text: str
    npc_text: str
    trainee_intent: str
    intent: str
    intent_confidence: float
    stage: str
    mood: float
    ttft_ms: float | None
    created_at: str


class SessionDetail(msgspec.Struct, kw_only=True):
    """A session with its transcript, slots and tool calls."""

    session: SessionOut
    slots: dict[str, bool]
    transcript: list[TurnOut]
    tool_calls: list[dict[str, Any]]


class TrendPoint(msgspec.Struct, kw_only=True):
    """One report's score of one dimension."""

    session_id: int
    date: str
    score: float


class Trends(msgspec.Struct, kw_only=True):
    """A trainee's scores over time: overall and per rubric dimension key.

    A dimension a call never reached (``shown: false`` in its report) has no point in that
    dimension's list: it says where the call ended, not how good the trainee is at it."""

    user_id: int
    overall: list[TrendPoint]
    dimensions: dict[str, list[TrendPoint]]


def _utc_stamp(moment: datetime) -> str:
    """``moment`` as the database writes its times (UTC, milliseconds, ``Z``); a time given
    without an offset is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _out(s: SessionRow) -> SessionOut:
    return SessionOut(
        id=s.id,
        user_id=s.user_id,
        trainee=s.username,
        team_id=s.team_id,
        team=s.team,
        scenario_id=s.scenario_id,
        persona_id=s.persona_id,
        rubric_id=s.rubric_id,
        rubric_version=s.rubric_version,
        language=s.language,
        state=s.state,
        stage=s.stage,
        mood=s.mood,
        turns=s.turns,
        last_seq=s.last_seq,
        created_at=s.created_at,
        ended_at=s.ended_at,
        end_reason=s.end_reason,
        report_id=s.report_id,
        overall=s.overall,
        websocket=f"/ws/practice/{s.id}",
    )


def _turn(t: TurnRow) -> TurnOut:
    return TurnOut(
        turn=t.turn,
        trainee_text=t.trainee_text,
        npc_text=t.npc_text,
        trainee_intent=t.trainee_intent,
        intent=t.intent,
        intent_confidence=t.intent_confidence,
        stage=t.stage,
        mood=t.mood,
        ttft_ms=t.ttft_ms,
        created_at=t.created_at,
    )


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal = principal_of(request)
    if principal is None:  # the guard already refused; this keeps the types honest
        raise NotAuthenticated("log in first")
    return principal


async def _viewable(coordinator: Coordinator, principal: Principal, session_id: int) -> SessionRow:
    """The session if the caller may see it; else not found (never says whose it is)."""
    session = await coordinator.repo.get_session(session_id)
    user = principal.user
    if session is None or not may_view(
        session, user_id=user.id, role=user.role, team_id=user.team_id
    ):
        raise SessionNotFound(f"practice session {session_id} does not exist")
    return session


def _scope_filter(principal: Principal, view: Scope) -> tuple[int | None, int | None]:
    """(user id, team id) to filter a scope's sessions by; Forbidden when the caller's role
    does not reach that scope."""
    user = principal.user
    if view == "mine":
        return user.id, None
    if view == "team":
        if user.role == "trainee" or user.team_id is None:
            raise Forbidden("scope=team is for managers with a team")
        return None, user.team_id
    if user.role != "admin":
        raise Forbidden("scope=all is for admins")
    return None, None


@documented
class SessionController(Controller):
    """Practice sessions over HTTP; the turns themselves go over /ws/practice/{id}."""

    path = "/api/sessions"
    opt = access("user")

    @post("/", status_code=201, responses=errors(422))
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[SessionIn]
    ) -> SessionOut:
        """Start a session (the caller is its trainee)."""
        user = _principal(request).user
        coordinator: Coordinator = state.coordinator
        session = await coordinator.create_session(
            user_id=user.id,
            team_id=user.team_id,
            scenario_id=data.scenario_id,
            persona_id=data.persona_id,
        )
        return _out(session)

    @get("/")
    async def list_sessions(
        self,
        request: Request[Any, Any, Any],
        state: State,
        view: Annotated[Scope, QueryParameter(name="scope")] = "mine",
        session_state: Annotated[
            Literal["active", "ended"] | None, QueryParameter(name="state")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        before: QueryId = None,
        after: QueryId = None,
        ended_since: FromQuery[datetime | None] = None,
    ) -> list[SessionOut]:
        """Mine (default); a manager's team (``scope=team``); everyone's for admins (``scope=all``).

        Newest first; ``before`` (an id) gives the page after one that ended at that session.
        ``after`` (an id) gives the sessions past it oldest first, so a script that keeps the
        last id it read syncs forward (an id is never given twice). ``ended_since`` (an RFC 3339
        time) keeps the sessions that ended then or later: how a script collects the reports
        written since its last run (``state=ended&ended_since=...``)."""
        one_cursor(before, after)
        coordinator: Coordinator = state.coordinator
        user_id, team_id = _scope_filter(_principal(request), view)
        rows = await coordinator.repo.list_sessions(
            user_id=user_id,
            team_id=team_id,
            state=session_state,
            limit=limit,
            before=before,
            after=after,
            ended_since=None if ended_since is None else _utc_stamp(ended_since),
        )
        return [_out(r) for r in rows]

    @get("/export.csv", media_type=CSV)
    async def export_csv(
        self,
        request: Request[Any, Any, Any],
        state: State,
        view: Annotated[Scope, QueryParameter(name="scope")] = "mine",
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
    ) -> Response[str]:
        """The sessions of a scope (as for the list) as a spreadsheet: one row per session with
        its scores per rubric dimension; ``since``/``until`` (dates, included) bound the day it
        started."""
        if since is not None and until is not None and until < since:
            raise InvalidInput("until is before since", detail={"field": "until"})
        coordinator: Coordinator = state.coordinator
        user_id, team_id = _scope_filter(_principal(request), view)
        rows = await coordinator.repo.export_rows(
            user_id=user_id,
            team_id=team_id,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
        )
        name = f"salesboost-sessions-{view}-{datetime.now(UTC).date().isoformat()}.csv"
        return Response(
            sessions_csv(rows),
            media_type=CSV,  # Litestar adds "; charset=utf-8" to a text/ type
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @get("/{session_id:int}")
    async def detail(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> SessionDetail:
        """A session with its transcript."""
        coordinator: Coordinator = state.coordinator
        session = await _viewable(coordinator, _principal(request), session_id)
        turns = await coordinator.repo.turns(session_id)
        return SessionDetail(
            session=_out(session),
            slots=session.slots,
            transcript=[_turn(t) for t in turns],
            tool_calls=await coordinator.repo.tool_calls(session_id),
        )

    @post("/{session_id:int}/end", status_code=202)
    async def end(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> SessionOut:
        """End a session (its trainee, or an admin); the report is written in the background."""
        coordinator: Coordinator = state.coordinator
        principal = _principal(request)
        session = await _viewable(coordinator, principal, session_id)
        if not (may_practice(session, principal.user.id) or principal.user.role == "admin"):
            raise Forbidden("only the session's trainee or an admin can end it")
        await coordinator.end(session_id, reason="api")
        return _out(await coordinator.session(session_id))

    @delete("/{session_id:int}", status_code=204)
    async def delete_session(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> None:
        """Delete a session with its transcript, events, report and tool calls (admins, and
        managers of its team). A live session is stopped first; its sockets close with 4410."""
        coordinator: Coordinator = state.coordinator
        principal = _principal(request)
        session = await _viewable(coordinator, principal, session_id)
        user = principal.user
        if not may_delete(session, role=user.role, team_id=user.team_id):
            raise Forbidden("only an admin or a manager of the session's team can delete it")
        deleted = await coordinator.delete_session(session_id)
        SESSIONS_DELETED.labels("api").inc()
        actor = actor_of(request)
        # what was deleted, never what was said in it
        await state.auth.audit.record(
            "session_deleted",
            actor=actor.name,
            actor_id=actor.id,
            target=f"session:{session_id}",
            ip=actor.ip,
            detail={"user_id": deleted.user_id, "state": deleted.state, "turns": deleted.turns},
        )

    @get("/{session_id:int}/report")
    async def report(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> Report:
        """The end-of-session report (404 ``report_pending`` until it is written)."""
        coordinator: Coordinator = state.coordinator
        await _viewable(coordinator, _principal(request), session_id)
        return await coordinator.report(session_id)

    @get(
        "/{session_id:int}/report.html",
        media_type=MediaType.HTML,
        responses={
            202: ResponseSpec(
                str,
                media_type=MediaType.HTML,
                description="The report is still being written: a page that reloads itself.",
                generate_examples=False,
            )
        },
    )
    async def report_html(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> Response[str]:
        """The report as a printable page; until it is written, a page that reloads itself
        (202), so a link opened at the end of a call, or bookmarked, shows no raw JSON."""
        coordinator: Coordinator = state.coordinator
        principal = _principal(request)
        session = await _viewable(coordinator, principal, session_id)
        back = "/history" if session.user_id == principal.user.id else "/team"
        try:
            report = await coordinator.report(session_id)
        except ReportPending:
            pending = render_report_pending_html(session_id, session.language, back_href=back)
            return Response(pending, media_type="text/html", status_code=202)
        ctx = await coordinator.context(session)
        html = render_report_html(
            report, ctx, session.username, end_reason=session.end_reason, back_href=back
        )
        return Response(html, media_type="text/html")


@documented
class TrendController(Controller):
    """A trainee's score trend per rubric dimension."""

    path = "/api/trends"
    opt = access("user")

    @get("/{user_id:int}")
    async def trends(
        self, request: Request[Any, Any, Any], state: State, user_id: PathId
    ) -> Trends:
        """Overall and per-dimension scores of a trainee's reports, oldest first.

        Trainees see their own; managers their team's; admins everyone's.
        """
        user = _principal(request).user
        auth = state.auth
        target = await auth.users.get(user_id)
        visible = user.id == user_id or user.role == "admin"
        if not visible and target is not None and user.role == "manager":
            visible = user.team_id is not None and target.team_id == user.team_id
        if target is None or not visible:
            raise NotFound(f"no user {user_id} whose trends you may see")  # ids do not leak
        coordinator: Coordinator = state.coordinator
        overall: list[TrendPoint] = []
        dims: dict[str, list[TrendPoint]] = {}
        for row in await coordinator.repo.reports_of_user(user_id):
            report = msgspec.json.decode(row.body, type=Report)
            overall.append(
                TrendPoint(session_id=row.session_id, date=row.created_at, score=report.overall)
            )
            for d in report.dimensions:
                if d.shown:
                    dims.setdefault(d.key, []).append(
                        TrendPoint(session_id=row.session_id, date=row.created_at, score=d.score)
                    )
        return Trends(user_id=user_id, overall=overall, dimensions=dims)
