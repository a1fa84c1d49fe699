"""Factory consents to disclose full findings to one buyer, and the log of full-disclosure reads."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, id_field, timestamp_field


class Consent(SQLModel, table=True):
    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_factory_id_org_id", "factory_id", "org_id"),)

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
