"""Assessments: drafts written with all their findings, the draft → published → retracted state
machine, and the consent-checked reads. Publishing and retracting create the remediation items,
recompute the factory's summary and add their events, all in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, insert
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from src.db import flush_refused, utcnow
from src.ids import new_id
from src.models import Assessment, Factory, Finding, Question, RemediationItem
from src.models.assessments import (
    AssessmentCreate,
    AssessmentDetail,
    AssessmentRead,
    AssessmentStatus,
    ClusterFindings,
    FindingRead,
    PointFindings,
)
from src.models.base import row_values
from src.services.access import Principal, factory_visible, log_full_disclosure, require_consent
from src.services.catalogue import catalogue_questions, grouped, resolve_version
from src.services.compliance_summaries import refresh_summary
from src.services.errors import Conflict, FieldError, InvalidInput, NotFound
from src.services.events import EventType, emit
from src.services.pagination import Page, paginate
from src.services.remediation import create_remediation_items, require_full_access

LIST_KIND = "assessments"


def latest_published_cycle(session: Session, *, factory_id: str) -> int | None:
    cycle: int | None = session.scalar(
        select(func.max(Assessment.cycle)).where(
            col(Assessment.factory_id) == factory_id,
            col(Assessment.status) == AssessmentStatus.published,
        )
    )
    return cycle


def _validate(session: Session, data: AssessmentCreate) -> tuple[str, dict[str, int]]:
    """The catalogue version and its question ids by code; every problem as one InvalidInput."""
    errors: list[FieldError] = []
    if session.get(Factory, data.factory_id) is None:
        errors.append(FieldError("factory_id", f"No factory {data.factory_id}."))
    else:
        latest = latest_published_cycle(session, factory_id=data.factory_id)
        if latest is not None and data.cycle < latest:
            errors.append(
                FieldError(
                    "cycle",
                    f"Cycle {data.cycle} is lower than the factory's latest published "
                    f"cycle ({latest}).",
                )
            )
    if data.visit_end < data.visit_start:
        errors.append(FieldError("visit_end", "visit_end is before visit_start."))
    version: str | None = None
    questions: dict[str, int] = {}
    try:
        version = resolve_version(session, version=data.catalogue_version).version
    except NotFound as exc:
        errors.append(FieldError("catalogue_version", str(exc)))
    if version is not None:
        questions = {
            code: question_id
            for code, question_id in session.exec(
                select(col(Question.code), col(Question.id)).where(col(Question.version) == version)
            ).all()
            if question_id is not None
        }
        seen: set[str] = set()
        for index, finding in enumerate(data.findings):
            where = f"findings.{index}.question"
            if finding.question not in questions:
                errors.append(
                    FieldError(where, f"{finding.question} is not in catalogue version {version}.")
                )
            elif finding.question in seen:
                errors.append(FieldError(where, f"{finding.question} is answered twice."))
            seen.add(finding.question)
    if errors or version is None:
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    return version, questions


def create_assessment(
    session: Session, *, data: AssessmentCreate, assessment_id: str | None = None
) -> Assessment:
    """A draft with its findings (inserted in one statement); InvalidInput names each bad field.
    `assessment_id` fixes the id (the demo dataset keeps its ids stable); else a new one."""
    version, questions = _validate(session, data)
    assessment = Assessment(
        id=assessment_id or new_id("asm"),
        factory_id=data.factory_id,
        catalogue_version=version,
        cycle=data.cycle,
        kind=data.kind,
        announced=data.announced,
        visit_start=data.visit_start,
        visit_end=data.visit_end,
    )
    session.add(assessment)
    if flush_refused(session) is not None:
        raise Conflict(
            f"Factory {data.factory_id} already has a {data.kind} of cycle {data.cycle} "
            f"visited from {data.visit_start}."
        )
    session.execute(
        insert(Finding),
        [
            {
                "assessment_id": assessment.id,
                "question_id": questions[finding.question],
                "compliant": finding.compliant,
                "note": finding.note,
            }
            for finding in data.findings
        ],
    )
    return assessment


def _locked(session: Session, assessment_id: str) -> Assessment:
    assessment = session.exec(
        select(Assessment).where(col(Assessment.id) == assessment_id).with_for_update()
    ).first()
    if assessment is None:
        raise NotFound(f"No assessment {assessment_id}.")
    return assessment


def _move(assessment: Assessment, *, source: AssessmentStatus, target: AssessmentStatus) -> None:
    if assessment.status != source:
        raise Conflict(
            f"Assessment {assessment.id} is {assessment.status}; only a {source} assessment "
            f"can become {target}."
        )
    now = utcnow()
    assessment.status = target
    assessment.updated_at = now
    if target == AssessmentStatus.published:
        assessment.published_at = now
    else:
        assessment.retracted_at = now


def _event_data(assessment: Assessment) -> dict[str, Any]:
    return {
        "assessment_id": assessment.id,
        "factory_id": assessment.factory_id,
        "cycle": assessment.cycle,
        "kind": assessment.kind,
        "catalogue_version": assessment.catalogue_version,
        "visit_start": assessment.visit_start.isoformat(),
        "visit_end": assessment.visit_end.isoformat(),
    }


def publish_assessment(session: Session, *, assessment_id: str) -> Assessment:
    """Publishes a draft: its remediation items, the factory's summary and the events, all in
    the caller's transaction. Conflict unless it is a draft of a cycle no lower than the latest
    published one."""
    assessment = _locked(session, assessment_id)
    _move(assessment, source=AssessmentStatus.draft, target=AssessmentStatus.published)
    latest = latest_published_cycle(session, factory_id=assessment.factory_id)
    if latest is not None and assessment.cycle < latest:
        raise Conflict(
            f"Cycle {assessment.cycle} is lower than the factory's latest published cycle "
            f"({latest})."
        )
    session.add(assessment)
    session.flush()
    create_remediation_items(session, assessment=assessment)
    emit(
        session,
        EventType.assessment_published,
        _event_data(assessment),
        factory_id=assessment.factory_id,
    )
    refresh_summary(session, factory_id=assessment.factory_id)
    return assessment


def retract_assessment(session: Session, *, assessment_id: str) -> Assessment:
    """Withdraws a published assessment; the summary falls back to the previous published one."""
    assessment = _locked(session, assessment_id)
    _move(assessment, source=AssessmentStatus.published, target=AssessmentStatus.retracted)
    session.add(assessment)
    session.flush()
    emit(
        session,
        EventType.assessment_retracted,
        _event_data(assessment),
        factory_id=assessment.factory_id,
    )
    refresh_summary(session, factory_id=assessment.factory_id)
    return assessment


def _readable(principal: Principal) -> SelectOfScalar[Assessment]:
    """Assessments the caller may know of: all for the programme, else published ones of
    visible factories."""
    statement = select(Assessment)
    if principal.is_admin:
        return statement
    return statement.where(
        col(Assessment.status) == AssessmentStatus.published,
        factory_visible(principal, col(Assessment.factory_id)),  # type: ignore[arg-type]
    )


def _counts(session: Session, assessment_ids: list[str]) -> dict[str, tuple[int, int]]:
    """(questions asked, non-compliant) per assessment, in one query."""
    if not assessment_ids:
        return {}
    rows = session.execute(
        select(
            col(Finding.assessment_id),
            func.count(),
            func.sum(case((col(Finding.compliant).is_(False), 1), else_=0)),
        )
        .where(col(Finding.assessment_id).in_(assessment_ids))
        .group_by(col(Finding.assessment_id))
    ).all()
    return {assessment_id: (int(asked), int(bad or 0)) for assessment_id, asked, bad in rows}


def _read(assessment: Assessment, counts: tuple[int, int]) -> AssessmentRead:
    return AssessmentRead.model_validate(
        row_values(assessment) | {"questions_asked": counts[0], "non_compliant": counts[1]}
    )


def assessment_read(session: Session, *, assessment: Assessment) -> AssessmentRead:
    return _read(assessment, _counts(session, [assessment.id]).get(assessment.id, (0, 0)))


def list_factory_assessments(
    session: Session, *, principal: Principal, factory_id: str, cursor: str | None, limit: int
) -> Page[AssessmentRead]:
    """Oldest first; drafts and retracted ones only for the programme."""
    require_full_access(
        session, principal, factory_id=factory_id, resource=LIST_KIND, resource_id=factory_id
    )
    page = paginate(
        session,
        _readable(principal).where(col(Assessment.factory_id) == factory_id),
        kind=LIST_KIND,
        order_by=(col(Assessment.id),),
        types=(str,),
        cursor=cursor,
        limit=limit,
    )
    counts = _counts(session, [assessment.id for assessment in page.items])
    return Page(
        items=[_read(a, counts.get(a.id, (0, 0))) for a in page.items],
        next_cursor=page.next_cursor,
    )


def get_assessment(
    session: Session, *, principal: Principal, assessment_id: str
) -> AssessmentDetail:
    """One assessment with its findings grouped by cluster and compliance point."""
    assessment = session.exec(
        _readable(principal).where(col(Assessment.id) == assessment_id)
    ).first()
    if assessment is None:
        raise NotFound(f"No assessment {assessment_id}.")
    require_consent(session, principal, assessment.factory_id)
    log_full_disclosure(
        session,
        principal,
        factory_id=assessment.factory_id,
        resource="assessment",
        resource_id=assessment.id,
    )
    findings = {
        question_id: (compliant, note, item_id)
        for question_id, compliant, note, item_id in session.execute(
            select(
                col(Finding.question_id),
                col(Finding.compliant),
                col(Finding.note),
                col(RemediationItem.id),
            )
            .outerjoin(RemediationItem, col(RemediationItem.finding_id) == col(Finding.id))
            .where(col(Finding.assessment_id) == assessment.id)
        ).all()
    }
    rows = []
    for question in catalogue_questions(session, version=assessment.catalogue_version):
        if question.id in findings:
            compliant, note, item_id = findings[question.id]
            rows.append(
                (
                    question,
                    FindingRead(
                        question=question.code,
                        text=question.text,
                        critical=question.critical,
                        public=question.public,
                        compliant=compliant,
                        note=note,
                        remediation_item_id=item_id,
                    ),
                )
            )
    clusters = [
        ClusterFindings(
            code=cluster.cluster_code,
            name=cluster.cluster_name,
            category=cluster.cluster_category,
            points=[
                PointFindings(code=point.point_code, name=point.point_name, findings=reads)
                for point, reads in points
            ],
        )
        for cluster, points in grouped(rows)
    ]
    asked = len(rows)
    non_compliant = sum(1 for _, read in rows if not read.compliant)
    return AssessmentDetail.model_validate(
        _read(assessment, (asked, non_compliant)).model_dump() | {"clusters": clusters}
    )
