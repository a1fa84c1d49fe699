"""Assessments (factory visits), their findings, and the remediation items that follow."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Index, String, Text, UniqueConstraint, column, event, false, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel, col

from src.models.base import (
    IsoDate,
    created_at_field,
    fk,
    id_field,
    timestamp_field,
    updated_at_field,
)
from src.models.catalogue import Question


class AssessmentKind(StrEnum):
    assessment = "assessment"
    follow_up = "follow_up"


class AssessmentStatus(StrEnum):
    draft = "draft"
    published = "published"
    retracted = "retracted"


class RemediationStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    done = "done"
    verified = "verified"


class Assessment(SQLModel, table=True):
    __tablename__ = "assessments"
    __table_args__ = (
        UniqueConstraint("factory_id", "cycle", "kind", "visit_start"),
        Index("ix_assessments_factory_id_status", "factory_id", "status"),
        Index("ix_assessments_updated_at_id", "updated_at", "id"),
    )

    id: str = id_field("asm")
    factory_id: str = fk("factories.id", index=False)
    catalogue_version: str = Field(foreign_key="catalogue_versions.version", max_length=20)
    cycle: int
    kind: AssessmentKind = Field(sa_type=String(20))
    announced: bool = True
    visit_start: dt.date
    visit_end: dt.date
    status: AssessmentStatus = Field(default=AssessmentStatus.draft, sa_type=String(20))
    published_at: dt.datetime | None = timestamp_field()
    retracted_at: dt.datetime | None = timestamp_field()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class Finding(SQLModel, table=True):
    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("assessment_id", "question_id"),)

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: str = fk("assessments.id", index=False)
    # Neither an index nor a foreign key: every write checks the question against the
    # assessment's own catalogue version (stricter than a key on questions.id), catalogue
    # questions are never deleted, and PostgreSQL checks such a key with a scan of the small
    # questions table per row, half of a findings import's time (docs/benchmarks.md).
    question_id: int
    compliant: bool
    note: str | None = Field(default=None, sa_type=Text)


# Spelled as the aggregate's statement spells its filter, for SQLite to match the two.
CRITICAL = column("critical").is_(True)


class RemediationItem(SQLModel, table=True):
    __tablename__ = "remediation_items"
    __table_args__ = (
        Index("ix_remediation_items_factory_id_status", "factory_id", "status"),
        Index("ix_remediation_items_updated_at_id", "updated_at", "id"),
        # A chain's open critical issues, among the few items on critical questions (1 in 25 of
        # the reference dataset's).
        Index(
            "ix_remediation_items_critical_assessment_id", "assessment_id",
            sqlite_where=CRITICAL, postgresql_where=CRITICAL,
        ),
    )  # fmt: skip

    id: str = id_field("rem")
    factory_id: str = fk("factories.id", index=False)
    assessment_id: str = fk("assessments.id")
    finding_id: int = Field(foreign_key="findings.id", unique=True)
    question_id: int = Field(foreign_key="questions.id", index=False)
    # The question's, copied when the item is made (a catalogue version's questions never change).
    critical: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    action: str = Field(default="", sa_type=Text)
    owner: str = Field(default="", max_length=200)
    due_on: dt.date | None = None
    status: RemediationStatus = Field(default=RemediationStatus.open, sa_type=String(20))
    verified_at: dt.datetime | None = timestamp_field()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


@event.listens_for(RemediationItem, "before_insert")
def _copy_question_critical(
    _mapper: Mapper[RemediationItem], connection: Connection, item: RemediationItem
) -> None:
    item.critical = bool(
        connection.scalar(
            select(col(Question.critical)).where(col(Question.id) == item.question_id)
        )
    )


class FindingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = pydantic.Field(
        min_length=1, max_length=30, description="Question code in the catalogue version"
    )
    compliant: bool
    note: str | None = pydantic.Field(default=None, max_length=5000)


class AssessmentCreate(BaseModel):
    """A draft assessment with every finding of the visit."""

    model_config = ConfigDict(extra="forbid")

    factory_id: str = pydantic.Field(min_length=1, max_length=40)
    cycle: int = pydantic.Field(ge=1, le=1000)
    kind: AssessmentKind = AssessmentKind.assessment
    announced: bool = True
    visit_start: IsoDate
    visit_end: IsoDate
    catalogue_version: str | None = pydantic.Field(
        default=None, max_length=20, description="Defaults to the current catalogue version"
    )
    findings: list[FindingInput] = pydantic.Field(min_length=1, max_length=1000)


class AssessmentRead(BaseModel):
    id: str
    factory_id: str
    catalogue_version: str
    cycle: int
    kind: AssessmentKind
    announced: bool
    visit_start: dt.date
    visit_end: dt.date
    status: AssessmentStatus
    questions_asked: int
    non_compliant: int
    published_at: dt.datetime | None
    retracted_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class FindingRead(BaseModel):
    question: str
    text: str
    critical: bool
    public: bool
    compliant: bool
    note: str | None
    remediation_item_id: str | None = pydantic.Field(
        description="The improvement-plan item for a non-compliant finding, once published"
    )


class PointFindings(BaseModel):
    code: str
    name: str
    findings: list[FindingRead]


class ClusterFindings(BaseModel):
    code: str
    name: str
    category: str
    points: list[PointFindings]


class AssessmentDetail(AssessmentRead):
    clusters: list[ClusterFindings] = pydantic.Field(
        description="Findings grouped by cluster and compliance point, in catalogue order"
    )


class RemediationItemRead(BaseModel):
    id: str
    factory_id: str
    assessment_id: str
    question: str
    question_text: str
    critical: bool
    action: str
    owner: str
    due_on: dt.date | None
    status: RemediationStatus
    overdue: bool = pydantic.Field(description="Due date passed and not yet done or verified")
    verified_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class RemediationItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: RemediationStatus | None = pydantic.Field(
        default=None, description="One step along open → in_progress → done → verified"
    )
    action: str | None = pydantic.Field(default=None, min_length=1, max_length=5000)
    owner: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    due_on: IsoDate | None = None
