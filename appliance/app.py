"""create_app(settings): the composition root, the only place that wires every part together."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore

from appliance import __version__
from appliance.api.auth import AuthController, LoginController, TokenController
from appliance.api.errors import EXCEPTION_HANDLERS
from appliance.api.health import HealthController
from appliance.api.knowledge import KnowledgeController, job_events
from appliance.api.middleware import RequestContextMiddleware
from appliance.api.pages import page_router, static_router
from appliance.api.users import AuditController, UserController
from appliance.auth.guards import access, access_guard
from appliance.auth.middleware import AuthMiddleware
from appliance.auth.service import AuthService
from appliance.auth.sessions import LazySessionConfig
from appliance.config import Settings
from appliance.db.database import Database
from appliance.knowledge.service import KnowledgeService
from appliance.llm.base import LLMBackend
from appliance.llm.factory import build_backend
from appliance.readiness import Check, Readiness
from appliance.secrets import SESSION_KEY, SecretStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# paths that skip sessions, auth and rate limits: probes must stay cheap and always answer
UNMETERED = ["^/healthz$", "^/readyz$", "^/metrics$"]


def create_app(settings: Settings, secrets: SecretStore | None = None) -> Litestar:
    """Build the appliance's ASGI app from settings (migrations are the caller's job: `serve`)."""
    secrets = secrets or SecretStore(settings)
    session_key = secrets.require(SESSION_KEY).reveal().encode()
    db = Database(settings.db_path)
    auth = AuthService(db, settings.auth, session_key)
    readiness = Readiness(settings, db)
    # the in-process hub: job progress now ("jobs:user:<id>"), practice sessions later
    channels = ChannelsPlugin(backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True)
    knowledge = KnowledgeService(
        settings, db, lambda channel, event: channels.publish(event, [channel])
    )
    llm = build_backend(settings, secrets)
    readiness.probes.append(lambda: _llm_check(llm))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with db:
            await readiness.start()
            await knowledge.start()
            try:
                async with llm:
                    yield
            finally:
                await knowledge.stop()
                await readiness.stop()

    secure = settings.auth.secure_cookies == "always" or (
        settings.auth.secure_cookies == "auto" and settings.tls
    )
    sessions = LazySessionConfig(
        store="sessions",
        samesite="strict",
        httponly=True,
        secure=secure,
        max_age=settings.auth.session_max_age_s,
        exclude=UNMETERED,
    )
    global_limit = RateLimitConfig(
        rate_limit=("minute", settings.auth.api_rate_per_minute), exclude=UNMETERED
    )
    login_limit = RateLimitConfig(
        rate_limit=("minute", settings.auth.login_rate_per_minute), store="rate_limit_login"
    )
    handlers: list[type | Router] = [
        HealthController,
        Router("/", route_handlers=[LoginController], middleware=[login_limit.middleware]),
        AuthController,
        TokenController,
        UserController,
        AuditController,
        Router("/", route_handlers=[KnowledgeController, job_events]),
        # the browser UI: pages and their static assets
        page_router(),
        static_router(),
    ]
    middleware = [
        global_limit.middleware,
        sessions.middleware,
        DefineMiddleware(
            AuthMiddleware,
            auth=auth,
            allowed_origins=settings.server.allowed_origins,
            exclude=UNMETERED,
        ),
    ]
    if settings.metrics.enabled:
        prometheus = PrometheusConfig(
            app_name="salesboost", prefix="salesboost", group_path=True, exclude=["^/metrics$"]
        )
        handlers.append(_metrics_controller(public=settings.metrics.public))
        middleware.insert(0, prometheus.middleware)

    app = Litestar(
        route_handlers=handlers,
        middleware=middleware,
        guards=[access_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        plugins=[channels],
        stores={
            "sessions": FileStore(settings.state_dir / "sessions", create_directories=True),
            "rate_limit": MemoryStore(),
            "rate_limit_login": MemoryStore(),
        },
        state=State(
            {"settings": settings, "db": db, "auth": auth, "readiness": readiness, "llm": llm}
        ),
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="SalesBoost Appliance",
            version=__version__,
            path="/schema",
            openapi_router=Router("/schema", route_handlers=[], opt=access("public")),
        ),
        debug=False,
        logging_config=None,  # appliance.logs configures logging for the whole process
    )
    app.state.knowledge = knowledge
    # Wrap outside the router, where Litestar itself puts CORS: 404s and 405s get the
    # request id, the security headers and an access line too.
    app.asgi_handler = RequestContextMiddleware(
        app.asgi_handler, access_log=settings.log.access, tls=settings.tls
    )
    return app


def _llm_check(llm: LLMBackend) -> Check:
    state = llm.state()
    return Check("llm", state.ready, state.detail)


def _metrics_controller(*, public: bool) -> type[PrometheusController]:
    class MetricsController(PrometheusController):
        """Prometheus text format at /metrics."""

        path = "/metrics"
        opt = access("public" if public else "admin")

    return MetricsController
