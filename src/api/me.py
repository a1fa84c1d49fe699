"""`GET /v1/me`: who the token speaks for."""

from __future__ import annotations

from fastapi import APIRouter

from src.api.deps import PrincipalDep, SessionDep
from src.models.me import MeRead
from src.services.organizations import describe_principal

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me", summary="The client, organisation, scopes and supply chains of this token")
def get_me(session: SessionDep, principal: PrincipalDep) -> MeRead:
    return describe_principal(session, principal)
