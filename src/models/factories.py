"""Factories enrolled in the programme."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import Index, LargeBinary, String, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel

from src.models.base import IsoDate, created_at_field, id_field, updated_at_field
from src.models.compliance_summaries import RiskBand


class FactoryStatus(StrEnum):
    enrolled = "enrolled"
    active = "active"
    suspended = "suspended"
    exited = "exited"


class Factory(SQLModel, table=True):
    """A factory; `item_json` is its own fields encoded as the JSON object every read of it
    starts from, kept by `encode_item` on every flush. `risk_band` is its compliance summary's,
    copied by `refresh_summary`, so that a read of factories joins no summary (and finds the
    band in `item_json`)."""

    __tablename__ = "factories"
    __table_args__ = (
        Index("ix_factories_updated_at_id", "updated_at", "id"),
        # The supply-chain aggregate names its factories from the index alone.
        Index("ix_factories_id_name", "id", "name"),
    )

    id: str = id_field("fac")
    programme_code: str | None = Field(default=None, unique=True, max_length=40)
    name: str = Field(max_length=300)
    country: str = Field(max_length=2, index=True)
    address: str = Field(default="", max_length=500)
    os_id: str | None = Field(default=None, unique=True, max_length=40)
    sector: str = Field(default="garment", max_length=40)
    workers_total: int = 0
    workers_women: int = 0
    status: FactoryStatus = Field(default=FactoryStatus.enrolled, sa_type=String(20), index=True)
    enrolled_on: dt.date | None = None
    created_at: dt.datetime = created_at_field()
    updated_at: dt.datetime = updated_at_field()
    risk_band: RiskBand | None = Field(default=None, sa_type=String(20), index=True)
    # None only until the flush encodes it; an insert that skips the ORM must set it.
    item_json: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=False)


ITEM_FIELDS = (
    "id", "programme_code", "name", "country", "address", "os_id", "sector", "workers_total",
    "workers_women", "status", "enrolled_on", "created_at", "updated_at", "risk_band",
)  # fmt: skip
"""What `FactoryRead` shows of the factory row itself; a read adds the caller's supplier codes."""


def encode_item(values: Mapping[str, Any]) -> bytes:
    """The factory's own fields as a JSON object, encoded once when the row is written: a page of
    50 then joins stored bytes instead of converting and encoding 650 columns."""
    return orjson.dumps({name: values[name] for name in ITEM_FIELDS}, option=orjson.OPT_UTC_Z)


@event.listens_for(Factory, "before_insert")
@event.listens_for(Factory, "before_update")
def _encode_item_on_flush(
    _mapper: Mapper[Factory], _connection: Connection, factory: Factory
) -> None:
    factory.item_json = encode_item({name: getattr(factory, name) for name in ITEM_FIELDS})


COUNTRY_PATTERN = r"^[A-Z]{2}$"


class FactoryFields(BaseModel):
    """What the programme may set on a factory; shared by create, update and the CSV import."""

    model_config = ConfigDict(extra="forbid")

    programme_code: str | None = pydantic.Field(default=None, min_length=1, max_length=40)
    name: str = pydantic.Field(min_length=1, max_length=300)
    country: str = pydantic.Field(pattern=COUNTRY_PATTERN, description="ISO 3166-1 alpha-2")
    address: str = pydantic.Field(default="", max_length=500)
    os_id: str | None = pydantic.Field(
        default=None, min_length=1, max_length=40, description="Open Supply Hub id"
    )
    sector: str = pydantic.Field(default="garment", min_length=1, max_length=40)
    workers_total: int = pydantic.Field(default=0, ge=0, le=1_000_000)
    workers_women: int = pydantic.Field(default=0, ge=0, le=1_000_000)
    status: FactoryStatus = FactoryStatus.enrolled
    enrolled_on: IsoDate | None = None

    @model_validator(mode="after")
    def _women_within_total(self) -> FactoryFields:
        if self.workers_women > self.workers_total:
            raise ValueError("workers_women cannot exceed workers_total")
        return self


class FactoryCreate(FactoryFields):
    pass


class FactoryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    programme_code: str | None = pydantic.Field(default=None, min_length=1, max_length=40)
    name: str | None = pydantic.Field(default=None, min_length=1, max_length=300)
    country: str | None = pydantic.Field(default=None, pattern=COUNTRY_PATTERN)
    address: str | None = pydantic.Field(default=None, max_length=500)
    os_id: str | None = pydantic.Field(default=None, min_length=1, max_length=40)
    sector: str | None = pydantic.Field(default=None, min_length=1, max_length=40)
    workers_total: int | None = pydantic.Field(default=None, ge=0, le=1_000_000)
    workers_women: int | None = pydantic.Field(default=None, ge=0, le=1_000_000)
    status: FactoryStatus | None = None
    enrolled_on: IsoDate | None = None


class SupplierCode(BaseModel):
    supply_chain_id: str
    supplier_code: str | None


class FactoryRead(BaseModel):
    id: str
    programme_code: str | None
    name: str
    country: str
    address: str
    os_id: str | None
    sector: str
    workers_total: int
    workers_women: int
    status: FactoryStatus
    enrolled_on: dt.date | None
    risk_band: str | None = pydantic.Field(
        description="From the latest published assessment; null before the first one"
    )
    supplier_codes: list[SupplierCode] = pydantic.Field(
        description="Your own vendor ids for this factory, one per supply chain linking it"
    )
    created_at: dt.datetime
    updated_at: dt.datetime
