"""A buyer's supply chains and the factory links in them."""

from __future__ import annotations

import datetime as dt

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import Index, LargeBinary, UniqueConstraint, event, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel, col

from src.db import UTCDateTime
from src.models.base import IsoDate, created_at_field, fk, id_field, updated_at_field
from src.models.factories import Factory


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
    """A factory in a supply chain, under the buyer's own vendor id (`supplier_code`).

    `factory_updated_at` is the factory's `updated_at`, copied on every flush that writes either
    row: the factory list walks a chain's links in its own page order (`ix_supply_chain_links_page`)
    instead of every factory in the programme. `code_json` is the link as a factory read lists
    it (`SupplierCode`), encoded on every flush that writes the link."""

    __tablename__ = "supply_chain_links"
    __table_args__ = (
        UniqueConstraint("supply_chain_id", "factory_id"),
        UniqueConstraint("supply_chain_id", "supplier_code"),
        # Every visibility check reads a link's chain, factory and dates: this index answers it
        # alone (SQLite: the 2,429-factory aggregate's per-link reads 21 → 11 ms).
        Index(
            "ix_supply_chain_links_visibility", "supply_chain_id", "factory_id", "starts_on",
            "ends_on",
        ),
        Index(
            "ix_supply_chain_links_page", "supply_chain_id", "factory_updated_at", "factory_id",
            "starts_on", "ends_on", "code_json",
        ),
    )  # fmt: skip

    id: str = id_field("lnk")
    supply_chain_id: str = fk("supply_chains.id", index=False)
    factory_id: str = fk("factories.id")
    supplier_code: str | None = Field(default=None, max_length=100)
    starts_on: dt.date
    ends_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()
    # None only until the flush copies it; an insert that skips the ORM must set it.
    factory_updated_at: dt.datetime | None = Field(
        default=None, sa_type=UTCDateTime, nullable=False
    )
    code_json: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=False)


def encode_code(supply_chain_id: str, supplier_code: str | None) -> bytes:
    """A link as the `SupplierCode` a factory read lists: a page of 50 joins stored bytes."""
    return orjson.dumps({"supply_chain_id": supply_chain_id, "supplier_code": supplier_code})


@event.listens_for(SupplyChainLink, "before_insert")
@event.listens_for(SupplyChainLink, "before_update")
def _encode_code_on_flush(
    _mapper: Mapper[SupplyChainLink], _connection: Connection, link: SupplyChainLink
) -> None:
    link.code_json = encode_code(link.supply_chain_id, link.supplier_code)


@event.listens_for(SupplyChainLink, "before_insert")
def _copy_factory_updated_at(
    _mapper: Mapper[SupplyChainLink], connection: Connection, link: SupplyChainLink
) -> None:
    link.factory_updated_at = connection.scalar(
        select(col(Factory.updated_at)).where(col(Factory.id) == link.factory_id)
    )


@event.listens_for(Factory, "after_update")
def _copy_updated_at_to_links(
    _mapper: Mapper[Factory], connection: Connection, factory: Factory
) -> None:
    if inspect(factory).attrs.updated_at.history.has_changes():
        connection.execute(
            update(SupplyChainLink)
            .where(col(SupplyChainLink.factory_id) == factory.id)
            .values(factory_updated_at=factory.updated_at)
        )


class SupplyChainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = pydantic.Field(min_length=1, max_length=200)
    description: str = pydantic.Field(default="", max_length=2000)
    org_id: str | None = pydantic.Field(
        default=None,
        max_length=40,
        description="The owning buyer; the programme must name one, others default to their own",
    )


class SupplyChainUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    description: str | None = pydantic.Field(default=None, max_length=2000)


class SupplyChainRead(BaseModel):
    id: str
    org_id: str
    name: str
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime


class LinkCreate(BaseModel):
    """Names the factory by exactly one of `factory_id`, `os_id` or `programme_code`."""

    model_config = ConfigDict(extra="forbid")

    factory_id: str | None = pydantic.Field(default=None, max_length=40)
    os_id: str | None = pydantic.Field(
        default=None, max_length=40, description="Open Supply Hub id"
    )
    programme_code: str | None = pydantic.Field(default=None, max_length=40)
    supplier_code: str = pydantic.Field(
        min_length=1, max_length=100, description="Your own vendor id, unique within the chain"
    )
    starts_on: IsoDate | None = pydantic.Field(default=None, description="Default: today")
    ends_on: IsoDate | None = None

    @model_validator(mode="after")
    def _one_factory_reference(self) -> LinkCreate:
        given = [ref for ref in (self.factory_id, self.os_id, self.programme_code) if ref]
        if len(given) != 1:
            raise ValueError("give exactly one of factory_id, os_id or programme_code")
        return self


class LinkedFactory(BaseModel):
    id: str
    name: str
    country: str


class LinkRead(BaseModel):
    supply_chain_id: str
    factory: LinkedFactory
    supplier_code: str | None
    starts_on: dt.date
    ends_on: dt.date | None
    created_at: dt.datetime
    updated_at: dt.datetime
