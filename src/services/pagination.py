"""Keyset pagination: an opaque cursor holds the sort key of the last row a page returned."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlmodel import Session

from src.services.errors import FieldError, InvalidCursor

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    snapshot: dt.datetime | None = None
    """For a list walked as a snapshot (the factories), the moment its walk fixed: its cursors
    carry it."""

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def encode_cursor(kind: str, values: Sequence[Any], snapshot: dt.datetime | None = None) -> str:
    # orjson writes dates and times as `isoformat()` does, which `decode_cursor` reads back.
    payload: dict[str, Any] = {"k": kind, "v": values}
    if snapshot is not None:
        payload["s"] = snapshot
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _invalid_cursor(reason: str) -> InvalidCursor:
    return InvalidCursor(
        f"The cursor is not valid ({reason}); use the next_cursor of a previous page.",
        [FieldError("cursor", reason, "query")],
    )


@dataclass(frozen=True)
class Cursor:
    values: list[Any]
    snapshot: dt.datetime | None


def decode_cursor(kind: str, cursor: str, types: Sequence[type]) -> Cursor:
    """The sort key in `cursor`, checked against the list it claims to come from."""
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _invalid_cursor("malformed") from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise _invalid_cursor("it belongs to another list")
    values = payload.get("v")
    if not isinstance(values, list) or len(values) != len(types):
        raise _invalid_cursor("malformed")
    snapshot = None
    if "s" in payload:
        try:
            snapshot = dt.datetime.fromisoformat(payload["s"])
        except (TypeError, ValueError):
            raise _invalid_cursor("malformed") from None
    decoded: list[Any] = []
    for value, wanted in zip(values, types, strict=True):
        try:
            if wanted is dt.datetime:
                decoded.append(dt.datetime.fromisoformat(value))
            elif wanted is dt.date:
                decoded.append(dt.date.fromisoformat(value))
            elif isinstance(value, wanted):
                decoded.append(value)
            else:
                raise TypeError
        except (TypeError, ValueError):
            raise _invalid_cursor("malformed") from None
    return Cursor(decoded, snapshot)


def _after(columns: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """(c1, c2, ...) > (v1, v2, ...), spelled out so that every database uses the index."""
    clauses = []
    for index, column in enumerate(columns):
        equal_before = [columns[i] == values[i] for i in range(index)]
        clauses.append(and_(*equal_before, column > values[index]))
    return or_(*clauses)


def paginate(
    session: Session,
    statement: Select[*tuple[Any, ...]],
    *,
    kind: str,
    order_by: Sequence[Any],
    types: Sequence[type],
    cursor: str | None,
    limit: int,
    scalars: bool = True,
    key_of: Callable[[Any], Sequence[Any]] | None = None,
) -> Page[Any]:
    """One page of `statement` ordered by `order_by` (ascending, unique together), after `cursor`.
    `key_of` gives a row's sort key when rows are not single entities with those attributes.
    Reads one row more than `limit` to know whether another page follows."""
    if cursor:
        decoded = decode_cursor(kind, cursor, types)
        statement = statement.where(_after(order_by, decoded.values))
    statement = statement.order_by(*order_by).limit(limit + 1)
    result = session.execute(statement)
    rows = list(result.scalars() if scalars else result.all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        key = key_of(last) if key_of else [getattr(last, column.key) for column in order_by]
        next_cursor = encode_cursor(kind, key)
    return Page(items=rows, next_cursor=next_cursor)
