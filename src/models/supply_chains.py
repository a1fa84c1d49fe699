"""A buyer's supply chains and the factory links in them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from src.models.base import created_at_field, fk, id_field, updated_at_field


class SupplyChain(SQLModel, table=True):
    __tablename__ = "supply_chains"
    __table_args__ = (Index("ix_supply_chains_updated_at_id", "updated_at", "id"),)

    id: str = id_field("sc")
    org_id: str = fk("organizations.id")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()


class SupplyChainLink(SQLModel, table=True):
    """A factory in a supply chain, under the buyer's own vendor id (`supplier_code`)."""

    __tablename__ = "supply_chain_links"
    __table_args__ = (
        UniqueConstraint("supply_chain_id", "factory_id"),
        Index("ix_supply_chain_links_supplier_code", "supply_chain_id", "supplier_code"),
    )

    id: str = id_field("lnk")
    supply_chain_id: str = fk("supply_chains.id", index=False)
    factory_id: str = fk("factories.id")
    supplier_code: str | None = Field(default=None, max_length=100)
    starts_on: dt.date
    ends_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()
