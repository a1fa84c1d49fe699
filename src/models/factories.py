"""Factories enrolled in the programme."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, id_field, updated_at_field


class FactoryStatus(StrEnum):
    enrolled = "enrolled"
    active = "active"
    suspended = "suspended"
    exited = "exited"


class Factory(SQLModel, table=True):
    __tablename__ = "factories"
    __table_args__ = (Index("ix_factories_updated_at_id", "updated_at", "id"),)

    id: str = id_field("fac")
    programme_code: str | None = Field(default=None, unique=True, max_length=40)
    name: str = Field(max_length=300)
    country: str = Field(max_length=2, index=True)
    address: str = Field(default="", max_length=500)
    os_id: str | None = Field(default=None, unique=True, max_length=40)
    sector: str = Field(default="garment", max_length=40)
    workers_total: int = 0
    workers_women: int = 0
    status: FactoryStatus = Field(default=FactoryStatus.enrolled, sa_type=String(20), index=True)
    enrolled_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()
