"""Compliance summaries: computed when an assessment is published or retracted and on every
remediation change, in that change's transaction, and stored as the two encoded answers (full and
public) so that a read serves bytes and computes nothing.

Which assessment is summarised: the factory's latest published one (highest cycle, then latest
visit). A retracted assessment no longer counts, so retracting the latest falls back to the one
before; with none published the summary says so with nulls. The previous cycle is the latest
published assessment of a lower cycle; cluster changes and `previous_risk_band` compare with it.

Rates are non-compliant questions / questions asked, rounded to 4 decimals.

Risk band, the first rule that matches:

- `critical`: an open critical issue, i.e. a critical question found non-compliant whose
  remediation item is neither done nor verified;
- `high`: overall non-compliance of 25 % or more, or 20 % or more in one core labour standards
  cluster (child labour, discrimination, forced labour, freedom of association);
- `medium`: overall non-compliance of 10 % or more;
- `low`: anything else.

A previous cycle's band is computed by the same rule, from its own findings and the current status
of its own remediation items."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import String, and_, bindparam, delete, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import Assessment, Client, ClusterCount, ComplianceSummary, Factory, Finding
from src.models.assessments import AssessmentStatus, RemediationItem, RemediationStatus
from src.models.compliance_summaries import (
    ClusterNonCompliance,
    ComplianceSummaryRead,
    CriticalIssueSummary,
    Disclosure,
    NonCompliance,
    PointNonCompliance,
    RemediationProgress,
    RiskBand,
    SummarisedAssessment,
)
from src.services.access import (
    Principal,
    Visibility,
    client_revoked,
    consent_granted_bound,
    factory_visible_bound,
    not_found_factory,
    visibility_of,
    visibility_params,
)
from src.services.access_log import AccessLog
from src.services.catalogue import CatalogueQuestion, catalogue_questions
from src.services.events import EventType, emit

CORE_LABOUR_STANDARDS = "core_labour_standards"
HIGH_OVERALL_RATE = 0.25
HIGH_CORE_CLUSTER_RATE = 0.20
MEDIUM_OVERALL_RATE = 0.10
UNRESOLVED = frozenset({RemediationStatus.open, RemediationStatus.in_progress})


def is_overdue(status: RemediationStatus, due_on: dt.date | None, today: dt.date) -> bool:
    return due_on is not None and due_on < today and status in UNRESOLVED


def rate(non_compliant: int, asked: int) -> float | None:
    return round(non_compliant / asked, 4) if asked else None


def risk_band(
    *, open_critical: int, overall_rate: float | None, core_cluster_rates: Sequence[float | None]
) -> RiskBand:
    """The module docstring's rule."""
    if open_critical:
        return RiskBand.critical
    if (overall_rate or 0) >= HIGH_OVERALL_RATE or any(
        (cluster_rate or 0) >= HIGH_CORE_CLUSTER_RATE for cluster_rate in core_cluster_rates
    ):
        return RiskBand.high
    if (overall_rate or 0) >= MEDIUM_OVERALL_RATE:
        return RiskBand.medium
    return RiskBand.low


@dataclass
class _Tally:
    asked: int = 0
    non_compliant: int = 0

    def count(self, compliant: bool) -> None:
        self.asked += 1
        self.non_compliant += 0 if compliant else 1

    @property
    def rate(self) -> float | None:
        return rate(self.non_compliant, self.asked)


@dataclass
class _ClusterTally(_Tally):
    name: str = ""
    category: str = ""
    points: dict[str, tuple[str, _Tally]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Item:
    id: str
    status: RemediationStatus
    due_on: dt.date | None


@dataclass
class _Figures:
    """What one published assessment says, with its remediation items' current status."""

    assessment: Assessment
    overall: _Tally = field(default_factory=_Tally)
    clusters: dict[str, _ClusterTally] = field(default_factory=dict)
    critical: list[tuple[CatalogueQuestion, _Item | None]] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)

    @property
    def open_critical(self) -> int:
        return sum(1 for _, item in self.critical if item is None or item.status in UNRESOLVED)

    @property
    def band(self) -> RiskBand:
        return risk_band(
            open_critical=self.open_critical,
            overall_rate=self.overall.rate,
            core_cluster_rates=[
                cluster.rate
                for cluster in self.clusters.values()
                if cluster.category == CORE_LABOUR_STANDARDS
            ],
        )


def _figures(session: Session, assessments: Sequence[Assessment]) -> dict[str, _Figures]:
    """The figures of each assessment: one query for findings and items, one per catalogue."""
    if not assessments:
        return {}
    rows = session.execute(
        sa_select(
            col(Finding.assessment_id),
            col(Finding.question_id),
            col(Finding.compliant),
            col(RemediationItem.id),
            col(RemediationItem.status),
            col(RemediationItem.due_on),
        )
        .outerjoin(RemediationItem, col(RemediationItem.finding_id) == col(Finding.id))
        .where(col(Finding.assessment_id).in_([a.id for a in assessments]))
    ).all()
    found: dict[str, dict[int, tuple[bool, _Item | None]]] = {a.id: {} for a in assessments}
    for assessment_id, question_id, compliant, item_id, status, due_on in rows:
        item = _Item(item_id, RemediationStatus(status), due_on) if item_id else None
        found[assessment_id][question_id] = (compliant, item)
    catalogues = {
        version: catalogue_questions(session, version=version)
        for version in {a.catalogue_version for a in assessments}
    }
    result = {}
    for assessment in assessments:
        figures = _Figures(assessment)
        findings = found[assessment.id]
        for question in catalogues[assessment.catalogue_version]:
            if question.id not in findings:
                continue
            compliant, item = findings[question.id]
            figures.overall.count(compliant)
            cluster = figures.clusters.setdefault(
                question.cluster_code,
                _ClusterTally(name=question.cluster_name, category=question.cluster_category),
            )
            cluster.count(compliant)
            point = cluster.points.setdefault(question.point_code, (question.point_name, _Tally()))
            point[1].count(compliant)
            if item is not None:
                figures.items.append(item)
            if question.critical and not compliant:
                figures.critical.append((question, item))
        result[assessment.id] = figures
    return result


def _summarised(assessment: Assessment | None) -> SummarisedAssessment | None:
    if assessment is None:
        return None
    return SummarisedAssessment(
        id=assessment.id,
        cycle=assessment.cycle,
        kind=assessment.kind,
        announced=assessment.announced,
        visit_start=assessment.visit_start,
        visit_end=assessment.visit_end,
        catalogue_version=assessment.catalogue_version,
        published_at=assessment.published_at,
    )


def _progress(items: Sequence[_Item], today: dt.date) -> RemediationProgress:
    def count(status: RemediationStatus) -> int:
        return sum(1 for item in items if item.status == status)

    return RemediationProgress(
        open=count(RemediationStatus.open),
        in_progress=count(RemediationStatus.in_progress),
        done=count(RemediationStatus.done),
        verified=count(RemediationStatus.verified),
        overdue=sum(1 for item in items if is_overdue(item.status, item.due_on, today)),
        total=len(items),
    )


def _clusters(
    current: _Figures, previous: _Figures | None, *, full: bool
) -> list[ClusterNonCompliance]:
    clusters = []
    for code, tally in current.clusters.items():
        before = previous.clusters.get(code) if previous else None
        previous_rate = before.rate if before else None
        current_rate = tally.rate
        clusters.append(
            ClusterNonCompliance(
                code=code,
                name=tally.name,
                category=tally.category,
                asked=tally.asked,
                non_compliant=tally.non_compliant,
                rate=current_rate,
                previous_rate=previous_rate,
                change=(
                    round(current_rate - previous_rate, 4)
                    if current_rate is not None and previous_rate is not None
                    else None
                ),
                points=[
                    PointNonCompliance(
                        code=point_code,
                        name=name,
                        asked=point.asked,
                        non_compliant=point.non_compliant,
                        rate=point.rate,
                    )
                    for point_code, (name, point) in tally.points.items()
                ]
                if full
                else None,
            )
        )
    return clusters


def _critical_issues(
    current: _Figures, today: dt.date, *, full: bool
) -> list[CriticalIssueSummary]:
    return [
        CriticalIssueSummary(
            question=question.code,
            text=question.text,
            cluster=question.cluster_code,
            compliance_point=question.point_code,
            public=question.public,
            remediation_item_id=item.id if item and full else None,
            status=item.status if item else None,
            due_on=item.due_on if item else None,
            overdue=bool(item and is_overdue(item.status, item.due_on, today)),
        )
        for question, item in current.critical
        if full or question.public
    ]


def summary_read(
    factory_id: str,
    current: _Figures | None,
    previous: _Figures | None,
    *,
    disclosure: Disclosure,
    updated_at: dt.datetime,
) -> ComplianceSummaryRead:
    full = disclosure == Disclosure.full
    today = updated_at.date()
    if current is None:
        return ComplianceSummaryRead(
            factory_id=factory_id,
            disclosure=disclosure,
            assessment=None,
            previous_assessment=None,
            risk_band=None,
            previous_risk_band=None,
            non_compliance=None,
            clusters=[],
            critical_issues=[],
            remediation=None,
            updated_at=updated_at,
        )
    return ComplianceSummaryRead(
        factory_id=factory_id,
        disclosure=disclosure,
        assessment=_summarised(current.assessment),
        previous_assessment=_summarised(previous.assessment if previous else None),
        risk_band=current.band,
        previous_risk_band=previous.band if previous else None,
        non_compliance=NonCompliance(
            asked=current.overall.asked,
            non_compliant=current.overall.non_compliant,
            rate=current.overall.rate,
        ),
        clusters=_clusters(current, previous, full=full),
        critical_issues=_critical_issues(current, today, full=full),
        remediation=_progress(current.items, today) if full else None,
        updated_at=updated_at,
    )


def _encode(
    factory_id: str,
    current: _Figures | None,
    previous: _Figures | None,
    updated_at: dt.datetime,
) -> tuple[bytes, bytes]:
    full, public = (
        summary_read(factory_id, current, previous, disclosure=disclosure, updated_at=updated_at)
        .model_dump_json()
        .encode()
        for disclosure in (Disclosure.full, Disclosure.public)
    )
    return full, public


def _published(session: Session, factory_id: str) -> list[Assessment]:
    return list(
        session.exec(
            select(Assessment)
            .where(
                col(Assessment.factory_id) == factory_id,
                col(Assessment.status) == AssessmentStatus.published,
            )
            .order_by(
                col(Assessment.cycle).desc(),
                col(Assessment.visit_start).desc(),
                col(Assessment.id).desc(),
            )
        ).all()
    )


def refresh_summary(session: Session, *, factory_id: str) -> ComplianceSummary:
    """Recomputes and stores the factory's summary; when it changed, also its cluster counts, the
    factory's `updated_at` and a `compliance_summary.updated` event. The factory row is locked
    first, so concurrent changes to one factory recompute its summary one after the other."""
    factory = session.exec(
        select(Factory).where(col(Factory.id) == factory_id).with_for_update()
    ).first()
    published = _published(session, factory_id)
    current = published[0] if published else None
    previous = next((a for a in published if a.cycle < current.cycle), None) if current else None
    figures = _figures(session, [a for a in (current, previous) if a is not None])
    current_figures = figures.get(current.id) if current else None
    previous_figures = figures.get(previous.id) if previous else None

    row = session.get(ComplianceSummary, factory_id)
    if row is not None:
        unchanged = _encode(factory_id, current_figures, previous_figures, row.updated_at)
        if unchanged == (row.full_json, row.public_json):
            return row
    now = utcnow()
    full_json, public_json = _encode(factory_id, current_figures, previous_figures, now)
    if row is None:
        row = ComplianceSummary(factory_id=factory_id, full_json=full_json, public_json=public_json)
    row.full_json, row.public_json, row.updated_at = full_json, public_json, now
    row.assessment_id = current.id if current else None
    row.cycle = current.cycle if current else None
    row.risk_band = current_figures.band if current_figures else None
    row.previous_risk_band = previous_figures.band if previous_figures else None
    row.open_critical_count = current_figures.open_critical if current_figures else 0
    session.add(row)
    _store_cluster_counts(session, factory_id, current_figures)
    if factory is not None:
        factory.updated_at = now
        session.add(factory)
    session.flush()
    emit(
        session,
        EventType.compliance_summary_updated,
        {
            "factory_id": factory_id,
            "assessment_id": row.assessment_id,
            "cycle": row.cycle,
            "risk_band": row.risk_band,
            "previous_risk_band": row.previous_risk_band,
        },
        factory_id=factory_id,
    )
    return row


def _store_cluster_counts(session: Session, factory_id: str, figures: _Figures | None) -> None:
    session.execute(delete(ClusterCount).where(col(ClusterCount.factory_id) == factory_id))
    if figures is None or not figures.clusters:
        return
    session.execute(
        insert(ClusterCount),
        [
            {
                "factory_id": factory_id,
                "cluster_code": code,
                "asked": tally.asked,
                "non_compliant": tally.non_compliant,
            }
            for code, tally in figures.clusters.items()
        ],
    )


@cache
def _summary_statement(shape: Visibility) -> Any:
    """The caller's client, visibility, consent and the stored answer to serve, in one statement
    built once per shape: a row for the client, with the factory's columns null where it is
    missing or hidden."""
    factory_id = bindparam("factory_id", type_=String)
    consented = consent_granted_bound(shape, factory_id)
    return (
        sa_select(
            col(Client.revoked_at),
            col(Factory.updated_at),
            consented,
            col(ComplianceSummary.full_json),
            col(ComplianceSummary.public_json),
        )
        .select_from(Client)
        .outerjoin(
            Factory,
            and_(col(Factory.id) == factory_id, factory_visible_bound(shape, col(Factory.id))),
        )
        .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
        .where(col(Client.id) == bindparam("client_id", type_=String))
    )


def summary_body(
    session: Session, *, principal: Principal, factory_id: str, access_log: AccessLog
) -> bytes:
    """The stored answer for the caller: full with consent (a logged disclosure), public without.
    One query checks the caller's client is not revoked and decides visibility, consent and
    which encoding to read, so the route may skip `resolve_principal`'s own query."""
    row = (
        session.connection()
        .execute(
            _summary_statement(visibility_of(principal)),
            visibility_params(principal)
            | {"factory_id": factory_id, "client_id": principal.client_id},
        )
        .first()
    )
    if row is None or row[0] is not None:
        raise client_revoked()
    _, factory_updated_at, full, full_body, public_body = row
    body = full_body if full else public_body
    if factory_updated_at is None:
        raise not_found_factory()
    if full:
        access_log.record(
            session,
            principal,
            factory_id=factory_id,
            resource="compliance_summary",
            resource_id=factory_id,
        )
    if body is None:
        disclosure = Disclosure.full if full else Disclosure.public
        empty = summary_read(
            factory_id, None, None, disclosure=disclosure, updated_at=factory_updated_at
        )
        return empty.model_dump_json().encode()
    return bytes(body)
