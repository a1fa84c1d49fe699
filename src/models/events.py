"""The outbox: one row per change, written in the change's own transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
from pydantic import BaseModel
from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, id_field, timestamp_field


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_fanned_out_at_id", "fanned_out_at", "id"),)

    id: str = id_field("evt")
    type: str = Field(max_length=60, index=True)
    factory_id: str | None = fk("factories.id", nullable=True)
    org_id: str | None = fk("organizations.id", nullable=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: dt.datetime = created_at_field()
    fanned_out_at: dt.datetime | None = timestamp_field()


class EventRead(BaseModel):
    id: str
    type: str
    created_at: dt.datetime
    timestamp: dt.datetime = pydantic.Field(
        description="`created_at` again, under the name a webhook body gives it: an item of the "
        "feed holds the webhook body's `type`, `timestamp` and `data`"
    )
    data: dict[str, Any] = pydantic.Field(
        description="What your organisation may read of the change, as in the webhook body"
    )
