"""`/v1/factories`: the factories a caller may see, and the programme's edits."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.security import SecurityScopes
from pydantic import BaseModel, Field

from src.api.deps import (
    Admin,
    FactoriesReader,
    SessionDep,
    get_principal,
    principal_checked_by_route,
)
from src.api.pagination import (
    CursorQuery,
    LimitQuery,
    Page,
    encoded_page,
    kept_snapshot,
    link_header,
    page_etag,
)
from src.api.self_served import add_served_as_is, documented_query, query_of
from src.api.streaming import ClosingStreamingResponse
from src.models.base import IsoDateTime
from src.models.compliance_summaries import RiskBand
from src.models.factories import FactoryCreate, FactoryRead, FactoryStatus, FactoryUpdate
from src.prepared_reads import read_awaited
from src.services import factories as service
from src.services.factories import FactoryFilters
from src.services.pagination import DEFAULT_LIMIT

router = APIRouter(prefix="/v1", tags=["factories"])

CSV = "text/csv"
JSON = "application/json"


class FactoryQuery(BaseModel):
    """The list's query parameters as one model, validated once a request (`query_of`) and
    documented as ten parameters (`documented_query`)."""

    country: str | None = Field(
        default=None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2"
    )
    status: FactoryStatus | None = None
    risk_band: RiskBand | None = None
    supply_chain: str | None = Field(
        default=None, description="Only factories linked in this chain"
    )
    os_id: str | None = Field(default=None, description="Open Supply Hub id")
    supplier_code: str | None = Field(default=None, description="Your own vendor id")
    q: str | None = Field(default=None, min_length=2, max_length=100, description="Name or code")
    updated_since: IsoDateTime | None = Field(
        default=None,
        description=(
            "Only factories changed at or after this time: edited, given a new compliance "
            "summary, linked or unlinked in a supply chain, or with a link come into or out "
            "of force"
        ),
    )
    limit: LimitQuery = DEFAULT_LIMIT
    cursor: CursorQuery = None

    def filters(self) -> FactoryFilters:
        updated_since = self.updated_since
        if updated_since is not None and updated_since.tzinfo is None:
            updated_since = updated_since.replace(tzinfo=dt.UTC)
        return FactoryFilters(
            country=self.country, status=self.status, risk_band=self.risk_band,
            supply_chain=self.supply_chain, os_id=self.os_id, supplier_code=self.supplier_code,
            q=self.q, updated_since=updated_since,
        )  # fmt: skip


LIST_SCOPES = ("factories:read",)


async def list_factories(request: Request) -> Response:
    # The page serves itself (`src.api.self_served`): FastAPI's dependency solving and query
    # model parsing were a fifth of its time in-process. Its statements check the caller's
    # client themselves (`factory_page`), as the compliance summary's does; an export has sent
    # its first line before it reads a page, so its caller is resolved first.
    export = CSV in request.headers.get("accept", "")
    if export:
        principal = await get_principal(request, SecurityScopes(list(LIST_SCOPES)))
    else:
        principal = principal_checked_by_route(request, LIST_SCOPES)
    query = query_of(request, FactoryQuery)
    filters = query.filters()
    if export:
        return ClosingStreamingResponse(
            service.export_factories_csv(
                request.app.state.engine, principal=principal, filters=filters
            ),
            media_type=f"{CSV}; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="factories.csv"'},
        )
    # Awaited, as the compliance summary's read: on PostgreSQL the loop serves other requests
    # while the server walks the page (see `src.prepared_reads`).
    page = await read_awaited(
        request.app.state.awaited_reader,
        service.factory_page(
            principal=principal,
            filters=filters,
            cursor=query.cursor,
            limit=query.limit,
            postgresql=request.app.state.engine.dialect.name == "postgresql",
            kept_snapshot=None if query.cursor else kept_snapshot(request),
        ),
    )
    body = encoded_page(page)
    headers = link_header(request, page) | {"ETag": page_etag(body, page)}
    return Response(body, media_type=JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Adds the factory page to the app itself, as `compliance_summaries.install` does."""
    add_served_as_is(
        app,
        "/v1/factories",
        list_factories,
        scopes=LIST_SCOPES,
        parameters=documented_query(FactoryQuery),
        tags=["factories"],
        summary="List the factories you may see",
        description=(
            "Ordered by `updated_at`, then `id`. For a nightly sync pass `updated_since` (the "
            "newest `updated_at` of the previous sync) and follow `next_cursor`: a walk never "
            "returns a factory twice, and what changes during it comes in the next sync. "
            "Send `Accept: text/csv` for every matching factory as a streamed CSV file."
        ),
        responses={
            200: {
                "model": Page[FactoryRead],
                "description": "Successful Response",
                "content": {CSV: {}},
            }
        },
    )


@router.get("/factories/{factory_id}", summary="One factory, with your supplier codes")
def get_factory(session: SessionDep, principal: FactoriesReader, factory_id: str) -> FactoryRead:
    return service.get_factory(session, principal=principal, factory_id=factory_id)


@router.post("/factories", status_code=201, summary="Enrol a factory (programme)")
def create_factory(
    response: Response, session: SessionDep, principal: Admin, body: FactoryCreate
) -> FactoryRead:
    factory = service.create_factory(session, data=body)
    response.headers["Location"] = f"/v1/factories/{factory.id}"
    return service.get_factory(session, principal=principal, factory_id=factory.id)


@router.patch("/factories/{factory_id}", summary="Update a factory (programme)")
def update_factory(
    session: SessionDep, principal: Admin, factory_id: str, body: FactoryUpdate
) -> FactoryRead:
    service.update_factory(session, factory_id=factory_id, data=body)
    return service.get_factory(session, principal=principal, factory_id=factory_id)
