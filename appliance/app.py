"""create_app(settings): the composition root, the only place that wires every part together."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.spec import Components
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore

from appliance import __version__
from appliance.api.auth import AuthController, LoginController, TokenController
from appliance.api.domain import DOMAIN_CONTROLLERS
from appliance.api.errors import EXCEPTION_HANDLERS
from appliance.api.health import HealthController
from appliance.api.intent import IntentController
from appliance.api.knowledge import KnowledgeController, job_events
from appliance.api.middleware import RequestContextMiddleware
from appliance.api.openapi import SECURITY_SCHEMES, ApplianceOpenAPIConfig
from appliance.api.pages import page_http_error_handler, page_router, static_router
from appliance.api.schema_page import schema_render_plugins
from appliance.api.sessions import SessionController, TrendController
from appliance.api.users import AuditController, UserController
from appliance.auth.guards import access, access_guard
from appliance.auth.key_watch import SessionKeyWatcher
from appliance.auth.middleware import AuthMiddleware, ForeignCorsFilter, cors_config
from appliance.auth.other_writers import OtherWritersWatch
from appliance.auth.service import AuthService
from appliance.auth.sessions import LazySessionConfig
from appliance.auth.store_sweep import StoreSweeper
from appliance.config import Settings
from appliance.db.audit import AuditRepository
from appliance.db.database import Database
from appliance.db.domain import DomainRepository
from appliance.knowledge.service import KnowledgeService
from appliance.llm.base import LLMBackend
from appliance.llm.factory import build_backend
from appliance.loop_lag import LoopLagProbe, freeze_heap
from appliance.practice.agents.intent import load_intent_classifier
from appliance.practice.catalog import CatalogService
from appliance.practice.coordinator import Coordinator
from appliance.practice.demo.loader import load_demo_if_empty
from appliance.practice.factory import build_agents
from appliance.practice.idle import IdleSessionCloser
from appliance.practice.retention import RetentionSweeper
from appliance.practice.stages import ALL_SLOTS, StageFSM
from appliance.readiness import Check, Readiness
from appliance.realtime.hub import Hub
from appliance.realtime.routes import observe_socket, practice_socket
from appliance.scheduled_backup import BackupScheduler
from appliance.secrets import SESSION_KEY, SecretStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# paths that skip sessions, auth and rate limits: probes must stay cheap and always answer
PROBES = ["^/healthz$", "^/readyz$"]
UNMETERED = [*PROBES, "^/metrics$"]


def create_app(settings: Settings, secrets: SecretStore | None = None) -> Litestar:
    """Build the appliance's ASGI app from settings (migrations are the caller's job: `serve`)."""
    secrets = secrets or SecretStore(settings)
    session_key = secrets.require(SESSION_KEY).reveal().encode()
    db = Database(settings.db_path)
    auth = AuthService(db, settings.auth, session_key)
    readiness = Readiness(settings, db)
    # the in-process hub: job progress ("jobs:user:<id>") and practice sessions ("practice:<id>")
    channels = ChannelsPlugin(backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True)
    knowledge = KnowledgeService(
        settings, db, lambda channel, event: channels.publish(event, [channel])
    )
    llm = build_backend(settings, secrets)
    readiness.probes.append(lambda: _llm_check(llm))
    domain = DomainRepository(db)
    catalog = CatalogService(domain, AuditRepository(db))
    intent = load_intent_classifier(settings)  # trains in-process when missing or stale
    hub = Hub(channels)
    agents = build_agents(llm=llm, knowledge=knowledge, config=settings.practice, intent=intent)
    coordinator = Coordinator(
        db=db,
        domain=domain,
        customer=agents.customer,
        coach=agents.coach,
        compliance=agents.compliance,
        evaluator=agents.evaluator,
        intent=intent,
        stages=StageFSM(),
        publish=hub.publish,
        config=settings.realtime,
        initial_slots=lambda: dict.fromkeys(ALL_SLOTS, False),
        session_over=agents.session_over,
    )
    scheduled_backup = BackupScheduler(settings, AuditRepository(db))
    retention = RetentionSweeper(
        db=db,
        config=settings.practice,
        audit=AuditRepository(db),
        delete_sessions=coordinator.delete_sessions,
    )
    idle_sessions = IdleSessionCloser(db=db, config=settings.practice, coordinator=coordinator)
    loop_lag = LoopLagProbe(stall_s=settings.log.stall_s)
    other_writers = OtherWritersWatch(db, auth)
    session_files = FileStore(settings.state_dir / "sessions", create_directories=True)
    rate_limits, login_limits = MemoryStore(), MemoryStore()
    stores: dict[str, Store] = {
        "sessions": session_files,
        "rate_limit": rate_limits,
        "rate_limit_login": login_limits,
    }
    store_sweep = StoreSweeper([session_files, rate_limits, login_limits])

    def read_key() -> bytes | None:
        value = secrets.get(SESSION_KEY)
        return None if value is None else value.reveal().encode()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with db, SessionKeyWatcher(auth, read_key):
            await loop_lag.start()
            await other_writers.start()
            await store_sweep.start()
            await readiness.start()
            await knowledge.start()
            demo = _start_demo_load(settings, db, knowledge)
            try:
                async with llm:
                    await coordinator.start()
                    await retention.start()
                    await idle_sessions.start()
                    await scheduled_backup.start()
                    if settings.server.gc_freeze:
                        freeze_heap("started")
                    try:
                        yield
                    finally:
                        await scheduled_backup.stop()
                        await idle_sessions.stop()
                        await retention.stop()
                        await coordinator.stop()
            finally:
                await _stop_demo_load(demo)
                await knowledge.stop()
                await readiness.stop()
                await store_sweep.stop()
                await other_writers.stop()
                await loop_lag.stop()

    secure = settings.auth.secure_cookies == "always" or (
        settings.auth.secure_cookies == "auto" and settings.tls
    )
    # the probes never need a login; /metrics only while metrics.public (else an admin's
    # token or cookie must reach the guard: excluding it would refuse everyone)
    unauthenticated = UNMETERED if settings.metrics.public else PROBES
    sessions = LazySessionConfig(
        store="sessions",
        samesite="strict",
        httponly=True,
        secure=secure,
        max_age=settings.auth.session_max_age_s,
        exclude=unauthenticated,
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
        *DOMAIN_CONTROLLERS,
        IntentController,
        SessionController,
        TrendController,
        Router("/", route_handlers=[practice_socket, observe_socket]),
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
            exclude=unauthenticated,
        ),
    ]
    if settings.metrics.enabled:
        prometheus = PrometheusConfig(
            app_name="salesboost", prefix="salesboost", group_path=True, exclude=["^/metrics$"]
        )
        handlers.append(_metrics_controller(public=settings.metrics.public))
        middleware.insert(0, prometheus.middleware)

    cors = cors_config(settings.server.allowed_origins)  # None: no CORS headers at all
    app = Litestar(
        route_handlers=handlers,
        middleware=middleware,
        cors_config=cors,
        guards=[access_guard],
        # a browser's unknown page gets the HTML error page (the API keeps its JSON)
        exception_handlers={**EXCEPTION_HANDLERS, HTTPException: page_http_error_handler},
        lifespan=[lifespan],
        plugins=[channels],
        stores=stores,
        state=State(
            {"settings": settings, "db": db, "auth": auth, "readiness": readiness, "llm": llm}
        ),
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=ApplianceOpenAPIConfig(
            title="SalesBoost Appliance",
            version=__version__,
            path="/schema",
            # the schema's own pages are not operations of the API (Litestar's default too)
            openapi_router=Router(
                "/schema", route_handlers=[], opt=access("public"), include_in_schema=False
            ),
            render_plugins=schema_render_plugins(),  # no CDN: the default pages load from one
            use_handler_docstrings=True,
            components=Components(security_schemes=dict(SECURITY_SCHEMES)),
            metrics_public=settings.metrics.public,
        ),
        debug=False,
        logging_config=None,  # appliance.logs configures logging for the whole process
    )
    app.state.knowledge = knowledge
    app.state.domain = domain
    app.state.catalog = catalog
    app.state.intent = intent
    app.state.hub = hub
    app.state.coordinator = coordinator
    app.state.retention = retention
    app.state.loop_lag = loop_lag
    app.state.scheduled_backup = scheduled_backup
    if cors is not None:  # other origins get no Access-Control-* header at all
        app.asgi_handler = ForeignCorsFilter(
            app.asgi_handler, allowed=settings.server.allowed_origins
        )
    # Wrap outside the router, where Litestar itself puts CORS: 404s and 405s get the
    # request id, the security headers and an access line too.
    app.asgi_handler = RequestContextMiddleware(
        app.asgi_handler, access_log=settings.log.access, tls=settings.tls
    )
    return app


def _start_demo_load(
    settings: Settings, db: Database, knowledge: KnowledgeService
) -> asyncio.Task[object] | None:
    """With demo.load_on_empty, load the demo pack in the background when the catalogue is empty."""
    if not settings.demo.load_on_empty:
        return None

    async def run() -> object:
        try:
            loaded = await load_demo_if_empty(db, knowledge, collection=settings.demo.collection)
        except Exception:
            logging.getLogger("appliance.practice.demo").exception("demo pack load failed")
            return None
        if loaded and settings.server.gc_freeze:
            freeze_heap("demo pack loaded")
        return loaded

    return asyncio.create_task(run(), name="demo-load")


async def _stop_demo_load(task: asyncio.Task[object] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _llm_check(llm: LLMBackend) -> Check:
    state = llm.state()
    return Check("llm", state.ready, state.detail)


def _metrics_controller(*, public: bool) -> type[PrometheusController]:
    class MetricsController(PrometheusController):
        """Prometheus text format at /metrics."""

        path = "/metrics"
        opt = access("public" if public else "admin")

    return MetricsController
