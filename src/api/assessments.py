"""Assessments: the programme writes drafts with their findings, publishes and retracts them;
readers with consent list a factory's assessments and read one with its findings."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from src.api.deps import Admin, ComplianceReader, SessionDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.api.problems import NO_CONSENT, NOT_VISIBLE, problem
from src.models.assessments import AssessmentCreate, AssessmentDetail, AssessmentRead
from src.services import assessments as service

router = APIRouter(prefix="/v1", tags=["assessments"])


STATE_CONFLICT = problem("The assessment is not in a state that allows this move")


@router.post(
    "/assessments",
    status_code=201,
    summary="Write a draft assessment with its findings (programme)",
    description=(
        "Every finding names a question of the assessment's catalogue version (default: the "
        "current one), at most once. The cycle may not be lower than the factory's latest "
        "published cycle. A draft is visible only to the programme until published."
    ),
    responses={
        409: problem("The factory already has this kind of visit for the cycle and start date"),
        422: problem("A field is not valid; `errors` names each, e.g. `findings.3.question`"),
    },
)
def create_assessment(
    response: Response, session: SessionDep, principal: Admin, body: AssessmentCreate
) -> AssessmentDetail:
    assessment = service.create_assessment(session, data=body)
    response.headers["Location"] = f"/v1/assessments/{assessment.id}"
    return service.get_assessment(session, principal=principal, assessment_id=assessment.id)


@router.post(
    "/assessments/{assessment_id}/publish",
    summary="Publish a draft assessment (programme)",
    description=(
        "Creates a remediation item for each non-compliant finding, recomputes the factory's "
        "compliance summary and sends `assessment.published` and `compliance_summary.updated`."
    ),
    responses={404: problem("No such assessment"), 409: STATE_CONFLICT},
)
def publish_assessment(session: SessionDep, _: Admin, assessment_id: str) -> AssessmentRead:
    assessment = service.publish_assessment(session, assessment_id=assessment_id)
    return service.assessment_read(session, assessment=assessment)


@router.post(
    "/assessments/{assessment_id}/retract",
    summary="Retract a published assessment (programme)",
    description=(
        "The factory's summary falls back to its previous published assessment. Sends "
        "`assessment.retracted` and `compliance_summary.updated`."
    ),
    responses={404: problem("No such assessment"), 409: STATE_CONFLICT},
)
def retract_assessment(session: SessionDep, _: Admin, assessment_id: str) -> AssessmentRead:
    assessment = service.retract_assessment(session, assessment_id=assessment_id)
    return service.assessment_read(session, assessment=assessment)


@router.get(
    "/factories/{factory_id}/assessments",
    response_model=Page[AssessmentRead],
    summary="List a factory's assessments",
    description=(
        "Oldest first. Published assessments only (the programme also sees drafts and retracted "
        "ones). Needs the factory's consent; each read is written to its access log."
    ),
    responses={403: NO_CONSENT, 404: NOT_VISIBLE},
)
def list_factory_assessments(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: ComplianceReader,
    factory_id: str,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AssessmentRead]:
    page = service.list_factory_assessments(
        session, principal=principal, factory_id=factory_id, cursor=cursor, limit=limit
    )
    return page_of(request, response, page, lambda item: item)


@router.get(
    "/assessments/{assessment_id}",
    summary="One assessment with its findings by cluster and compliance point",
    description="Needs the factory's consent; each read is written to its access log.",
    responses={403: NO_CONSENT, 404: problem("No such assessment, or not one you may see")},
)
def get_assessment(
    session: SessionDep, principal: ComplianceReader, assessment_id: str
) -> AssessmentDetail:
    return service.get_assessment(session, principal=principal, assessment_id=assessment_id)
