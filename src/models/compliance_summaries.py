"""Precomputed compliance summaries, stored ready to serve, and their per-cluster counts."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import LargeBinary, String
from sqlmodel import Field, SQLModel

from src.models.base import fk, updated_at_field


class RiskBand(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ComplianceSummary(SQLModel, table=True):
    """One row per factory; `full_json` and `public_json` are the encoded answer bodies."""

    __tablename__ = "compliance_summaries"

    factory_id: str = Field(foreign_key="factories.id", primary_key=True, max_length=40)
    assessment_id: str | None = fk("assessments.id", index=False, nullable=True)
    cycle: int | None = None
    risk_band: RiskBand | None = Field(default=None, sa_type=String(20), index=True)
    previous_risk_band: RiskBand | None = Field(default=None, sa_type=String(20))
    open_critical_count: int = 0
    full_json: bytes = Field(sa_type=LargeBinary)
    public_json: bytes = Field(sa_type=LargeBinary)
    updated_at: dt.datetime = updated_at_field()


class ClusterCount(SQLModel, table=True):
    """Questions asked and found non-compliant per cluster in a factory's summarised assessment."""

    __tablename__ = "summary_cluster_counts"

    factory_id: str = Field(foreign_key="factories.id", primary_key=True, max_length=40)
    cluster_code: str = Field(primary_key=True, max_length=10)
    asked: int
    non_compliant: int
