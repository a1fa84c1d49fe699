"""Column helpers shared by every table."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from src.db import UTCDateTime, utcnow
from src.ids import new_id

ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_8601(kind: str, example: str) -> BeforeValidator:
    """Only ISO 8601 text (or a date or datetime) passes: left to itself pydantic reads a number,
    or a string of digits, as a Unix time, so `"enrolled_on": 0` would quietly be 1970-01-01."""

    def check(value: object) -> object:
        if isinstance(value, dt.date) or (isinstance(value, str) and ISO_8601.match(value)):
            return value
        raise ValueError(f"must be an ISO 8601 {kind}, e.g. {example}")

    return BeforeValidator(check)


ISO_DATE_TIME = _iso_8601("date-time", "2026-01-31T00:00:00Z")
IsoDate = Annotated[dt.date, _iso_8601("date", "2026-01-31")]
IsoDateTime = Annotated[dt.datetime, ISO_DATE_TIME]


def id_field(prefix: str) -> Any:
    return Field(default_factory=lambda: new_id(prefix), primary_key=True, max_length=40)


def fk(target: str, *, index: bool = True, nullable: bool = False) -> Any:
    default = None if nullable else ...
    return Field(default=default, foreign_key=target, index=index, nullable=nullable, max_length=40)


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def updated_at_field(*, index: bool = False) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=index)


def timestamp_field(*, index: bool = False) -> Any:
    """An optional moment (`revoked_at`, `published_at`...)."""
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


def json_field(default_factory: Any = list) -> Any:
    return Field(default_factory=default_factory, sa_type=JSON, nullable=False)


def today() -> dt.date:
    return utcnow().date()


def row_values(row: SQLModel) -> dict[str, Any]:
    """A table row's column values as they are (no serialisation, so no enum warnings)."""
    return {name: getattr(row, name) for name in type(row).model_fields}
