"""`GET /v1/supply-chains/{id}/compliance`: compliance across one supply chain, or its CSV."""

from __future__ import annotations

import itertools

from fastapi import APIRouter, Request
from starlette.responses import Response

from src.api.deps import ComplianceReader, EngineDep, SessionDep
from src.api.streaming import ClosingStreamingResponse
from src.models.supply_chain_compliance import SupplyChainCompliance
from src.services import supply_chain_compliance as service

router = APIRouter(prefix="/v1", tags=["supply chains"])

CSV = "text/csv"


@router.get(
    "/supply-chains/{supply_chain_id}/compliance",
    response_class=Response,
    summary="Compliance across a supply chain",
    description=(
        "Factories by risk band, non-compliance per cluster (weighted by questions asked), open "
        "critical issues with their age, and the factories whose band got worse. "
        "Send `Accept: text/csv` for the chain's factories with their summary figures."
    ),
    responses={200: {"model": SupplyChainCompliance, "content": {CSV: {}}}},
)
def get_supply_chain_compliance(
    request: Request,
    session: SessionDep,
    engine: EngineDep,
    principal: ComplianceReader,
    supply_chain_id: str,
) -> Response:
    if CSV in request.headers.get("accept", ""):
        rows = service.export_supply_chain_csv(
            engine, principal=principal, supply_chain_id=supply_chain_id
        )
        first = next(rows)  # raises NotFound before the answer starts
        return ClosingStreamingResponse(
            itertools.chain([first], rows),
            source=rows,
            media_type=f"{CSV}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{supply_chain_id}.csv"'},
        )
    body = service.compliance_body(session, principal=principal, supply_chain_id=supply_chain_id)
    return Response(body, media_type="application/json")
