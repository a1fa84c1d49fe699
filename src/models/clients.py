"""API clients (OAuth2 client credentials) and the keys that sign their tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel

from src.models.base import (
    created_at_field,
    fk,
    id_field,
    json_field,
    timestamp_field,
)


class Client(SQLModel, table=True):
    __tablename__ = "clients"

    id: str = id_field("cli")
    org_id: str = fk("organizations.id")
    name: str = Field(max_length=200)
    secret_hash: str = Field(max_length=200)
    scopes: list[str] = json_field()
    supply_chain_ids: list[str] = json_field()
    created_at: dt.datetime = created_at_field()
    revoked_at: dt.datetime | None = timestamp_field()


class SigningKey(SQLModel, table=True):
    """An ES256 key pair. The newest unretired key signs; every unexpired one verifies."""

    __tablename__ = "signing_keys"

    id: str = id_field("key")
    algorithm: str = Field(default="ES256", max_length=10)
    private_pem: str = Field(sa_type=Text)
    public_jwk: dict[str, Any] = Field(sa_type=JSON)
    created_at: dt.datetime = created_at_field()
    retired_at: dt.datetime | None = timestamp_field()


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str = pydantic.Field(max_length=40)
    name: str = pydantic.Field(min_length=1, max_length=200)
    scopes: list[str] | None = pydantic.Field(
        default=None,
        min_length=1,
        max_length=20,
        description="Default: every scope the organisation's kind allows",
    )
    supply_chains: list[str] = pydantic.Field(
        default_factory=list,
        max_length=500,
        description="Supply chain ids the client may read; empty: all of its organisation's",
    )


class ClientRead(BaseModel):
    id: str
    client_id: str = pydantic.Field(description="The OAuth2 client_id (the same as id)")
    org_id: str
    name: str
    scopes: list[str]
    supply_chains: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ClientWithSecret(BaseModel):
    """The answer to a create: the only time the secret is shown."""

    id: str
    client_id: str
    client_secret: str
    org_id: str
    name: str
    scopes: list[str]
    supply_chains: list[str]
    created_at: dt.datetime
