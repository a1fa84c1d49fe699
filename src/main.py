"""Builds the FastAPI application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cachetools import LRUCache
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import Engine

from src.api import (
    access_log,
    assessments,
    catalogue,
    compliance_summaries,
    consents,
    factories,
    health,
    me,
    oauth,
    organizations,
    remediation,
    scorecards,
    supply_chain_compliance,
    supply_chains,
)
from src.api import clients as clients_api
from src.api import events as events_api
from src.api import imports as imports_api
from src.api import webhooks as webhooks_api
from src.api.conditional import ConditionalGetMiddleware
from src.api.docs import install_docs
from src.api.idempotency import IdempotencyMiddleware
from src.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from src.api.openapi import install_openapi, operation_id
from src.api.problems import install_problem_handlers
from src.api.rate_limits import RateLimitMiddleware
from src.config import Settings, get_settings
from src.db import engine_for
from src.log import configure_logging
from src.prepared_reads import LoopReader, awaited_reader
from src.services.access_log import AccessLog
from src.services.tokens import TokenVerifier

DESCRIPTION = """
Factory compliance summaries and purchasing-practice scorecards for the brands and retailers
subscribed to the programme, with token-scoped access per supply chain and signed webhooks.

Authenticate with OAuth2 client credentials at `POST /oauth/token`; send the token as
`Authorization: Bearer ...`. Errors are RFC 9457 `application/problem+json`.
"""

# FastAPI's own OpenTelemetry spans, metrics and logs, when `WEFT_OPENTELEMETRY` is off. With them
# on, FastAPI asks OpenTelemetry on every request whether a provider is configured (3–4 % of a
# compliance summary), even where none ever is; the API's own metrics are Prometheus'.
WITHOUT_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

# Tokens whose principal `principal_checked_by_route` may reuse (a few MB at most).
RESOLVED_PRINCIPALS = 4096

# Starlette tries routes in order, so the buyers' hottest reads come first.
ROUTERS = [
    factories.router,
    supply_chain_compliance.router,
    health.router,
    oauth.router,
    me.router,
    organizations.router,
    clients_api.router,
    consents.router,
    supply_chains.router,
    access_log.router,
    scorecards.router,
    webhooks_api.router,
    events_api.router,
    catalogue.router,
    assessments.router,
    remediation.router,
    imports_api.router,
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # What the process holds once started lives as long as it does: frozen, it is left out of
    # the garbage collector's full collections, which otherwise walk its ~200,000 objects for
    # ~100 ms in the middle of serving requests (docs/benchmarks.md).
    gc.freeze()
    yield
    gc.unfreeze()
    app.state.access_log.close()
    await app.state.awaited_reader.close()
    app.state.reader.close()


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="Weft",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
        lifespan=_lifespan,
        telemetry=None if settings.opentelemetry else WITHOUT_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.engine = engine or engine_for(settings.database_url)
    app.state.token_verifier = TokenVerifier(app.state.engine, settings)
    app.state.reader = LoopReader(app.state.engine)
    app.state.awaited_reader = awaited_reader(
        app.state.engine, app.state.reader, settings.read_connections
    )
    app.state.resolved_principals = LRUCache(maxsize=RESOLVED_PRINCIPALS)
    app.state.access_log = AccessLog(
        app.state.engine, flush_seconds=settings.access_log_flush_seconds
    )

    install_problem_handlers(app)
    # The hottest read: a route of the app itself, tried before any router (see its module).
    compliance_summaries.install(app)
    factories.install(app)
    for router in ROUTERS:
        app.include_router(router)
    # After the API's routes: Starlette tries routes in order, and the docs are read least.
    install_docs(app)
    install_openapi(app)

    # The last added is the outermost: request ids and logs wrap everything; rate limits refuse
    # before any body is read or key claimed; idempotency sits inside the body size limit and
    # keeps the route's own answer, without the per-answer headers the outer layers add.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        import_max_bytes=settings.max_import_bytes,
    )
    app.add_middleware(ConditionalGetMiddleware)
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware)
    return app
