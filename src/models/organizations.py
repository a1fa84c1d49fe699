"""Organisations (programme, buyers, partners), their subscriptions and partner delegations."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, id_field, updated_at_field


class OrgKind(StrEnum):
    programme = "programme"
    buyer = "buyer"
    partner = "partner"


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: str = id_field("org")
    name: str = Field(max_length=200)
    kind: OrgKind = Field(sa_type=String(20))
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class Subscription(SQLModel, table=True):
    """A buyer's paid access; with none active on today's date, the buyer sees no data."""

    __tablename__ = "subscriptions"

    id: str = id_field("sub")
    org_id: str = fk("organizations.id")
    tier: str = Field(max_length=40)
    starts_on: dt.date
    ends_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()


class Delegation(SQLModel, table=True):
    """A buyer lets a partner platform act for it."""

    __tablename__ = "delegations"

    partner_org_id: str = Field(foreign_key="organizations.id", primary_key=True, max_length=40)
    buyer_org_id: str = Field(foreign_key="organizations.id", primary_key=True, max_length=40)
    created_at: dt.datetime = created_at_field()
