"""Dependencies every route shares, as `Annotated` aliases so signatures read like sentences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from sqlalchemy import Engine
from sqlmodel import Session

from src.config import Settings
from src.services.access import Principal, resolve_principal
from src.services.errors import Unauthenticated
from src.services.tokens import TokenVerifier


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """The request's one transaction: committed when the route returns, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app(settings)`): tests pass their own."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]

SCOPE_DESCRIPTIONS = {
    "factories:read": "Read factories in the token's supply chains, and the supply chains",
    "compliance:read": "Read compliance summaries; with consent, assessments and remediation",
    "scorecards:read": "Read your purchasing-practice scorecards and the industry benchmark",
    "supply-chains:write": "Create and edit your supply chains and their factory links",
    "webhooks:manage": "Manage your webhook endpoints and their deliveries",
    "events:read": "Read the event feed",
    "admin": "Programme staff: read and write everything",
}

oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl="/oauth/token", scopes=SCOPE_DESCRIPTIONS
        )
    ),
    scheme_name="OAuth2ClientCredentials",
    auto_error=False,
)


def get_principal(
    request: Request,
    security_scopes: SecurityScopes,
    session: SessionDep,
    authorization: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The verified caller; 401 without a valid token, 403 without every scope the route names."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Send an access token as `Authorization: Bearer <token>`.")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = resolve_principal(session, verifier.verify(token.strip()))
    request.scope.setdefault("state", {})["client_id"] = principal.client_id
    for scope in security_scopes.scopes:
        principal.require(scope)
    return principal


PrincipalDep = Annotated[Principal, Security(get_principal)]
FactoriesReader = Annotated[Principal, Security(get_principal, scopes=["factories:read"])]
ComplianceReader = Annotated[Principal, Security(get_principal, scopes=["compliance:read"])]
ScorecardsReader = Annotated[Principal, Security(get_principal, scopes=["scorecards:read"])]
SupplyChainWriter = Annotated[Principal, Security(get_principal, scopes=["supply-chains:write"])]
WebhookManager = Annotated[Principal, Security(get_principal, scopes=["webhooks:manage"])]
EventsReader = Annotated[Principal, Security(get_principal, scopes=["events:read"])]
Admin = Annotated[Principal, Security(get_principal, scopes=["admin"])]
