"""The answer to `GET /v1/me`."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class SubscriptionRead(BaseModel):
    id: str
    tier: str
    starts_on: dt.date
    ends_on: dt.date | None
    active: bool


class OrganizationRef(BaseModel):
    id: str
    name: str
    kind: str


class MeRead(BaseModel):
    client_id: str
    client_name: str
    organization: OrganizationRef
    scopes: list[str]
    supply_chains: list[str]
    subscription: SubscriptionRead | None
