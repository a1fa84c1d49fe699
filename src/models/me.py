"""The answer to `GET /v1/me`."""

from __future__ import annotations

import pydantic
from pydantic import BaseModel

from src.models.organizations import SubscriptionRead


class OrganizationRef(BaseModel):
    id: str
    name: str
    kind: str


class MeRead(BaseModel):
    client_id: str
    client_name: str
    organization: OrganizationRef
    scopes: list[str]
    supply_chains: list[str] = pydantic.Field(
        description="Ids of the supply chains this token reads, as of now (empty for the "
        "programme, which reads them all)"
    )
    all_supply_chains: bool = pydantic.Field(
        description="The client reads every chain of its organisation, including future ones"
    )
    subscription: SubscriptionRead | None = pydantic.Field(
        description="The subscription running today, else the latest one; null when none"
    )
