"""Demo compliance data: two or three published assessment cycles per demo factory, a year apart,
with findings, remediation items in every status, and a few factories with open critical issues.

Each factory's generator is seeded by its programme code, so every run writes the same findings;
a factory that already has assessments is left alone, so a second run changes nothing."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from src.models import Assessment, Factory, Question, RemediationItem
from src.models.assessments import AssessmentCreate, AssessmentKind, FindingInput
from src.models.assessments import RemediationStatus as Status
from src.services.assessments import create_assessment, publish_assessment
from src.services.catalogue import CatalogueQuestion, catalogue_questions, current_version
from src.services.compliance_figures import CORE_LABOUR_STANDARDS
from src.services.compliance_summaries import refresh_summary

LATEST_YEAR = 2026
# Positions in the demo factory file with open critical issues in their latest cycle: two that
# consent to Northwind, one shared by Northwind and Harbour without consent, one consenting to
# Harbour, one in Northwind's woven chain and one in no chain.
CRITICAL_POSITIONS = frozenset({2, 7, 18, 23, 44, 53})
# Latest-cycle item status weights; earlier cycles are mostly closed.
LATEST_STATUSES = (
    (Status.open, 40),
    (Status.in_progress, 35),
    (Status.done, 15),
    (Status.verified, 10),
)
CORE_FACTOR = 0.3
EARLIER_STATUSES = ((Status.verified, 70), (Status.done, 20), (Status.in_progress, 10))


def _rate_for(question: CatalogueQuestion, rate: float) -> float:
    """Core labour standards fail far less often than working conditions, as in the programme's
    published results."""
    return rate * (CORE_FACTOR if question.cluster_category == CORE_LABOUR_STANDARDS else 1)


def _findings(
    rng: random.Random,
    questions: Sequence[CatalogueQuestion],
    *,
    rate: float,
    critical_issues: int,
) -> list[FindingInput]:
    """70–90 % of the catalogue, working conditions non-compliant at about `rate`; critical
    questions only fail `critical_issues` times."""
    asked = sorted(rng.sample(range(len(questions)), round(len(questions) * rng.uniform(0.7, 0.9))))
    critical = [index for index in asked if questions[index].critical]
    failing = set(rng.sample(critical, min(critical_issues, len(critical))))
    return [
        FindingInput(
            question=questions[index].code,
            compliant=index not in failing
            and (questions[index].critical or rng.random() >= _rate_for(questions[index], rate)),
            note=None,
        )
        for index in asked
    ]


def _weighted(rng: random.Random, weights: Sequence[tuple[Status, int]]) -> Status:
    return rng.choices([status for status, _ in weights], [w for _, w in weights])[0]


def _set_statuses(
    session: Session, rng: random.Random, assessment: Assessment, *, latest: bool
) -> None:
    """Moves the assessment's items to believable statuses, one UPDATE per status."""
    rows = session.exec(
        select(col(RemediationItem.id), col(Question.critical))
        .join(Question, col(Question.id) == col(RemediationItem.question_id))
        .where(col(RemediationItem.assessment_id) == assessment.id)
        .order_by(col(RemediationItem.id))
    ).all()
    by_status: dict[Status, list[str]] = {}
    for item_id, critical in rows:
        if latest and critical:
            status = rng.choice((Status.open, Status.in_progress))
        else:
            status = _weighted(rng, LATEST_STATUSES if latest else EARLIER_STATUSES)
        by_status.setdefault(status, []).append(item_id)
    closed_at = dt.datetime.combine(
        assessment.visit_end + dt.timedelta(days=75), dt.time(9), tzinfo=dt.UTC
    )
    for status, ids in by_status.items():
        if status == Status.open:
            continue
        session.execute(
            update(RemediationItem)
            .where(col(RemediationItem.id).in_(ids))
            .values(
                status=status.value,
                verified_at=closed_at if status == Status.verified else None,
            )
        )


def _seed_factory(
    session: Session,
    factory: Factory,
    position: int,
    version: str,
    questions: Sequence[CatalogueQuestion],
) -> None:
    from src.services.demo import demo_id  # demo.py imports this module

    rng = random.Random(f"weft-demo-compliance:{factory.programme_code or factory.id}")
    cycles = rng.choice((2, 3, 3))
    # Most factories 5–20 % non-compliant, a few worse; earlier cycles somewhat worse still.
    latest_rate = rng.uniform(0.28, 0.4) if rng.random() < 0.12 else rng.uniform(0.07, 0.26)
    for cycle in range(1, cycles + 1):
        latest = cycle == cycles
        year = LATEST_YEAR - (cycles - cycle)
        visit_start = dt.date(year, rng.randint(1, 9), rng.randint(1, 26))
        rate = latest_rate * (1 if latest else rng.uniform(0.9, 1.6))
        data = AssessmentCreate(
            factory_id=factory.id,
            cycle=cycle,
            kind=(
                AssessmentKind.follow_up
                if latest and cycles == 3 and rng.random() < 0.3
                else AssessmentKind.assessment
            ),
            announced=rng.random() < 0.3,
            visit_start=visit_start,
            visit_end=visit_start + dt.timedelta(days=rng.randint(1, 3)),
            catalogue_version=version,
            findings=_findings(
                rng,
                questions,
                rate=min(rate, 0.45),
                critical_issues=(
                    rng.randint(1, 2) if position in CRITICAL_POSITIONS and latest else 0
                ),
            ),
        )
        assessment = create_assessment(
            session, data=data, assessment_id=demo_id("asm", f"{factory.id}:{cycle}")
        )
        publish_assessment(session, assessment_id=assessment.id)
        assessment.published_at = dt.datetime.combine(
            assessment.visit_end + dt.timedelta(days=21), dt.time(12), tzinfo=dt.UTC
        )
        session.add(assessment)
        _set_statuses(session, rng, assessment, latest=latest)
    session.flush()
    refresh_summary(session, factory_id=factory.id)


def seed_demo_compliance(session: Session, factories: Sequence[Factory]) -> int:
    """Assesses every demo factory that has no assessment yet; answers how many were assessed."""
    version = current_version(session)
    if version is None:
        return 0
    questions = catalogue_questions(session, version=version.version)
    assessed = set(session.exec(select(Assessment.factory_id).distinct()).all())
    seeded = 0
    for position, factory in enumerate(factories):
        if factory.id in assessed:
            continue
        _seed_factory(session, factory, position, version.version, questions)
        seeded += 1
    session.flush()
    return seeded
