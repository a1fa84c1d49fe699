"""Computed purchasing-practice scorecards per buyer and period, and the period's publication."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, id_field, timestamp_field


class ScorecardPeriod(SQLModel, table=True):
    """A survey period; buyers see its scorecards and benchmark only once it is published."""

    __tablename__ = "scorecard_periods"

    period: str = Field(primary_key=True, max_length=10)
    benchmark: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    computed_at: dt.datetime = created_at_field()
    published_at: dt.datetime | None = timestamp_field()


class Scorecard(SQLModel, table=True):
    __tablename__ = "scorecards"
    __table_args__ = (UniqueConstraint("org_id", "period"),)

    id: str = id_field("scd")
    org_id: str = fk("organizations.id", index=False)
    period: str = Field(foreign_key="scorecard_periods.period", max_length=10, index=True)
    overall: float | None = None
    respondents: int = 0
    categories: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    computed_at: dt.datetime = created_at_field()
