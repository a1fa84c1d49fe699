"""Computed purchasing-practice scorecards per buyer and period, and the period's publication."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict
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
    overall_change: float | None = None
    overall_benchmark_median: float | None = None
    overall_percentile: float | None = None
    respondents: int = 0
    categories: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    computed_at: dt.datetime = created_at_field()


SCORE = "0-100: a rating r of 1-5 counts (r - 1) / 4 x 100; rounded to 1 decimal"


class CategoryScoreRead(BaseModel):
    category: str = pydantic.Field(description="Category code, e.g. `planning_forecasting`")
    name: str
    score: float | None = pydantic.Field(
        description=f"Mean over every answer in the category ({SCORE}); null when suppressed"
    )
    suppressed: bool = pydantic.Field(
        description="Fewer suppliers answered than the anonymity threshold: nothing is shown"
    )
    respondents: int | None = pydantic.Field(
        description="Distinct suppliers who answered; null when suppressed"
    )
    change: float | None = pydantic.Field(
        description="Score minus the score of your previous period; null when either is suppressed"
        " or missing"
    )
    benchmark_median: float | None = pydantic.Field(
        description="Median score of the qualifying buyers; null when the benchmark is suppressed"
    )
    percentile: float | None = pydantic.Field(
        description="Share (0-100) of the other qualifying buyers scoring strictly lower; null "
        "when your score or the benchmark is suppressed"
    )


class ScorecardRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "scd_01JGZ3N5W1X7Q8R9S0T1V2W3X4",
                    "org_id": "org_01JGZ3N5W1X7Q8R9S0T1V2W3X5",
                    "period": "2026H1",
                    "overall": 61.3,
                    "overall_change": 3.1,
                    "overall_benchmark_median": 57.4,
                    "overall_percentile": 75.0,
                    "respondents": 12,
                    "categories": [
                        {
                            "category": "planning_forecasting",
                            "name": "Planning and Forecasting",
                            "score": 58.3,
                            "suppressed": False,
                            "respondents": 12,
                            "change": 4.2,
                            "benchmark_median": 55.0,
                            "percentile": 62.5,
                        },
                        {
                            "category": "cost_negotiation",
                            "name": "Cost and Cost Negotiation",
                            "score": None,
                            "suppressed": True,
                            "respondents": None,
                            "change": None,
                            "benchmark_median": 47.5,
                            "percentile": None,
                        },
                    ],
                    "published_at": "2026-07-15T09:00:00Z",
                }
            ]
        }
    )

    id: str
    org_id: str
    period: str
    overall: float | None = pydantic.Field(
        description="Mean of the shown category scores; null when every category is suppressed"
    )
    overall_change: float | None = pydantic.Field(
        description="`overall` less the overall of your latest earlier period with a scorecard; "
        "null when either is null"
    )
    overall_benchmark_median: float | None = pydantic.Field(
        description="Median overall score of the buyers with one; null when too few buyers have one"
    )
    overall_percentile: float | None = pydantic.Field(
        description="Share (0-100) of the other buyers with an overall score scoring strictly "
        "lower; null when your overall or its benchmark is null"
    )
    respondents: int | None = pydantic.Field(
        description="Distinct suppliers who answered a shown category; null below the threshold"
    )
    categories: list[CategoryScoreRead]
    published_at: dt.datetime | None


class BenchmarkCategoryRead(BaseModel):
    category: str
    name: str
    median: float | None = pydantic.Field(
        description="Median category score of the buyers that meet the supplier threshold; null "
        "when too few buyers qualify"
    )
    suppressed: bool
    percentile: float | None = pydantic.Field(
        description="Your own percentile (see the scorecard); null when not shown"
    )


class BenchmarkRead(BaseModel):
    period: str
    overall_median: float | None = pydantic.Field(
        description="Median overall score of the buyers with one; null when too few buyers have one"
    )
    overall_suppressed: bool
    overall_percentile: float | None = pydantic.Field(
        description="Your own overall percentile (see the scorecard); null when not shown"
    )
    categories: list[BenchmarkCategoryRead]
    published_at: dt.datetime | None


class ScorecardPeriodRead(BaseModel):
    period: str
    scorecards: int = pydantic.Field(description="Buyers with a scorecard in the period")
    computed_at: dt.datetime
    published_at: dt.datetime | None
