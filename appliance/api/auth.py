"""Login, logout, who-am-I, own password, and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from appliance.api.openapi import documented, errors
from appliance.api.params import PathId
from appliance.auth.guards import access, principal_of
from appliance.auth.service import Actor, AuthService, Principal
from appliance.db.tokens import ApiToken
from appliance.db.users import User
from appliance.errors import InvalidInput, NotAuthenticated


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Credentials."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class UserOut(msgspec.Struct, kw_only=True):
    """A user as the API shows it."""

    id: int
    username: str
    display_name: str
    role: str
    team: str | None
    disabled: bool
    must_change_password: bool
    created_at: str


def user_out(user: User) -> UserOut:
    """A stored user as its public shape."""
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        team=user.team,
        disabled=user.disabled,
        must_change_password=user.must_change_password,
        created_at=user.created_at,
    )


class PasswordChangeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Own password change."""

    current_password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    new_password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class TokenIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A token to create."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class TokenCreatedOut(msgspec.Struct, kw_only=True):
    """The new token: shown this once."""

    id: int
    name: str
    token: str


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The peer address (the appliance does not trust X-Forwarded-For)."""
    return request.client.host if request.client else ""


def actor_of(request: Request[Any, Any, Any]) -> Actor:
    """The audited actor for a request."""
    principal = principal_of(request)
    if principal is None:
        return Actor(name="anonymous", ip=client_ip(request))
    return Actor(name=principal.user.username, id=principal.user.id, ip=client_ip(request))


def require_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller (the guard has already made sure there is one)."""
    principal = principal_of(request)
    if principal is None:
        raise NotAuthenticated("not logged in")
    return principal


@documented
class LoginController(Controller):
    """/api/auth/login, mounted under its own stricter rate limit."""

    path = "/api/auth"

    @post("/login", opt=access("public"), status_code=200)
    async def login(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[LoginIn]
    ) -> UserOut:
        """Check credentials and start a session (HttpOnly, SameSite=Strict cookie)."""
        auth: AuthService = state.auth
        user = await auth.login(data.username, data.password, client_ip(request))
        request.clear_session()
        request.set_session(auth.session_data(user))
        return user_out(user)


@documented
class AuthController(Controller):
    """/api/auth: the rest of the browser's session lifecycle."""

    path = "/api/auth"

    @post(
        "/logout",
        opt=access("user", password_change_ok=True),
        status_code=HTTP_204_NO_CONTENT,
        responses=errors(400),
    )
    async def logout(self, request: Request[Any, Any, Any], state: State) -> None:
        """End this browser session. A call with an API token is refused (400): a token is no
        session and lives until it is deleted (``DELETE /api/tokens/{id}``), so answering 204
        would let a script believe it had cut its token off."""
        auth: AuthService = state.auth
        principal = require_principal(request)
        if principal.via == "token":
            raise InvalidInput(
                "logout ends a browser session; an API token stays valid until it is deleted "
                "(DELETE /api/tokens/{id})",
                detail={"reason": "token_not_session"},
            )
        await auth.logout(principal.user, client_ip(request))
        request.clear_session()

    @get("/me", opt=access("user", password_change_ok=True))
    async def me(self, request: Request[Any, Any, Any]) -> UserOut:
        """The caller's own account."""
        return user_out(require_principal(request).user)

    @post("/password", opt=access("user", password_change_ok=True), status_code=200)
    async def change_password(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[PasswordChangeIn]
    ) -> UserOut:
        """Change one's own password; other sessions end, this one continues."""
        auth: AuthService = state.auth
        principal = require_principal(request)
        user = await auth.change_password(
            principal.user, data.current_password, data.new_password, client_ip(request)
        )
        if principal.via == "session":
            request.set_session(auth.session_data(user))
        return user_out(user)


@documented
class TokenController(Controller):
    """/api/tokens: API tokens for scripts."""

    path = "/api/tokens"
    opt = access("user")

    @post("/", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[TokenIn]
    ) -> TokenCreatedOut:
        """A new token for the caller; the token is in this response only."""
        auth: AuthService = state.auth
        token_id, token = await auth.create_token(
            require_principal(request).user, data.name, actor_of(request)
        )
        return TokenCreatedOut(id=token_id, name=data.name.strip(), token=token)

    @get("/")
    async def list_tokens(self, request: Request[Any, Any, Any], state: State) -> list[ApiToken]:
        """The caller's live tokens (admins: everyone's), without the secrets."""
        auth: AuthService = state.auth
        return await auth.list_tokens(require_principal(request))

    @delete("/{token_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def revoke(self, request: Request[Any, Any, Any], state: State, token_id: PathId) -> None:
        """Revoke a token at once."""
        auth: AuthService = state.auth
        await auth.revoke_token(require_principal(request), token_id, actor_of(request))
