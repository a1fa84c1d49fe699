"""`/v1/supply-chains`: a buyer's supply chains and the factories linked in them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from src.api.deps import FactoriesReader, SessionDep, SupplyChainWriter
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.models.supply_chains import (
    LinkCreate,
    LinkRead,
    SupplyChainCreate,
    SupplyChainRead,
    SupplyChainUpdate,
)
from src.services import supply_chains as service

router = APIRouter(prefix="/v1/supply-chains", tags=["supply chains"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such supply chain of yours (or no such link)"}
}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "The body is not valid"}}


@router.get("", summary="List your supply chains")
def list_supply_chains(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: FactoriesReader,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[SupplyChainRead]:
    page = service.list_supply_chains(session, principal=principal, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)


@router.post(
    "",
    status_code=201,
    summary="Create a supply chain",
    description="The programme names the owning buyer in `org_id`; a buyer owns what it creates.",
    responses=INVALID | {403: {"description": "The client is limited to named supply chains"}},
)
def create_supply_chain(
    response: Response, session: SessionDep, principal: SupplyChainWriter, body: SupplyChainCreate
) -> SupplyChainRead:
    chain = service.create_supply_chain(session, principal=principal, data=body)
    response.headers["Location"] = f"/v1/supply-chains/{chain.id}"
    return chain


@router.get("/{chain_id}", summary="One of your supply chains", responses=NOT_FOUND)
def get_supply_chain(
    session: SessionDep, principal: FactoriesReader, chain_id: str
) -> SupplyChainRead:
    return service.get_supply_chain(session, principal=principal, chain_id=chain_id)


@router.patch(
    "/{chain_id}", summary="Rename or describe a supply chain", responses=NOT_FOUND | INVALID
)
def update_supply_chain(
    session: SessionDep, principal: SupplyChainWriter, chain_id: str, body: SupplyChainUpdate
) -> SupplyChainRead:
    return service.update_supply_chain(session, principal=principal, chain_id=chain_id, data=body)


@router.get(
    "/{chain_id}/factories",
    summary="The factories linked in a supply chain, with your supplier codes",
    description="Every link, including ended and future ones, ordered by factory id.",
    responses=NOT_FOUND,
)
def list_supply_chain_factories(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: FactoriesReader,
    chain_id: str,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[LinkRead]:
    page = service.list_links(
        session, principal=principal, chain_id=chain_id, cursor=cursor, limit=limit
    )
    return page_of(request, response, page, lambda item: item)


@router.post(
    "/{chain_id}/factories",
    status_code=201,
    summary="Link a factory into a supply chain",
    description=(
        "Name the factory by exactly one of `factory_id`, `os_id` or `programme_code`. "
        "Emits `supply_chain.factory_linked`."
    ),
    responses=NOT_FOUND
    | INVALID
    | {409: {"description": "The factory is already linked, or the supplier code is taken"}},
)
def link_supply_chain_factory(
    response: Response,
    session: SessionDep,
    principal: SupplyChainWriter,
    chain_id: str,
    body: LinkCreate,
) -> LinkRead:
    link = service.create_link(session, principal=principal, chain_id=chain_id, data=body)
    response.headers["Location"] = f"/v1/supply-chains/{chain_id}/factories/{link.factory.id}"
    return link


@router.get(
    "/{chain_id}/factories/{factory_id}",
    summary="One factory link of a supply chain",
    responses=NOT_FOUND,
)
def get_supply_chain_factory(
    session: SessionDep, principal: FactoriesReader, chain_id: str, factory_id: str
) -> LinkRead:
    return service.get_link(session, principal=principal, chain_id=chain_id, factory_id=factory_id)


@router.delete(
    "/{chain_id}/factories/{factory_id}",
    status_code=204,
    summary="Unlink a factory from a supply chain",
    description="Emits `supply_chain.factory_unlinked`.",
    responses=NOT_FOUND,
)
def unlink_supply_chain_factory(
    session: SessionDep, principal: SupplyChainWriter, chain_id: str, factory_id: str
) -> Response:
    service.delete_link(session, principal=principal, chain_id=chain_id, factory_id=factory_id)
    return Response(status_code=204)
