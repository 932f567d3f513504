"""Liveness and readiness."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State

from appliance.auth.guards import access
from appliance.readiness import Readiness


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


class HealthController(Controller):
    """/healthz and /readyz, open to all (a load balancer has no login)."""

    opt = access("public")
    include_in_schema = True

    @get("/healthz", skip_session=True, sync_to_thread=False)
    def healthz(self) -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @get("/readyz", skip_session=True)
    async def readyz(self, state: State) -> Response[ReadyOut]:
        """200 when the database, models and disk are ready; 503 naming what is not."""
        readiness: Readiness = state.readiness
        checks = await readiness.checks()
        not_ready = [c.name for c in checks if not c.ok]
        body = ReadyOut(
            ready=not not_ready,
            not_ready=not_ready,
            checks=[CheckOut(name=c.name, ok=c.ok, detail=c.detail) for c in checks],
        )
        return Response(body, status_code=503 if not_ready else 200)
