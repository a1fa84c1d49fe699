"""The purchasing-practices survey: its question bank and suppliers' ratings of buyers."""

from __future__ import annotations

import datetime as dt

import pydantic
from pydantic import BaseModel
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, updated_at_field
from src.models.imports import ImportRowError


class SurveyQuestion(SQLModel, table=True):
    __tablename__ = "survey_questions"

    code: str = Field(primary_key=True, max_length=20)
    category: str = Field(max_length=60, index=True)
    text: str = Field(max_length=1000)
    position: int


class SurveyResponse(SQLModel, table=True):
    """One supplier's 1-5 rating of one buyer on one question for one period."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        UniqueConstraint("period", "buyer_org_id", "factory_id", "question_code"),
        Index("ix_survey_responses_period_buyer", "period", "buyer_org_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=10)
    buyer_org_id: str = fk("organizations.id", index=False)
    factory_id: str = fk("factories.id", index=False)
    question_code: str = Field(foreign_key="survey_questions.code", max_length=20)
    rating: int
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


PERIOD_PATTERN = r"^[0-9]{4}H[12]$"


class SurveyImportResult(BaseModel):
    """What a survey import did: every bad row, or how many ratings it wrote (all or nothing)."""

    rows: int = pydantic.Field(
        description="Data rows read (the header and blank lines not counted)"
    )
    inserted_or_updated: int = pydantic.Field(description="Ratings written; 0 when any row is bad")
    errors: list[ImportRowError]

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": self.rows, "inserted_or_updated": self.inserted_or_updated}
