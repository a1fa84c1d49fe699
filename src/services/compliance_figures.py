"""The arithmetic of a compliance summary, with no database: rates, the risk band's rule,
remediation progress, and the two answers (full and public) built from one assessment's figures.

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

from src.models import Assessment
from src.models.assessments import RemediationStatus
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
from src.services.catalogue import CatalogueQuestion

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
class Tally:
    asked: int = 0
    non_compliant: int = 0

    def count(self, compliant: bool) -> None:
        self.asked += 1
        self.non_compliant += 0 if compliant else 1

    @property
    def rate(self) -> float | None:
        return rate(self.non_compliant, self.asked)


@dataclass
class ClusterTally(Tally):
    name: str = ""
    category: str = ""
    points: dict[str, tuple[str, Tally]] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemState:
    id: str
    status: RemediationStatus
    due_on: dt.date | None


@dataclass
class Figures:
    """What one published assessment says, with its remediation items' current status."""

    assessment: Assessment
    overall: Tally = field(default_factory=Tally)
    clusters: dict[str, ClusterTally] = field(default_factory=dict)
    critical: list[tuple[CatalogueQuestion, ItemState | None]] = field(default_factory=list)
    items: list[ItemState] = field(default_factory=list)

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


def _progress(items: Sequence[ItemState], today: dt.date) -> RemediationProgress:
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
    current: Figures, previous: Figures | None, *, full: bool
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


def _critical_issues(current: Figures, today: dt.date, *, full: bool) -> list[CriticalIssueSummary]:
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
    current: Figures | None,
    previous: Figures | None,
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


def encode_summaries(
    factory_id: str,
    current: Figures | None,
    previous: Figures | None,
    updated_at: dt.datetime,
) -> tuple[bytes, bytes]:
    full, public = (
        summary_read(factory_id, current, previous, disclosure=disclosure, updated_at=updated_at)
        .model_dump_json()
        .encode()
        for disclosure in (Disclosure.full, Disclosure.public)
    )
    return full, public
