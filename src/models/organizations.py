"""Organisations (programme, buyers, partners), their subscriptions and partner delegations."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pydantic
from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from src.models.base import IsoDate, created_at_field, fk, id_field, updated_at_field


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


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = pydantic.Field(min_length=1, max_length=200)
    kind: OrgKind
    acts_for: list[str] = pydantic.Field(
        default_factory=list,
        max_length=500,
        description="Partners only: the buyer organisations it acts for",
    )


class OrganizationRead(BaseModel):
    id: str
    name: str
    kind: OrgKind
    created_at: dt.datetime
    updated_at: dt.datetime


class DelegationRead(BaseModel):
    partner_org_id: str
    buyer_org_id: str
    created_at: dt.datetime


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: str = pydantic.Field(min_length=1, max_length=40)
    starts_on: IsoDate
    ends_on: IsoDate | None = pydantic.Field(default=None, description="Open-ended when null")

    @model_validator(mode="after")
    def _ends_after_start(self) -> SubscriptionCreate:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on must be on or after starts_on")
        return self


class SubscriptionRead(BaseModel):
    id: str
    org_id: str
    tier: str
    starts_on: dt.date
    ends_on: dt.date | None
    active: bool = pydantic.Field(description="Running today")
    created_at: dt.datetime


class OrganizationDetail(OrganizationRead):
    delegations: list[DelegationRead] = pydantic.Field(
        description="A partner's buyers, or the partners a buyer delegated to"
    )
    subscription: SubscriptionRead | None = pydantic.Field(
        description="Buyers: the subscription running today, else the latest one"
    )
