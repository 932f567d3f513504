"""Liveness and readiness."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get, head
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from appliance.auth.guards import access
from appliance.readiness import Check, Readiness


class CheckOut(msgspec.Struct, kw_only=True):
    """One readiness check."""

    name: str
    ok: bool
    detail: str


class ReadyOut(msgspec.Struct, kw_only=True):
    """/readyz body: ready or not, and every check with why."""

    ready: bool
    not_ready: list[str]
    checks: list[CheckOut]


_NOT_READY = ResponseSpec(
    ReadyOut,
    description="Not ready: ``not_ready`` names the failing checks.",
    generate_examples=False,
)
_NOT_READY_HEAD = ResponseSpec(None, description="Not ready (the status GET would give).")


class HealthController(Controller):
    """/healthz and /readyz, open to all (a load balancer has no login)."""

    opt = access("public")
    include_in_schema = True

    @get("/healthz", skip_session=True, sync_to_thread=False)
    def healthz(self) -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @head("/healthz", skip_session=True, sync_to_thread=False)
    def healthz_head(self) -> None:
        """The same as GET, without a body (uptime monitors and load balancers probe with HEAD)."""

    @get("/readyz", skip_session=True, responses={503: _NOT_READY})
    async def readyz(self, state: State) -> Response[ReadyOut]:
        """200 when the database, models and disk are ready; 503 naming what is not."""
        checks = await _checks(state)
        not_ready = [c.name for c in checks if not c.ok]
        body = ReadyOut(
            ready=not not_ready,
            not_ready=not_ready,
            checks=[CheckOut(name=c.name, ok=c.ok, detail=c.detail) for c in checks],
        )
        return Response(body, status_code=503 if not_ready else 200)

    @head("/readyz", skip_session=True, responses={503: _NOT_READY_HEAD})
    async def readyz_head(self, state: State) -> Response[None]:
        """The status GET would give (200 or 503), without a body."""
        checks = await _checks(state)
        return Response(None, status_code=200 if all(c.ok for c in checks) else 503)


async def _checks(state: State) -> list[Check]:
    readiness: Readiness = state.readiness
    return await readiness.checks()
