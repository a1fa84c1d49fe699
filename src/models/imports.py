"""Bulk imports (factories, assessments, survey) and their reports."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, String
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, id_field, timestamp_field


class ImportKind(StrEnum):
    factories = "factories"
    assessments = "assessments"
    survey = "survey"


class ImportStatus(StrEnum):
    succeeded = "succeeded"
    partial = "partial"
    failed = "failed"


class Import(SQLModel, table=True):
    __tablename__ = "imports"

    id: str = id_field("imp")
    kind: ImportKind = Field(sa_type=String(20))
    filename: str = Field(default="", max_length=300)
    status: ImportStatus = Field(sa_type=String(20))
    client_id: str | None = Field(default=None, max_length=40)
    counts: dict[str, int] = Field(default_factory=dict, sa_type=JSON)
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    created_at: dt.datetime = created_at_field()
    finished_at: dt.datetime | None = timestamp_field()


class ImportRowError(BaseModel):
    """One bad row: `line` counts from the top of the file (a CSV header is line 1)."""

    line: int
    field: str
    message: str


class ImportRead(BaseModel):
    id: str
    kind: ImportKind
    filename: str
    status: ImportStatus
    counts: dict[str, int]
    errors: list[ImportRowError]
    created_at: dt.datetime
    finished_at: dt.datetime | None
