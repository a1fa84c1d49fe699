"""`/v1/consents`: factories' consents to full disclosure, granted and revoked by the programme."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from src.api.deps import Admin, SessionDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.models.consents import ConsentCreate, ConsentRead
from src.services import consents as service

router = APIRouter(prefix="/v1/consents", tags=["consents"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such consent"}}


@router.get("", summary="List consents (programme)")
def list_consents(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    factory_id: str | None = None,
    org_id: str | None = None,
    active: bool | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ConsentRead]:
    page = service.list_consents(
        session, factory_id=factory_id, org_id=org_id, active=active, cursor=cursor, limit=limit
    )
    return page_of(request, response, page, lambda item: item)


@router.post(
    "",
    status_code=201,
    summary="Record a factory's consent to show its full findings to a buyer (programme)",
    responses={
        409: {"description": "The factory already consents to this buyer"},
        422: {"description": "Unknown factory, or the organization is not a buyer"},
    },
)
def grant_consent(
    response: Response, session: SessionDep, _: Admin, body: ConsentCreate
) -> ConsentRead:
    consent = service.grant_consent(session, data=body)
    response.headers["Location"] = f"/v1/consents/{consent.id}"
    return consent


@router.get("/{consent_id}", summary="One consent (programme)", responses=NOT_FOUND)
def get_consent(session: SessionDep, _: Admin, consent_id: str) -> ConsentRead:
    return service.consent_read(service.get_consent(session, consent_id=consent_id))


@router.delete(
    "/{consent_id}",
    status_code=204,
    summary="Revoke a consent (programme)",
    description="Takes effect at once; the consent stays listed with its `revoked_at`.",
    responses=NOT_FOUND,
)
def revoke_consent(session: SessionDep, _: Admin, consent_id: str) -> Response:
    service.revoke_consent(session, consent_id=consent_id)
    return Response(status_code=204)
