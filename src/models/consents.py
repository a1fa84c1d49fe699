"""Factory consents to disclose full findings to one buyer, and the log of full-disclosure reads."""

from __future__ import annotations

import datetime as dt

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, id_field, timestamp_field

ACTIVE = text("revoked_at IS NULL")


class Consent(SQLModel, table=True):
    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_factory_id_org_id", "factory_id", "org_id"),
        # At most one active consent per factory and buyer, even when two grants race.
        Index(
            "uq_consents_active", "factory_id", "org_id", unique=True,
            sqlite_where=ACTIVE, postgresql_where=ACTIVE,
        ),
    )  # fmt: skip

    id: str = id_field("cns")
    factory_id: str = fk("factories.id", index=False)
    org_id: str = fk("organizations.id")
    granted_at: dt.datetime = created_at_field()
    revoked_at: dt.datetime | None = timestamp_field()


class AccessLogEntry(SQLModel, table=True):
    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_factory_id_id", "factory_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    factory_id: str = fk("factories.id", index=False)
    org_id: str = fk("organizations.id", index=False)
    client_id: str = fk("clients.id", index=False)
    resource: str = Field(max_length=40)
    resource_id: str = Field(max_length=40)
    created_at: dt.datetime = created_at_field()


class ConsentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factory_id: str = pydantic.Field(max_length=40)
    org_id: str = pydantic.Field(max_length=40, description="The buyer organisation")


class ConsentRead(BaseModel):
    id: str
    factory_id: str
    org_id: str
    granted_at: dt.datetime
    revoked_at: dt.datetime | None
    active: bool


class AccessLogEntryRead(BaseModel):
    id: int
    factory_id: str
    org_id: str
    client_id: str
    resource: str = pydantic.Field(
        description="What was read (`assessment`, `remediation_item`...)"
    )
    resource_id: str
    created_at: dt.datetime
