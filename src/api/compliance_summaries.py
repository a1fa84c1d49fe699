"""`GET /v1/factories/{id}/compliance-summary`: the stored summary, served as stored.

The API's hottest read is added to the app itself (`install`) rather than through a router:
FastAPI 0.165 resolves an included router as a branch on every request it serves. FastAPI
documents it as any route, and its endpoint answers the request itself (`src.api.self_served`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from src.api.deps import principal_checked_by_route
from src.api.problems import NOT_VISIBLE
from src.api.self_served import add_served_as_is
from src.models.compliance_summaries import ComplianceSummaryRead
from src.services import compliance_summaries as service

SCOPES = ("compliance:read",)
# What FastAPI would write for `factory_id: str` and a `Security` dependency: the route reads
# both itself (see `get_compliance_summary`).
FACTORY_ID = {
    "name": "factory_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "title": "Factory Id"},
}


async def get_compliance_summary(request: Request) -> Response:
    # The hottest read takes its caller and path parameter itself: FastAPI's dependency solving
    # (a `Security` dependency and a validated `str`) was a sixth of its time in-process
    # (docs/benchmarks.md). Its one statement is awaited: on PostgreSQL the loop serves other
    # requests meanwhile; on SQLite the loop's own connection answers at once.
    answer = await service.summary_answer(
        request.app.state.awaited_reader,
        principal=principal_checked_by_route(request, SCOPES),
        factory_id=request.path_params["factory_id"],
        access_log=request.app.state.access_log,
    )
    # The stored entity tag spares the conditional-GET middleware hashing the body.
    headers = {"ETag": answer.etag} if answer.etag else None
    return Response(answer.body, media_type="application/json", headers=headers)


def install(app: FastAPI) -> None:
    add_served_as_is(
        app,
        "/v1/factories/{factory_id}/compliance-summary",
        get_compliance_summary,
        scopes=SCOPES,
        parameters=[FACTORY_ID],
        tags=["compliance"],
        summary="A factory's compliance summary",
        description=(
            "From the factory's latest published assessment: non-compliance per cluster and "
            "compliance point, critical issues with their remediation status, remediation "
            "progress, change since the previous cycle and the risk band. Where the factory "
            'consents to your organisation the answer has `disclosure: "full"` (and the read is '
            'written to the factory\'s access log); otherwise `disclosure: "public"`: aggregate '
            "cluster rates and issues on public questions only. Before any published assessment "
            "the figures are null."
        ),
        responses={
            200: {"model": ComplianceSummaryRead, "description": "The summary"},
            404: NOT_VISIBLE,
        },
    )
