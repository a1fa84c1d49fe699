"""`/v1/clients`: API clients, created and revoked by the programme."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from src.api.deps import Admin, SessionDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.models.clients import ClientCreate, ClientRead, ClientWithSecret
from src.services import clients as service

router = APIRouter(prefix="/v1/clients", tags=["clients"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such client"}}


@router.get("", summary="List API clients (programme)")
def list_clients(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    org_id: str | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ClientRead]:
    page = service.list_clients(session, org_id=org_id, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)


@router.post(
    "",
    status_code=201,
    summary="Create an API client (programme)",
    description=(
        "The answer holds `client_secret`, shown only this once. Without `scopes` the client gets "
        "every scope its organization's kind allows; without `supply_chains` it reads all of its "
        "organization's chains (a partner: of the buyers it acts for)."
    ),
    responses={422: {"description": "Unknown organization, a scope or chain it may not hold"}},
)
def create_client(
    response: Response, session: SessionDep, _: Admin, body: ClientCreate
) -> ClientWithSecret:
    created = service.create_client(
        session,
        org_id=body.org_id,
        name=body.name,
        scopes=body.scopes,
        supply_chain_ids=body.supply_chains,
    )
    response.headers["Location"] = f"/v1/clients/{created.client.id}"
    return service.with_secret(created)


@router.get("/{client_id}", summary="One API client (programme)", responses=NOT_FOUND)
def get_client(session: SessionDep, _: Admin, client_id: str) -> ClientRead:
    return service.client_read(service.get_client(session, client_id=client_id))


@router.delete(
    "/{client_id}",
    status_code=204,
    summary="Revoke an API client (programme)",
    description="Its tokens stop working on their next request.",
    responses=NOT_FOUND,
)
def revoke_client(session: SessionDep, _: Admin, client_id: str) -> Response:
    service.revoke_client(session, client_id)
    return Response(status_code=204)
