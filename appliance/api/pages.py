"""The browser UI: server-rendered pages (Jinja2), static assets, and page-friendly errors.

Every page declares its access level like the API does. A browser that is not logged in
is sent to /login (and one that must change its password to /password) instead of
getting the API's JSON 401; a script without ``Accept: text/html`` still gets the JSON.
The live parts (practice, observe, uploads, search, editors) are small static scripts
that talk to the JSON API and the WebSockets; the page itself never inlines a script.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, Router, get
from litestar.datastructures import Cookie, State
from litestar.datastructures.headers import CacheControlHeader
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from appliance.api.errors import app_error_handler, http_error_handler
from appliance.api.params import PathId, QueryId
from appliance.auth.guards import access, principal_of
from appliance.auth.service import AuthService
from appliance.db.practice import SessionRow
from appliance.db.users import User
from appliance.doctor import run_checks
from appliance.errors import AppError, NotAuthenticated, NotFound, PasswordChangeRequired
from appliance.llm import metrics as llm_metrics
from appliance.practice.access import may_view
from appliance.practice.coordinator import Coordinator
from appliance.practice.model import Report
from appliance.readiness import Readiness
from appliance.web.charts import legend, score_class, trend_svg
from appliance.web.editors import RESOURCES
from appliance.web.i18n import STRINGS, UiLanguage, choose_language
from appliance.web.render import STATIC_DIR, render_page

HTML = "text/html"  # Litestar appends "; charset=utf-8" to text/* itself
LANG_COOKIE_AGE = 365 * 24 * 3600
AUDIT_PAGE = 100
"""Audit entries per page of /admin/audit."""


def _language(request: Request[Any, Any, Any]) -> tuple[UiLanguage, bool]:
    """The UI language, and whether it came from ?lang= (then it is remembered in a cookie)."""
    query = request.query_params.get("lang")
    lang = choose_language(
        query, request.cookies.get("lang"), request.headers.get("accept-language", "")
    )
    return lang, query == lang


def _user(request: Request[Any, Any, Any]) -> User | None:
    principal = principal_of(request)
    return None if principal is None else principal.user


def page(
    request: Request[Any, Any, Any],
    template: str,
    name: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response[str]:
    """Render a page for the caller in their language."""
    lang, remember = _language(request)
    # the language switch keeps the rest of the query (?next= on the login page, ?page= ...)
    other = "en" if lang == "zh" else "zh"
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    switch_href = "?" + urlencode([*kept, ("lang", other)])
    html = render_page(
        template,
        lang=lang,
        path=request.url.path,
        user=_user(request),
        page=name,
        switch_href=switch_href,
        **context,
    )
    cookies = (
        [Cookie(key="lang", value=lang, max_age=LANG_COOKIE_AGE, samesite="strict", path="/")]
        if remember
        else []
    )
    return Response(
        html,
        media_type=HTML,
        status_code=status_code,
        cookies=cookies,
        headers={"cache-control": "no-store"},
    )


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    return "text/html" in request.headers.get("accept", "")


def page_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    """Pages: log in / change password first by redirect; other errors as an HTML page."""
    if not _wants_html(request):
        return app_error_handler(request, exc)
    if isinstance(exc, NotAuthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target)}", status_code=303)
    if isinstance(exc, PasswordChangeRequired):
        return Redirect("/password", status_code=303)
    return page(
        request,
        "error.html",
        "error",
        status_code=exc.status_code,
        code=exc.code,
        message=exc.message,
    )


NOT_PAGES = ("/api/", "/ws/", "/static/")


def page_http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """A browser that asks for a page that does not exist (a mistyped or stale link) gets the
    HTML error page with a way back, not the API's JSON; scripts and the API get the JSON."""
    path = request.url.path
    if (
        isinstance(exc, NotFoundException)
        and request.method in ("GET", "HEAD")
        and _wants_html(request)
        and not path.startswith(NOT_PAGES)
    ):
        lang, _ = _language(request)
        return page(
            request,
            "error.html",
            "error",
            status_code=404,
            code="not_found",
            message=STRINGS[lang]["page_missing"],
        )
    return http_error_handler(request, exc)


def _home_of(user: User) -> str:
    if user.must_change_password:
        return "/password"
    return "/team" if user.role == "manager" else "/home"


def _safe_next(value: str | None) -> str:
    """Only a local path may be a redirect target after login."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _coordinator(state: State) -> Coordinator:
    coordinator: Coordinator = state.coordinator
    return coordinator


def _principal_user(request: Request[Any, Any, Any]) -> User:
    user = _user(request)
    if user is None:  # the guard refused already; this keeps the types honest
        raise NotAuthenticated("log in first")
    return user


async def _trends(
    state: State, user_id: int
) -> tuple[list[tuple[int, str, float]], dict[str, list[float | None]], dict[str, str]]:
    """(session, date, overall) per report; per dimension key, its score in each of those
    reports (None where the report has no such dimension or the call never reached it, so the
    lists line up with the reports for the chart); and the dimension names.

    A dimension a call never reached (``shown`` false) adds no score: team means are of the
    dimensions trainees showed."""
    coordinator = _coordinator(state)
    overall: list[tuple[int, str, float]] = []
    per_report: list[dict[str, float]] = []
    names: dict[str, str] = {}
    rows = await coordinator.repo.reports_of_user(user_id)
    for row in sorted(rows, key=lambda r: (r.created_at, r.id)):
        report = msgspec.json.decode(row.body, type=Report)
        overall.append((row.session_id, row.created_at, report.overall))
        per_report.append({d.key: d.score for d in report.dimensions if d.shown})
        names.update({d.key: d.name for d in report.dimensions})
    dims = {
        key: [scores.get(key) for scores in per_report]
        for key in names
        if any(key in scores for scores in per_report)
    }
    return overall, dims, names


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


class PublicPages(Controller):
    """Pages anyone may open."""

    opt = access("public")
    include_in_schema = False

    @get("/")
    async def root(self, request: Request[Any, Any, Any]) -> Redirect:
        """The start page of the caller's role, or the login page."""
        user = _user(request)
        return Redirect(_home_of(user) if user else "/login", status_code=303)

    @get("/login")
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The login form (a logged-in caller goes straight on)."""
        nxt = _safe_next(request.query_params.get("next"))
        user = _user(request)
        if user is not None:
            return Redirect(nxt if nxt != "/" else _home_of(user), status_code=303)
        return page(request, "login.html", "login", next=nxt)


class UserPages(Controller):
    """Pages for every logged-in user."""

    opt = access("user")
    include_in_schema = False

    @get("/password", opt=access("user", password_change_ok=True))
    async def password(self, request: Request[Any, Any, Any]) -> Response[str]:
        """Change one's own password (forced on first login)."""
        return page(request, "password.html", "password")

    @get("/home")
    async def home(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """Trainee home: scenarios to practise (filled by script) and recent sessions."""
        user = _principal_user(request)
        coordinator = _coordinator(state)
        sessions = await coordinator.repo.list_sessions(user_id=user.id, limit=10)
        return page(request, "home.html", "home", sessions=sessions)

    @get("/history")
    async def history(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """Every session of mine, with the score trend chart."""
        user = _principal_user(request)
        coordinator = _coordinator(state)
        sessions = await coordinator.repo.list_sessions(user_id=user.id, limit=200)
        overall, dims, names = await _trends(state, user.id)
        lang, _ = _language(request)
        series: dict[str, list[float | None]] = {
            STRINGS[lang]["overall"]: [s for _, _, s in overall]
        }
        series.update({names[k]: v for k, v in dims.items()})
        chart = trend_svg(series, label=STRINGS[lang]["trend"]) if overall else None
        return page(
            request,
            "history.html",
            "history",
            sessions=sessions,
            chart=chart,
            legend=legend(list(series)),
        )

    @get("/practice/{session_id:int}")
    async def practice(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> Response[str]:
        """The live practice page (the script connects to /ws/practice/{id})."""
        user = _principal_user(request)
        coordinator = _coordinator(state)
        session = await coordinator.repo.get_session(session_id)
        if session is None or session.user_id != user.id:
            raise NotFound(f"practice session {session_id} does not exist")
        return page(
            request,
            "practice.html",
            "practice",
            session_id=session_id,
            mode="practice",
            max_chars=state.settings.realtime.max_message_chars,
        )

    @get("/tokens")
    async def tokens(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """My API tokens (an admin sees everyone's)."""
        auth: AuthService = state.auth
        principal = principal_of(request)
        if principal is None:
            raise NotAuthenticated("log in first")
        return page(request, "tokens.html", "tokens", tokens=await auth.list_tokens(principal))

    @get("/knowledge/documents/{document_id:int}")
    async def document(
        self, request: Request[Any, Any, Any], state: State, document_id: PathId
    ) -> Response[str]:
        """One document: its routes per page (a citation links to ?page=N#page-N here).

        A document without pages (Word, Excel, CSV, text) shows its stored passages instead,
        the cited one (``?passage=N``, a search citation's ``passage``) marked.
        """
        service = state.knowledge
        document = await service.get_document(document_id)
        job = await service.jobs.latest_for(document_id)
        cited = _digits(request.query_params.get("page"))
        cited_passage = _digits(request.query_params.get("passage"))
        paged = any(isinstance(r.get("page"), int) for r in document.routes)
        passages: list[dict[str, Any]] = []
        first = total = 0
        if cited:
            passages = await service.page_passages(document_id, cited)
        elif not paged and document.state == "done":
            everything = await service.document_passages(document_id)
            total = len(everything)
            if total > PASSAGES_SHOWN and cited_passage is not None:
                at = next(
                    (n for n, p in enumerate(everything) if p["parent_index"] == cited_passage), 0
                )
                first = max(0, min(at - PASSAGES_SHOWN // 2, total - PASSAGES_SHOWN))
            passages = everything[first : first + PASSAGES_SHOWN]
        return page(
            request,
            "document.html",
            "document",
            document=document,
            job=job,
            cited_page=cited,
            cited_passage=cited_passage,
            paged=paged,
            passages=passages,
            passages_first=first,
            passages_total=total,
        )


PASSAGES_SHOWN = 300
"""Passages one document page shows of a document without pages (around the cited one)."""


def _digits(raw: str | None) -> int | None:
    """A non-negative number from a query parameter; None for anything else."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


class ManagerPages(Controller):
    """Pages for managers (and admins)."""

    opt = access("manager")
    include_in_schema = False

    @get("/team")
    async def team(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """Trainees x rubric dimensions (latest and mean), with each trainee's overall trend."""
        user = _principal_user(request)
        auth: AuthService = state.auth
        members = await auth.users.list(team_id=user.team_id) if user.team_id else []
        if user.role == "admin":
            members = await auth.users.list()
        trainees = [m for m in members if m.role == "trainee"]
        rows: list[dict[str, Any]] = []
        dim_names: dict[str, str] = {}
        overall_label = STRINGS[_language(request)[0]]["overall"]
        for member in trainees:
            overall, dims, names = await _trends(state, member.id)
            dim_names.update(names)
            rows.append(
                {
                    "user": member,
                    "reports": len(overall),
                    "overall": overall[-1][2] if overall else None,
                    "means": {k: _mean(v) for k, v in dims.items()},
                    "spark": trend_svg(
                        {overall_label: [s for _, _, s in overall]},
                        width=160,
                        height=48,
                        label=member.username,
                        axes=False,
                    )
                    if overall
                    else None,
                }
            )
        coordinator = _coordinator(state)
        sessions: list[SessionRow] = []
        if user.role == "admin":
            sessions = await coordinator.repo.list_sessions(limit=200)
        elif user.team_id is not None:
            sessions = await coordinator.repo.list_sessions(team_id=user.team_id, limit=200)
        return page(
            request,
            "team.html",
            "team",
            rows=rows,
            dims=dim_names,
            score_class=score_class,
            sessions=sessions,
        )

    @get("/live")
    async def live(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """Sessions running now that I may observe."""
        user = _principal_user(request)
        coordinator = _coordinator(state)
        sessions: list[SessionRow] = []
        if user.role == "admin":
            sessions = await coordinator.repo.list_sessions(state="active", limit=200)
        elif user.team_id is not None:
            sessions = await coordinator.repo.list_sessions(
                team_id=user.team_id, state="active", limit=200
            )
        return page(request, "live.html", "live", sessions=sessions)

    @get("/observe/{session_id:int}")
    async def observe(
        self, request: Request[Any, Any, Any], state: State, session_id: PathId
    ) -> Response[str]:
        """A read-only live view (the script connects to /ws/observe/{id})."""
        user = _principal_user(request)
        coordinator = _coordinator(state)
        session = await coordinator.repo.get_session(session_id)
        # another team's session is "not found", as in the API: ids do not leak
        if session is None or not may_view(
            session, user_id=user.id, role=user.role, team_id=user.team_id
        ):
            raise NotFound(f"practice session {session_id} does not exist")
        return page(request, "practice.html", "observe", session_id=session_id, mode="observe")

    @get("/editors/{kind:str}")
    async def editor(self, request: Request[Any, Any, Any], kind: FromPath[str]) -> Response[str]:
        """The editor of one domain resource (scenarios, personas, rubrics, products, rules)."""
        resource = RESOURCES.get(kind)
        if resource is None:
            raise NotFound(f"no editor for {kind!r}; try one of {', '.join(RESOURCES)}")
        return page(
            request,
            "editor.html",
            "editor",
            resource=resource,
            resources=list(RESOURCES.values()),
            fields=[dataclasses.asdict(f) for f in resource.fields],
        )

    @get("/knowledge")
    async def knowledge(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """The knowledge library: upload, progress, routes, search."""
        documents = await state.knowledge.documents.list_documents(limit=500)
        return page(
            request,
            "knowledge.html",
            "knowledge",
            documents=documents,
            max_body_bytes=state.settings.server.max_body_bytes,  # a drop goes up in batches under it
        )


class AdminPages(Controller):
    """Pages for admins."""

    opt = access("admin")
    include_in_schema = False

    @get("/admin/users")
    async def users(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """Create users, change role and team, disable, reset passwords."""
        auth: AuthService = state.auth
        return page(request, "users.html", "users", users=await auth.users.list())

    @get("/admin/audit")
    async def audit(
        self,
        request: Request[Any, Any, Any],
        state: State,
        action: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        before: QueryId = None,
    ) -> Response[str]:
        """The audit log, newest first, a page at a time, filtered by action and actor."""
        auth: AuthService = state.auth
        found = await auth.audit.list(action or None, AUDIT_PAGE + 1, actor=actor, before=before)
        entries = found[:AUDIT_PAGE]
        return page(
            request,
            "audit.html",
            "audit",
            entries=entries,
            actions=await auth.audit.actions(),
            action=action or "",
            actor=actor or "",
            next_before=entries[-1].id if len(found) > AUDIT_PAGE else None,
        )

    @get("/admin/system")
    async def system(self, request: Request[Any, Any, Any], state: State) -> Response[str]:
        """What doctor and /readyz report, the LLM queue and breaker."""
        readiness: Readiness = state.readiness
        started = time.perf_counter()
        ready, doctor = await asyncio.gather(
            readiness.checks(), anyio.to_thread.run_sync(run_checks, state.settings)
        )
        doctor = [c for c in doctor if c.name != "port"]  # the port is in use: by this server
        llm_state = state.llm.state()
        queue: dict[str, float] = {}
        active = 0.0
        for family in llm_metrics.QUEUE_DEPTH.collect():
            for sample in family.samples:
                if sample.labels.get("backend") == llm_state.backend:
                    queue[sample.labels.get("priority", "")] = sample.value
        for family in llm_metrics.ACTIVE_SEQUENCES.collect():
            for sample in family.samples:
                if sample.labels.get("backend") == llm_state.backend:
                    active = sample.value
        return page(
            request,
            "system.html",
            "system",
            ready=ready,
            doctor=doctor,
            llm=llm_state,
            queue=queue,
            active=active,
            backups=state.scheduled_backup.status,
            loop_lag=state.loop_lag.summary(),
            took_ms=round((time.perf_counter() - started) * 1000),
        )


def static_router() -> Router:
    """/static: the UI's CSS and scripts (public; cached for an hour)."""
    return create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        opt=access("public"),
        cache_control=CacheControlHeader(max_age=3600),
        include_in_schema=False,
    )


def page_router() -> Router:
    """Every page, with the HTML-friendly error handler."""
    return Router(
        "/",
        route_handlers=[PublicPages, UserPages, ManagerPages, AdminPages],
        exception_handlers={AppError: page_error_handler},
        include_in_schema=False,
    )
