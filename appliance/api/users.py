"""/api/users: user administration (admins)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromQuery, JSONBody, QueryParameter

from appliance.api.auth import UserOut, actor_of, user_out
from appliance.api.openapi import OptionalBody, documented, errors
from appliance.api.params import PathId, QueryId, one_cursor
from appliance.auth.guards import access
from appliance.auth.service import AuthService
from appliance.db.audit import AuditEntry
from appliance.db.users import Role
from appliance.practice.coordinator import Coordinator
from appliance.practice.retention import SESSIONS_DELETED

Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^\S+$")]
TeamName = Annotated[str, msgspec.Meta(max_length=100)]
"""A team's name; surrounding spaces are dropped and a blank one means no team."""
MAX_AUDIT_PAGE = 1000
"""The most audit entries one request returns (``limit``)."""


class UserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A user to create; without a password one is generated and returned once (a blank
    team, like none, puts them in no team)."""

    username: Username
    role: Role
    team: TeamName | None = None
    display_name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class UserCreatedOut(msgspec.Struct, kw_only=True):
    """The new user, and its generated password if one was made (shown this once)."""

    user: UserOut
    password: str | None


class UserPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay as they are. ``team``: null or a blank name takes
    the user out of their team."""

    role: Role | None = None
    team: TeamName | msgspec.UnsetType | None = msgspec.UNSET
    display_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    disabled: bool | None = None


class PasswordResetIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new password; omit it to have one generated."""

    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class PasswordResetOut(msgspec.Struct, kw_only=True):
    """The new password (shown this once); the user must change it at next login."""

    password: str


@documented
class UserController(Controller):
    """Create, list, change role/team, disable, reset password."""

    path = "/api/users"
    opt = access("admin")

    @get("/")
    async def list_users(self, state: State) -> list[UserOut]:
        """Every user."""
        auth: AuthService = state.auth
        return [user_out(u) for u in await auth.users.list()]

    @post("/", status_code=201, responses=errors(409))
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[UserIn]
    ) -> UserCreatedOut:
        """Create a user."""
        auth: AuthService = state.auth
        user, generated = await auth.create_user(
            actor_of(request),
            username=data.username,
            role=data.role,
            team=data.team,
            password=data.password,
            display_name=data.display_name,
        )
        return UserCreatedOut(user=user_out(user), password=generated)

    @get("/{user_id:int}")
    async def detail(self, state: State, user_id: PathId) -> UserOut:
        """One user."""
        auth: AuthService = state.auth
        return user_out(await auth.get_user(user_id))

    @patch("/{user_id:int}", responses=errors(409))
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        user_id: PathId,
        data: JSONBody[UserPatch],
    ) -> UserOut:
        """Change role, team, display name or disabled; disabling ends their sessions at once."""
        auth: AuthService = state.auth
        user = await auth.update_user(
            actor_of(request),
            user_id,
            role=data.role,
            team=data.team,
            display_name=data.display_name,
            disabled=data.disabled,
        )
        return user_out(user)

    @delete("/{user_id:int}", status_code=204, responses=errors(409))
    async def erase(self, request: Request[Any, Any, Any], state: State, user_id: PathId) -> None:
        """Erase a person: the account, their practice sessions (live ones are stopped, their
        sockets close), API tokens and logins. Documents they uploaded stay, uploader unset.
        Not yourself (409 self_erase), not the last enabled admin (409 last_admin)."""
        auth: AuthService = state.auth
        coordinator: Coordinator = state.coordinator
        actor = actor_of(request)
        await auth.erasable(actor, user_id)  # refuse before anything is deleted
        sessions = await coordinator.delete_sessions(
            await coordinator.repo.session_ids_of_user(user_id)
        )
        counts = await auth.erase_user(actor, user_id, sessions_deleted=len(sessions))
        SESSIONS_DELETED.labels("erasure").inc(counts.sessions)

    @post("/{user_id:int}/reset-password", status_code=200, operation_class=OptionalBody)
    async def reset_password(
        self,
        request: Request[Any, Any, Any],
        state: State,
        user_id: PathId,
        data: JSONBody[PasswordResetIn | None] = None,
    ) -> PasswordResetOut:
        """Set a new password (generated unless given; no body at all also generates one)."""
        auth: AuthService = state.auth
        given = data.password if data is not None else None
        password = await auth.reset_password(actor_of(request), user_id, given)
        return PasswordResetOut(password=password)


@documented
class AuditController(Controller):
    """/api/audit: the audit log (admins)."""

    path = "/api/audit"
    opt = access("admin")

    @get("/")
    async def list_entries(
        self,
        state: State,
        action: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
        before: QueryId = None,
        after: QueryId = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_AUDIT_PAGE)] = 200,
    ) -> list[AuditEntry]:
        """Newest entries first, filtered by action, actor (a username, in any case), the days
        of ``since``..``until`` (included), and ``before`` (an id: the next page of a list that
        ended at that entry). ``after`` (an id) gives the entries past it oldest first, so a
        script that keeps the last id it read syncs forward."""
        one_cursor(before, after)
        auth: AuthService = state.auth
        return await auth.audit.list(
            action,
            limit,
            actor=actor,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
            before=before,
            after=after,
        )
