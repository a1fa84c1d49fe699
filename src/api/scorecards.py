"""`/v1/scorecards` and `/v1/benchmarks`: a buyer's own purchasing-practice scorecards and the
industry benchmark; the programme publishes a period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from src.api.deps import Admin, ScorecardsReader, SessionDep, SettingsDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.api.problems import problem
from src.models.scorecards import BenchmarkRead, ScorecardPeriodRead, ScorecardRead
from src.models.surveys import PERIOD_PATTERN
from src.services import scorecards as service

router = APIRouter(prefix="/v1", tags=["scorecards"])

PeriodPath = Annotated[
    str, Path(pattern=PERIOD_PATTERN, description="Survey period", examples=["2026H1"])
]
OrgQuery = Annotated[
    str | None,
    Query(max_length=40, description="Programme only: the buyer organisation to read"),
]


ANONYMITY = (
    "A category fewer than 5 distinct suppliers answered (`WEFT_SCORECARD_MIN_SUPPLIERS`) is "
    "suppressed: no score, no count. The overall score is the mean of the shown categories."
)


@router.get(
    "/scorecards",
    response_model=Page[ScorecardRead],
    summary="List your published scorecards",
    description="Oldest period first. " + ANONYMITY,
    responses={403: problem("`org_id` names another organisation")},
)
def list_scorecards(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: ScorecardsReader,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN, examples=["2026H1"])] = None,
    org_id: OrgQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ScorecardRead]:
    page = service.list_scorecards(
        session, principal=principal, org_id=org_id, period=period, cursor=cursor, limit=limit
    )
    return page_of(request, response, page, lambda item: item)


@router.get(
    "/scorecards/{period}",
    summary="Your scorecard for one period",
    description=ANONYMITY,
    responses={
        403: problem("`org_id` names another organisation"),
        404: problem("No published scorecard of yours for the period"),
    },
)
def get_scorecard(
    session: SessionDep, principal: ScorecardsReader, period: PeriodPath, org_id: OrgQuery = None
) -> ScorecardRead:
    return service.get_scorecard(session, principal=principal, period=period, org_id=org_id)


@router.get(
    "/benchmarks/{period}",
    summary="The industry benchmark for one period, with your percentile",
    description=(
        "Per category, the median score of the buyers whose category is shown; suppressed when "
        "fewer than 5 buyers qualify (`WEFT_SCORECARD_MIN_BUYERS`)."
    ),
    responses={
        403: problem("`org_id` names another organisation"),
        404: problem("The period is not published"),
    },
)
def get_benchmark(
    session: SessionDep, principal: ScorecardsReader, period: PeriodPath, org_id: OrgQuery = None
) -> BenchmarkRead:
    return service.get_benchmark(session, principal=principal, period=period, org_id=org_id)


@router.post(
    "/scorecards/{period}/publish",
    summary="Compute and publish a period's scorecards (programme)",
    description="Sends `scorecard.published` to each buyer with a scorecard in the period.",
    responses={
        404: problem("No survey responses for the period"),
        409: problem("The period is already published"),
    },
)
def publish_scorecards(
    session: SessionDep,
    settings: SettingsDep,
    _principal: Admin,
    period: PeriodPath,
) -> ScorecardPeriodRead:
    return service.publish_period(session, period=period, settings=settings)
