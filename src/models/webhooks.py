"""Webhook endpoints, the messages (deliveries) owed to them, and every delivery attempt."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from src.models.base import (
    ISO_DATE_TIME,
    created_at_field,
    fk,
    id_field,
    json_field,
    timestamp_field,
    updated_at_field,
)


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: str = id_field("whe")
    org_id: str = fk("organizations.id")
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=500)
    event_types: list[str] = json_field()
    supply_chain_ids: list[str] = json_field()
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=200)
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: dt.datetime | None = timestamp_field()
    failing_since: dt.datetime | None = timestamp_field()
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class Delivery(SQLModel, table=True):
    """One event owed to one endpoint; its id is the `webhook-id` on every attempt."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    id: str = id_field("msg")
    endpoint_id: str = fk("webhook_endpoints.id", index=False)
    event_id: str = fk("events.id")
    status: DeliveryStatus = Field(default=DeliveryStatus.pending, sa_type=String(20))
    attempts: int = 0
    next_attempt_at: dt.datetime | None = timestamp_field()
    lease_expires_at: dt.datetime | None = timestamp_field()
    last_response_code: int | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = fk("deliveries.id")
    attempt: int
    started_at: dt.datetime = created_at_field()
    duration_ms: int
    response_code: int | None = None
    response_body: str = Field(default="", sa_type=Text)
    error: str | None = Field(default=None, max_length=500)


# API schemas


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/weft",
                    "event_types": ["compliance_summary.updated", "assessment.published"],
                    "supply_chain_ids": [],
                    "description": "Sourcing system",
                }
            ]
        },
    )

    url: str = pydantic.Field(max_length=2000, description="https:// URL that receives the events")
    event_types: list[str] = pydantic.Field(
        default_factory=list, max_length=50, description="Event types to send; empty for all"
    )
    supply_chain_ids: list[str] = pydantic.Field(
        default_factory=list,
        max_length=200,
        description="Only events about factories in these supply chains; empty for all you see",
    )
    description: str = pydantic.Field(default="", max_length=500)
    enabled: bool = True


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = pydantic.Field(default=None, max_length=2000)
    event_types: list[str] | None = pydantic.Field(default=None, max_length=50)
    supply_chain_ids: list[str] | None = pydantic.Field(default=None, max_length=200)
    description: str | None = pydantic.Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookEndpointRead(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    supply_chain_ids: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: dt.datetime | None = pydantic.Field(
        description="Since when every delivery has failed; disabled after 5 days"
    )
    previous_secret_expires_at: dt.datetime | None = pydantic.Field(
        description="Until when the secret before the last rotation still signs too"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookEndpointWithSecret(WebhookEndpointRead):
    secret: str = pydantic.Field(
        description="`whsec_...` signing secret: shown only in this answer, store it now"
    )


class DeliveryAttemptRead(BaseModel):
    attempt: int
    started_at: dt.datetime
    duration_ms: int
    response_code: int | None
    response_body: str = pydantic.Field(description="The first 1 KB of the answer")
    error: str | None


class DeliveryRead(BaseModel):
    id: str = pydantic.Field(description="The `webhook-id` header, the same on every attempt")
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    last_response_code: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[DeliveryAttemptRead] = pydantic.Field(description="Every attempt, oldest first")


class RetryFailed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Annotated[pydantic.AwareDatetime, ISO_DATE_TIME] = pydantic.Field(
        description="Retry failed deliveries created from then on (with a UTC offset)"
    )


class RetryFailedResult(BaseModel):
    retried: int
