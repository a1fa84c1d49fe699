"""`/v1/organizations`: the programme's register of organisations and buyers' subscriptions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from src.api.deps import Admin, SessionDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.models.organizations import (
    OrganizationCreate,
    OrganizationDetail,
    OrganizationRead,
    OrgKind,
    SubscriptionCreate,
    SubscriptionRead,
)
from src.services import organizations as service

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such organization"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "The body is not valid"}}


@router.get("", summary="List organizations (programme)")
def list_organizations(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    kind: OrgKind | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[OrganizationRead]:
    page = service.list_organizations(session, kind=kind, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)


@router.post(
    "",
    status_code=201,
    summary="Register an organization (programme)",
    description="`acts_for` (partners only) lists the buyers the partner acts for.",
    responses=INVALID,
)
def create_organization(
    response: Response, session: SessionDep, _: Admin, body: OrganizationCreate
) -> OrganizationDetail:
    org = service.create_organization(session, data=body)
    response.headers["Location"] = f"/v1/organizations/{org.id}"
    return service.get_organization(session, org_id=org.id)


@router.get(
    "/{org_id}",
    summary="One organization, with its delegations and subscription (programme)",
    responses=NOT_FOUND,
)
def get_organization(session: SessionDep, _: Admin, org_id: str) -> OrganizationDetail:
    return service.get_organization(session, org_id=org_id)


@router.get(
    "/{org_id}/subscriptions",
    summary="A buyer's subscriptions (programme)",
    responses=NOT_FOUND,
)
def list_subscriptions(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    org_id: str,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[SubscriptionRead]:
    page = service.list_subscriptions(session, org_id=org_id, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)


@router.post(
    "/{org_id}/subscriptions",
    status_code=201,
    summary="Add a subscription to a buyer (programme)",
    responses=NOT_FOUND | {422: {"description": "Not a buyer, or ends before it starts"}},
)
def create_subscription(
    session: SessionDep, _: Admin, org_id: str, body: SubscriptionCreate
) -> SubscriptionRead:
    return service.create_subscription(session, org_id=org_id, data=body)
