"""Precomputed compliance summaries, stored ready to serve, with their per-cluster counts."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import orjson
import pydantic
from pydantic import BaseModel
from sqlalchemy import Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from src.models.assessments import AssessmentKind, RemediationStatus
from src.models.base import fk, updated_at_field


class RiskBand(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ComplianceSummary(SQLModel, table=True):
    """One row per factory; `full_json` and `public_json` are the encoded answer bodies, and
    `full_etag` and `public_etag` their entity tags, so that a read hashes nothing.
    `cluster_counts` holds the summarised assessment's questions asked and found non-compliant
    per cluster (`encode_cluster_counts`), which the supply-chain aggregate adds up."""

    __tablename__ = "compliance_summaries"
    # Covers what the supply-chain aggregate reads of each factory, so its joins never touch the
    # rows, which carry both encoded answers (SQLite, a 2,429-factory chain: bands 15 → 6 ms,
    # critical issues 27 → 14 ms).
    __table_args__ = (
        Index(
            "ix_compliance_summaries_figures", "factory_id", "risk_band", "previous_risk_band",
            "open_critical_count", "assessment_id", "cluster_counts",
        ),
    )  # fmt: skip

    factory_id: str = Field(foreign_key="factories.id", primary_key=True, max_length=40)
    assessment_id: str | None = fk("assessments.id", index=False, nullable=True)
    cycle: int | None = None
    risk_band: RiskBand | None = Field(default=None, sa_type=String(20))
    previous_risk_band: RiskBand | None = Field(default=None, sa_type=String(20))
    open_critical_count: int = 0
    cluster_counts: bytes = Field(default=b"{}", sa_type=LargeBinary)
    full_json: bytes = Field(sa_type=LargeBinary)
    public_json: bytes = Field(sa_type=LargeBinary)
    full_etag: str = Field(max_length=40)
    public_etag: str = Field(max_length=40)
    updated_at: dt.datetime = updated_at_field()


ClusterCounts = dict[str, tuple[int, int]]
"""Questions asked and found non-compliant, by cluster code."""


def encode_cluster_counts(counts: ClusterCounts) -> bytes:
    """`{"CODE": [asked, non_compliant], ...}`: a chain of 2,000 factories adds up 2,000 of these
    faster than a database joins and sums their 16,000 rows (docs/benchmarks.md)."""
    return orjson.dumps(counts)


def decode_cluster_counts(encoded: bytes) -> dict[str, list[int]]:
    decoded: dict[str, list[int]] = orjson.loads(encoded)
    return decoded


class Disclosure(StrEnum):
    full = "full"
    public = "public"


class SummarisedAssessment(BaseModel):
    id: str
    cycle: int
    kind: AssessmentKind
    announced: bool
    visit_start: dt.date
    visit_end: dt.date
    catalogue_version: str
    published_at: dt.datetime | None


class NonCompliance(BaseModel):
    asked: int = pydantic.Field(description="Questions asked")
    non_compliant: int
    rate: float | None = pydantic.Field(description="non_compliant / asked, 4 decimals")


class PointNonCompliance(NonCompliance):
    code: str
    name: str


class ClusterNonCompliance(NonCompliance):
    code: str
    name: str
    category: str
    previous_rate: float | None = pydantic.Field(
        description="The rate in the previous published cycle; null when there is none"
    )
    change: float | None = pydantic.Field(description="rate − previous_rate")
    points: list[PointNonCompliance] | None = pydantic.Field(
        description="Per compliance point; full disclosure only"
    )


class CriticalIssueSummary(BaseModel):
    question: str
    text: str
    cluster: str
    compliance_point: str
    public: bool
    remediation_item_id: str | None = pydantic.Field(description="Full disclosure only")
    status: RemediationStatus | None
    due_on: dt.date | None
    overdue: bool


class RemediationProgress(BaseModel):
    open: int
    in_progress: int
    done: int
    verified: int
    overdue: int = pydantic.Field(description="Past due and not done or verified")
    total: int


class ComplianceSummaryRead(BaseModel):
    """A factory's compliance from its latest published assessment. With `disclosure: "public"`
    only aggregate cluster rates and issues on public questions are shown."""

    factory_id: str
    disclosure: Disclosure
    assessment: SummarisedAssessment | None = pydantic.Field(
        description="The summarised assessment; null while none is published"
    )
    previous_assessment: SummarisedAssessment | None = pydantic.Field(
        description="The latest published assessment of an earlier cycle"
    )
    risk_band: RiskBand | None
    previous_risk_band: RiskBand | None
    non_compliance: NonCompliance | None
    clusters: list[ClusterNonCompliance]
    critical_issues: list[CriticalIssueSummary] = pydantic.Field(
        description="Non-compliant critical questions with their remediation status"
    )
    remediation: RemediationProgress | None = pydantic.Field(
        description="Improvement-plan progress (overdue as of `updated_at`); full disclosure only"
    )
    updated_at: dt.datetime
