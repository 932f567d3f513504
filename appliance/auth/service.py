"""Authentication and user administration: logins, lockout, sessions, API tokens, audit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from appliance.auth import passwords, tokens
from appliance.config import AuthConfig
from appliance.db.audit import AuditRepository
from appliance.db.database import Database
from appliance.db.login_failures import LoginFailureRepository
from appliance.db.tokens import ApiToken, TokenRepository
from appliance.db.users import ROLES, ErasedCounts, NoAdminLeft, Role, User, UserRepository
from appliance.errors import (
    InvalidCredentials,
    InvalidInput,
    LastAdmin,
    LockedOut,
    NotFound,
    SelfErase,
    UserExists,
    check_text,
)

ROLE_RANK: dict[str, int] = {"trainee": 1, "manager": 2, "admin": 3}
TOKEN_TOUCH_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling, and how they proved it."""

    user: User
    via: Literal["session", "token"]
    token_id: int | None = None

    def at_least(self, role: Role) -> bool:
        """Whether the user's role is this role or above."""
        return ROLE_RANK[self.user.role] >= ROLE_RANK[role]


@dataclass(frozen=True)
class Actor:
    """Who performed an audited action (a user, or the CLI)."""

    name: str
    id: int | None = None
    ip: str = ""


CLI_ACTOR = Actor(name="cli")


@dataclass
class _LoginChange:
    """The next change that may void logins: of one user, or of everyone (``user_id`` None);
    ``user_id`` is set just before ``done``."""

    user_id: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AuthService:
    """Everything that decides who someone is and what their account may do."""

    def __init__(self, db: Database, config: AuthConfig, session_key: bytes) -> None:
        self.config = config
        self.users = UserRepository(db)
        self.tokens = TokenRepository(db)
        self.audit = AuditRepository(db)
        self.failures = LoginFailureRepository(db)
        self._key = session_key
        self.key_fingerprint = tokens.key_fingerprint(session_key)
        self._token_touched: dict[int, float] = {}
        self._next_change = _LoginChange()

    def _login_changed(self, user_id: int | None) -> None:
        """Wake the sockets waiting in :meth:`wait_login_change` (``None``: everyone's)."""
        change, self._next_change = self._next_change, _LoginChange()
        change.user_id = user_id
        change.done.set()

    def logins_changed_elsewhere(self) -> None:
        """Another process (the CLI) changed users, tokens or sessions: every socket waiting in
        :meth:`wait_login_change` checks its caller again now."""
        self._login_changed(None)

    async def wait_login_change(self, user_id: int, timeout_s: float) -> None:
        """Return when this process changed something that may void the user's login, or after
        ``timeout_s`` (a change made by another process, such as the CLI, is seen then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (left := deadline - loop.time()) > 0:
            change = self._next_change
            try:
                await asyncio.wait_for(change.done.wait(), left)
            except TimeoutError:
                return
            if change.user_id is None or change.user_id == user_id:
                return

    def set_key(self, session_key: bytes) -> bool:
        """Use a rotated session key: every session and token minted under the old one is void.
        Returns False when it is the key already in use."""
        if session_key == self._key:
            return False
        self._key = session_key
        self.key_fingerprint = tokens.key_fingerprint(session_key)
        self._token_touched.clear()
        self._login_changed(None)
        return True

    # --- logins -----------------------------------------------------------------------
    async def login(self, username: str, password: str, ip: str) -> User:
        """Check a password; LockedOut or InvalidCredentials (which never says which part was wrong)."""
        # a failed login's username reaches the audit log: no controls or bidi spoofing there
        check_text("username", username, single_line=True)
        now = time.time()
        locked_until = await self.failures.locked_until(username, ip)
        if locked_until > now:
            await self.audit.record("login_locked", actor=username, target=username, ip=ip)
            raise LockedOut(
                "too many failed logins; try again later", retry_after=int(locked_until - now) + 1
            )
        user = await self.users.by_username(username)
        ok = await passwords.verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            locked = await self.failures.fail(
                username,
                ip,
                now=now,
                window_s=self.config.lockout_window_s,
                threshold=self.config.lockout_threshold,
                lockout_s=self.config.lockout_s,
            )
            reason = "disabled" if ok and user is not None else "bad_credentials"
            await self.audit.record(
                "login_failed",
                actor=username,
                actor_id=user.id if user else None,
                target=username,
                ip=ip,
                detail={"reason": reason, "locked": bool(locked)},
            )
            if locked:
                raise LockedOut(
                    "too many failed logins; try again later", retry_after=self.config.lockout_s
                )
            raise InvalidCredentials("invalid username or password")
        await self.failures.clear(username, ip)
        await self.audit.record("login", actor=user.username, actor_id=user.id, ip=ip)
        return user

    def session_data(self, user: User) -> dict[str, Any]:
        """What a browser session stores: the user, their epoch and the key it was minted under."""
        return {"uid": user.id, "epoch": user.auth_epoch, "kf": self.key_fingerprint}

    async def from_session(self, session: dict[str, Any]) -> Principal | None:
        """The user behind a session, or None when it is void (disabled, reset, key rotated)."""
        uid = session.get("uid")
        if not isinstance(uid, int) or session.get("kf") != self.key_fingerprint:
            return None
        user = await self.users.get(uid)
        if user is None or user.disabled or user.auth_epoch != session.get("epoch"):
            return None
        return Principal(user=user, via="session")

    async def from_token(self, token: str) -> Principal | None:
        """The user behind an API token, or None when unknown, revoked or the user is disabled."""
        found = await self.users.by_token_hash(tokens.token_hash(self._key, token))
        if found is None:
            return None
        token_id, user = found
        if user.disabled:
            return None
        now = time.monotonic()
        if (
            now - self._token_touched.get(token_id, -TOKEN_TOUCH_INTERVAL_S)
            >= TOKEN_TOUCH_INTERVAL_S
        ):
            self._token_touched[token_id] = now
            await self.tokens.touch(token_id)
        return Principal(user=user, via="token", token_id=token_id)

    async def revalidate(
        self, principal: Principal, session: dict[str, Any] | None
    ) -> Principal | None:
        """The caller as they stand now, or None when their login is void since (disabled,
        password reset, token revoked): a long-lived WebSocket asks before each frame."""
        if principal.via == "session":
            return await self.from_session(session or {})
        token = await self.tokens.get(principal.token_id) if principal.token_id else None
        user = await self.users.get(principal.user.id)
        if token is None or token.revoked_at is not None or user is None or user.disabled:
            return None
        return Principal(user=user, via="token", token_id=token.id)

    async def logout(self, user: User, ip: str) -> None:
        """Record a logout (the caller clears the session)."""
        await self.audit.record("logout", actor=user.username, actor_id=user.id, ip=ip)

    # --- API tokens -------------------------------------------------------------------
    async def create_token(self, user: User, name: str, actor: Actor) -> tuple[int, str]:
        """A new token for the user: (id, token). The token is not stored and not shown again."""
        name = check_text("name", name.strip(), single_line=True)
        if not name or len(name) > 100:
            raise InvalidInput("token name must be 1-100 characters", detail={"field": "name"})
        token = tokens.new_token()
        token_id = await self.tokens.create(
            user.id, name, tokens.token_hash(self._key, token), token[:8]
        )
        await self.audit.record(
            "token_created",
            actor=actor.name,
            actor_id=actor.id,
            target=f"token:{token_id}",
            ip=actor.ip,
            detail={"name": name, "user": user.username},
        )
        return token_id, token

    async def list_tokens(self, principal: Principal) -> list[ApiToken]:
        """The caller's tokens (an admin sees everyone's)."""
        if principal.at_least("admin"):
            return await self.tokens.list()
        return await self.tokens.list(principal.user.id)

    async def revoke_token(self, principal: Principal, token_id: int, actor: Actor) -> None:
        """Revoke one of the caller's tokens (admins: anyone's)."""
        token = await self.tokens.get(token_id)
        if token is None or (
            token.user_id != principal.user.id and not principal.at_least("admin")
        ):
            raise NotFound(f"no token {token_id}", detail={"id": token_id})
        await self.tokens.revoke(token_id)
        self._token_touched.pop(token_id, None)  # a revoked token is never touched again
        self._login_changed(token.user_id)
        await self.audit.record(
            "token_deleted",
            actor=actor.name,
            actor_id=actor.id,
            target=f"token:{token_id}",
            ip=actor.ip,
            detail={"name": token.name},
        )

    # --- user administration ----------------------------------------------------------
    def check_password_policy(self, password: str) -> None:
        """InvalidInput when a new password is too weak."""
        if len(password) < self.config.password_min_length:
            raise InvalidInput(
                f"password must be at least {self.config.password_min_length} characters",
                detail={
                    "field": "password",
                    "reason": "password_too_short",
                    "min_length": self.config.password_min_length,
                },
            )

    async def create_user(
        self,
        actor: Actor,
        *,
        username: str,
        role: str,
        team: str | None,
        password: str | None = None,
        display_name: str = "",
        must_change_password: bool | None = None,
    ) -> tuple[User, str | None]:
        """Create a user; returns it and the generated password when none was given."""
        username = check_text("username", username.strip(), single_line=True)
        check_text("display_name", display_name, single_line=True)
        team = _team_name(team)
        if not username or len(username) > 64 or any(c.isspace() for c in username):
            raise InvalidInput(
                "username must be 1-64 characters with no spaces", detail={"field": "username"}
            )
        role_ = _role(role)
        generated = None
        if password is None:
            password = generated = passwords.generate_password()
        self.check_password_policy(password)
        team_id = await self.users.ensure_team(team) if team else None
        try:
            user_id = await self.users.create(
                username=username,
                password_hash=await passwords.hash_password(password),
                role=role_,
                team_id=team_id,
                display_name=display_name,
                must_change_password=(
                    generated is not None if must_change_password is None else must_change_password
                ),
            )
        except sqlite3.IntegrityError:
            raise UserExists(
                f"user {username!r} already exists", detail={"username": username}
            ) from None
        user = await self.users.get(user_id)
        assert user is not None
        await self.audit.record(
            "user_created",
            actor=actor.name,
            actor_id=actor.id,
            target=f"user:{username}",
            ip=actor.ip,
            detail={"role": role_, "team": team},
        )
        return user, generated

    async def get_user(self, user_id: int) -> User:
        """A user by id, or NotFound."""
        user = await self.users.get(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}", detail={"id": user_id})
        return user

    async def user_by_name(self, username: str) -> User:
        """A user by name, or NotFound."""
        user = await self.users.by_username(username)
        if user is None:
            raise NotFound(f"no user {username!r}", detail={"username": username})
        return user

    async def update_user(
        self,
        actor: Actor,
        user_id: int,
        *,
        role: str | None = None,
        team: str | msgspec.UnsetType | None = msgspec.UNSET,
        display_name: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Change role, team, name or the disabled flag; a disable ends the user's sessions at once.

        ``team``: a name moves the user to that team (created if new); None or a blank name
        takes them out of their team; UNSET (the default) leaves it."""
        if not isinstance(team, msgspec.UnsetType):
            team = _team_name(team)
        if display_name is not None:
            check_text("display_name", display_name, single_line=True)
        user = await self.get_user(user_id)
        role_ = _role(role) if role is not None else None
        demoting_admin = user.role == "admin" and (
            (role_ is not None and role_ != "admin") or disabled is True
        )
        if demoting_admin and not user.disabled and await self.users.count_admins() <= 1:
            raise LastAdmin("the last enabled admin cannot be disabled or demoted")
        team_id: int | msgspec.UnsetType | None = msgspec.UNSET
        if isinstance(team, str):
            team_id = await self.users.ensure_team(team)
        elif team is None:
            team_id = None
        end_sessions = (disabled is True and not user.disabled) or (
            role_ is not None and role_ != user.role
        )
        try:
            await self.users.update(
                user_id,
                role=role_,
                team_id=team_id,
                display_name=display_name,
                disabled=disabled,
                end_sessions=end_sessions,
                keep_an_admin=demoting_admin and not user.disabled,
            )
        except NoAdminLeft:  # another admin was demoted or disabled since the check above
            raise LastAdmin("the last enabled admin cannot be disabled or demoted") from None
        self._login_changed(user_id)  # role and team decide what an open socket may watch
        target = f"user:{user.username}"
        if role_ is not None and role_ != user.role:
            await self.audit.record(
                "role_changed",
                actor=actor.name,
                actor_id=actor.id,
                target=target,
                ip=actor.ip,
                detail={"from": user.role, "to": role_},
            )
        if disabled is not None and disabled != user.disabled:
            await self.audit.record(
                "user_disabled" if disabled else "user_enabled",
                actor=actor.name,
                actor_id=actor.id,
                target=target,
                ip=actor.ip,
            )
        if not isinstance(team_id, msgspec.UnsetType) and team_id != user.team_id:
            await self.audit.record(
                "team_changed",
                actor=actor.name,
                actor_id=actor.id,
                target=target,
                ip=actor.ip,
                detail={"from": user.team, "to": team},
            )
        return await self.get_user(user_id)

    async def reset_password(self, actor: Actor, user_id: int, password: str | None = None) -> str:
        """Set a new password (generated when not given) that must be changed at next login."""
        user = await self.get_user(user_id)
        new = password or passwords.generate_password()
        self.check_password_policy(new)
        await self.users.update(
            user_id,
            password_hash=await passwords.hash_password(new),
            must_change_password=True,
            end_sessions=True,
        )
        self._login_changed(user_id)
        await self.audit.record(
            "password_reset",
            actor=actor.name,
            actor_id=actor.id,
            target=f"user:{user.username}",
            ip=actor.ip,
        )
        return new

    async def change_password(self, user: User, current: str, new: str, ip: str) -> User:
        """The user changes their own password (needs the current one); other sessions end."""
        if not await passwords.verify_password(user.password_hash, current):
            raise InvalidCredentials("current password is wrong")
        self.check_password_policy(new)
        if new == current:
            raise InvalidInput(
                "the new password must differ from the current one",
                detail={"field": "new_password", "reason": "password_unchanged"},
            )
        await self.users.update(
            user.id,
            password_hash=await passwords.hash_password(new),
            must_change_password=False,
            end_sessions=True,
        )
        self._login_changed(user.id)
        await self.audit.record(
            "password_changed",
            actor=user.username,
            actor_id=user.id,
            target=f"user:{user.username}",
            ip=ip,
        )
        return await self.get_user(user.id)

    async def erasable(self, actor: Actor, user_id: int) -> User:
        """The user if the actor may erase them: NotFound, SelfErase or LastAdmin otherwise."""
        user = await self.get_user(user_id)
        if actor.id is not None and actor.id == user.id:
            raise SelfErase("you cannot erase your own account; another admin can")
        if user.role == "admin" and not user.disabled and await self.users.count_admins() <= 1:
            raise LastAdmin("the last enabled admin cannot be erased")
        return user

    async def erase_user(
        self, actor: Actor, user_id: int, *, sessions_deleted: int = 0
    ) -> ErasedCounts:
        """Erase a person: the account, their practice sessions, API tokens and logins (open
        sockets close); documents they uploaded stay. The audit log keeps the id, not the name.

        ``sessions_deleted``: their sessions the caller already deleted (counted in the audit).
        """
        user = await self.erasable(actor, user_id)
        try:
            erased = await self.users.erase(
                user.id, user.username, keep_an_admin=user.role == "admin" and not user.disabled
            )
        except NoAdminLeft:  # another admin was erased or demoted since the check above
            raise LastAdmin("the last enabled admin cannot be erased") from None
        await self.users.db.checkpoint()  # no copy of the erased rows left in the WAL
        counts = ErasedCounts(
            sessions=erased.sessions + sessions_deleted,
            tokens=erased.tokens,
            documents_kept=erased.documents_kept,
        )
        self._token_touched.clear()
        self._login_changed(user.id)
        await self.audit.record(
            "user_erased",
            actor=actor.name,
            actor_id=actor.id,
            target=f"user:#{user.id}",
            ip=actor.ip,
            detail={
                "sessions": counts.sessions,
                "tokens": counts.tokens,
                "documents_kept": counts.documents_kept,
            },
        )
        return counts

    async def bootstrap_admin(self, username: str = "admin") -> str | None:
        """Create the first admin with a generated password when there is none; returns it once."""
        if await self.users.count_admins() > 0 or await self.users.by_username(username):
            return None
        _, password = await self.create_user(
            CLI_ACTOR, username=username, role="admin", team="admins", must_change_password=True
        )
        return password


MAX_TEAM_NAME = 100


def _team_name(value: str | None) -> str | None:
    """A team name stripped of surrounding spaces; None for none or a blank one (no team)."""
    if value is None:
        return None
    name = check_text("team", value.strip(), single_line=True)
    if len(name) > MAX_TEAM_NAME:
        raise InvalidInput(f"team: at most {MAX_TEAM_NAME} characters", detail={"field": "team"})
    return name or None


def _role(value: str) -> Role:
    if value not in ROLES:
        raise InvalidInput(
            f"role must be one of {', '.join(ROLES)}", detail={"field": "role", "value": value}
        )
    return value


def can_manage(principal: Principal, target: User) -> bool:
    """Admins manage everyone; a manager, users of their own team."""
    if principal.at_least("admin"):
        return True
    return principal.user.role == "manager" and target.team_id == principal.user.team_id
