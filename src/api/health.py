"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from src.api.deps import EngineDep
from src.api.problems import problem, problem_response
from src.services.health import readiness_problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def get_health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and migrated to head",
    responses={503: problem("Not ready")},
)
async def get_readiness(engine: EngineDep) -> Response:
    unready = await run_in_threadpool(readiness_problem, engine)
    if unready is None:
        return JSONResponse({"status": "ready"})
    return problem_response(
        status=503,
        slug="not-ready",
        title="Service not ready",
        detail=unready,
        instance="/readyz",
        headers={"Retry-After": "5"},
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def get_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
