"""Dependencies every route shares, as `Annotated` aliases so signatures read like sentences."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from sqlalchemy import Engine, QueuePool
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from src.config import Settings
from src.services.access import Principal, resolve_principal
from src.services.errors import TokenMissing
from src.services.tokens import TokenVerifier

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Left for what holds connections outside a request's session: CSV exports, background flushes.
CONNECTIONS_OUTSIDE_REQUESTS = 8


# Dependencies are `async def` even without awaiting: a plain `def` one costs a threadpool hop.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_session(
    request: Request, engine: Annotated[Engine, Depends(get_engine)]
) -> AsyncIterator[Session]:
    """The request's one transaction: committed when the route returns, rolled back if it raises.

    Opening a session does no I/O, so it happens in the event loop rather than costing a
    threadpool hop per request. A read's commit only ends its transaction and runs in the loop
    too; a write's commit may wait for the database's write lock, so it runs in a worker thread.

    Some queries (the caller's client, the hot reads) run in the event loop, where waiting for a
    pooled connection would stall every request, and the requests holding connections need the
    loop to give them back: so requests wait, without blocking the loop, for one of fewer
    session slots than the pool has connections."""
    async with _session_slots(request.app.state, engine):
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                if request.method in READ_METHODS:
                    session.commit()
                else:
                    await run_in_threadpool(session.commit)
            except BaseException:
                session.rollback()
                raise


def _session_slots(
    state: State, engine: Engine
) -> asyncio.Semaphore | contextlib.nullcontext[None]:
    slots: asyncio.Semaphore | None = getattr(state, "session_slots", None)
    if slots is None:
        pool = engine.pool
        if not isinstance(pool, QueuePool):
            return contextlib.nullcontext()
        capacity = pool.size() + max(pool._max_overflow, 0)  # noqa: SLF001 (no public accessor)
        slots = state.session_slots = asyncio.Semaphore(
            max(1, capacity - CONNECTIONS_OUTSIDE_REQUESTS)
        )
    return slots


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app(settings)`): tests pass their own."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
# "function" scope: the commit runs before the answer is sent, so a 2xx means committed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

SCOPE_DESCRIPTIONS = {
    "factories:read": "Read factories in the token's supply chains, and the supply chains",
    "compliance:read": "Read compliance summaries; with consent, assessments and remediation",
    "scorecards:read": "Read your purchasing-practice scorecards and the industry benchmark",
    "supply-chains:write": "Create and edit your supply chains and their factory links",
    "webhooks:manage": "Manage your webhook endpoints and their deliveries",
    "events:read": "Read the event feed",
    "admin": "Programme staff: read and write everything",
}

CLIENT_CREDENTIALS = OAuth2Model(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl="/oauth/token", scopes=SCOPE_DESCRIPTIONS
        )
    )
)


class _BearerScheme(SecurityBase):
    """The OAuth2 client-credentials scheme, which OpenAPI documents on every route that depends
    on it, and which resolves the request's caller itself: one dependency instead of a scheme
    read by a resolver, which FastAPI would solve as two on every request."""

    def __init__(self) -> None:
        self.model = CLIENT_CREDENTIALS
        self.scheme_name = "OAuth2ClientCredentials"


def _bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenMissing("Send an access token as `Authorization: Bearer <token>`.")
    return token.strip()


def _authorised(request: Request, principal: Principal, scopes: Iterable[str]) -> Principal:
    request.scope.setdefault("state", {})["client_id"] = principal.client_id
    for scope in scopes:
        principal.require(scope)
    return principal


class _Principal(_BearerScheme):
    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> Principal:
        """The verified caller; 401 without a valid token, 403 without every scope the route
        names. Its client is read on the event loop's own connection (`app.state.reader`), in
        the loop: one indexed statement costs less than a hop to the threadpool, and a route that
        needs no transaction opens no session at all."""
        verifier: TokenVerifier = request.app.state.token_verifier
        claims = verifier.verify(_bearer_token(request))
        principal = resolve_principal(request.app.state.reader, claims)
        return _authorised(request, principal, security_scopes.scopes)


get_principal = _Principal()


def principal_checked_by_route(request: Request, scopes: Sequence[str]) -> Principal:
    """As `get_principal`, called by a route itself rather than solved as a dependency, for the
    compliance summary and the factory page alone: FastAPI's dependency solving was a sixth of
    the summary's time. Their statements check the client's revocation themselves, so a token
    resolved before skips the client query; the signature and expiry are still checked on every
    request. The route declares `documented_security(scopes)` for OpenAPI, as `Security`
    would."""
    token = _bearer_token(request)
    verifier: TokenVerifier = request.app.state.token_verifier
    claims = verifier.verify(token)
    principal: Principal | None = request.app.state.resolved_principals.get(token)
    if principal is None:
        principal = resolve_principal(request.app.state.reader, claims)
        request.app.state.resolved_principals[token] = principal
    return _authorised(request, principal, scopes)


def documented_security(scopes: Sequence[str]) -> dict[str, Any]:
    """The operation's security requirement as FastAPI writes it for a `Security` dependency."""
    return {"security": [{get_principal.scheme_name: list(scopes)}]}


PrincipalDep = Annotated[Principal, Security(get_principal)]
FactoriesReader = Annotated[Principal, Security(get_principal, scopes=["factories:read"])]
ComplianceReader = Annotated[Principal, Security(get_principal, scopes=["compliance:read"])]
ScorecardsReader = Annotated[Principal, Security(get_principal, scopes=["scorecards:read"])]
SupplyChainWriter = Annotated[Principal, Security(get_principal, scopes=["supply-chains:write"])]
WebhookManager = Annotated[Principal, Security(get_principal, scopes=["webhooks:manage"])]
EventsReader = Annotated[Principal, Security(get_principal, scopes=["events:read"])]
Admin = Annotated[Principal, Security(get_principal, scopes=["admin"])]
