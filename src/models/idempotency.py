"""Stored answers to POSTs carrying an `Idempotency-Key`, kept 24 h per client."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from src.db import UTCDateTime
from src.models.base import created_at_field


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=40)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    response_status: int | None = None
    response_headers: list[list[str]] = Field(default_factory=list, sa_type=JSON)
    response_body: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: dt.datetime = created_at_field()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
