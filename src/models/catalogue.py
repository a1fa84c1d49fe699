"""The versioned compliance catalogue: clusters, compliance points, questions."""

from __future__ import annotations

import datetime as dt

import pydantic
from pydantic import BaseModel
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field


class CatalogueVersion(SQLModel, table=True):
    __tablename__ = "catalogue_versions"

    version: str = Field(primary_key=True, max_length=20)
    published_on: dt.date
    created_at: dt.datetime = created_at_field()


class Cluster(SQLModel, table=True):
    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("version", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(foreign_key="catalogue_versions.version", max_length=20)
    code: str = Field(max_length=10)
    name: str = Field(max_length=200)
    category: str = Field(max_length=40)
    position: int


class CompliancePoint(SQLModel, table=True):
    __tablename__ = "compliance_points"
    __table_args__ = (UniqueConstraint("version", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(foreign_key="catalogue_versions.version", max_length=20)
    cluster_id: int = Field(foreign_key="clusters.id", index=True)
    code: str = Field(max_length=20)
    name: str = Field(max_length=200)
    position: int


class Question(SQLModel, table=True):
    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("version", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(foreign_key="catalogue_versions.version", max_length=20)
    point_id: int = Field(foreign_key="compliance_points.id", index=True)
    code: str = Field(max_length=30)
    text: str = Field(max_length=1000)
    critical: bool = False
    public: bool = False
    position: int


class QuestionRead(BaseModel):
    code: str
    text: str
    critical: bool = pydantic.Field(description="A zero-tolerance issue when non-compliant")
    public: bool = pydantic.Field(description="On the programme's public transparency list")


class CompliancePointRead(BaseModel):
    code: str
    name: str
    questions: list[QuestionRead]


class ClusterRead(BaseModel):
    code: str
    name: str
    category: str = pydantic.Field(description="`core_labour_standards` or `working_conditions`")
    points: list[CompliancePointRead]


class CatalogueVersionRead(BaseModel):
    version: str
    published_on: dt.date


class CatalogueRead(BaseModel):
    version: str
    published_on: dt.date
    current: bool = pydantic.Field(description="Whether this is the newest published version")
    versions: list[CatalogueVersionRead] = pydantic.Field(description="Every version, newest first")
    clusters: list[ClusterRead]
