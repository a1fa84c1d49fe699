"""Remediation items (the improvement plan): readers with consent list and read them; the
programme moves them along open → in_progress → done → verified."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from src.api.deps import Admin, ComplianceReader, SessionDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.api.problems import NO_CONSENT, NOT_VISIBLE, problem
from src.models.assessments import RemediationItemRead, RemediationItemUpdate, RemediationStatus
from src.services import remediation as service

router = APIRouter(prefix="/v1", tags=["remediation"])

NO_ITEM = problem("No such remediation item, or not one you may see")


@router.get(
    "/factories/{factory_id}/remediation-items",
    response_model=Page[RemediationItemRead],
    summary="List a factory's remediation items",
    description=(
        "Oldest first, optionally of one `status`. Items of published assessments only (the "
        "programme sees all). Needs the factory's consent; each read is written to its access "
        "log. `overdue` is computed when you read."
    ),
    responses={403: NO_CONSENT, 404: NOT_VISIBLE},
)
def list_factory_remediation_items(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: ComplianceReader,
    factory_id: str,
    status: RemediationStatus | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[RemediationItemRead]:
    page = service.list_factory_remediation_items(
        session,
        principal=principal,
        factory_id=factory_id,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return page_of(request, response, page, lambda item: item)


@router.get(
    "/remediation-items/{item_id}",
    summary="One remediation item",
    description="Needs the factory's consent; each read is written to its access log.",
    responses={403: NO_CONSENT, 404: NO_ITEM},
)
def get_remediation_item(
    session: SessionDep, principal: ComplianceReader, item_id: str
) -> RemediationItemRead:
    return service.get_remediation_item(session, principal=principal, item_id=item_id)


@router.patch(
    "/remediation-items/{item_id}",
    summary="Update a remediation item (programme)",
    description=(
        "`status` moves one step at a time: open → in_progress → done → verified. The factory's "
        "compliance summary is recomputed. Sends `remediation_item.updated` (and "
        "`compliance_summary.updated` when the summary changed)."
    ),
    responses={404: NO_ITEM, 409: problem("The status cannot move from its current value")},
)
def update_remediation_item(
    session: SessionDep, principal: Admin, item_id: str, body: RemediationItemUpdate
) -> RemediationItemRead:
    service.update_remediation_item(session, item_id=item_id, data=body)
    return service.get_remediation_item(session, principal=principal, item_id=item_id)
