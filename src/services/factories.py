"""Factories: the filtered, visibility-checked list and detail, CSV export, and programme edits."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, and_, exists, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import ComplianceSummary, Factory, SupplyChain, SupplyChainLink
from src.models.base import row_values
from src.models.compliance_summaries import RiskBand
from src.models.factories import (
    FactoryCreate,
    FactoryRead,
    FactoryStatus,
    FactoryUpdate,
    SupplierCode,
)
from src.services.access import Principal, factory_visible, not_found_factory, visible_links
from src.services.errors import Conflict, FieldError, InvalidInput
from src.services.events import EventType, emit
from src.services.pagination import Page, paginate

LIST_KIND = "factories"
CSV_COLUMNS = (
    "id", "programme_code", "name", "country", "address", "os_id", "sector", "workers_total",
    "workers_women", "status", "enrolled_on", "risk_band", "supplier_codes", "updated_at",
)  # fmt: skip
CSV_BATCH = 500


@dataclass(frozen=True)
class FactoryFilters:
    country: str | None = None
    status: FactoryStatus | None = None
    risk_band: RiskBand | None = None
    supply_chain: str | None = None
    os_id: str | None = None
    supplier_code: str | None = None
    q: str | None = None
    updated_since: dt.datetime | None = None


def _link_exists(principal: Principal, *conditions: Any) -> Any:
    return exists().where(
        col(SupplyChainLink.factory_id) == col(Factory.id), visible_links(principal), *conditions
    )


def _list_statement(principal: Principal, filters: FactoryFilters) -> Select[*tuple[Any, ...]]:
    statement = (
        select(Factory, col(ComplianceSummary.risk_band))
        .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
        .where(factory_visible(principal))
    )
    conditions = []
    if filters.country:
        conditions.append(col(Factory.country) == filters.country.upper())
    if filters.status:
        conditions.append(col(Factory.status) == filters.status)
    if filters.risk_band:
        conditions.append(col(ComplianceSummary.risk_band) == filters.risk_band)
    if filters.os_id:
        conditions.append(col(Factory.os_id) == filters.os_id)
    if filters.updated_since:
        conditions.append(col(Factory.updated_at) >= filters.updated_since)
    if filters.supply_chain:
        conditions.append(
            _link_exists(principal, col(SupplyChainLink.supply_chain_id) == filters.supply_chain)
        )
    if filters.supplier_code:
        conditions.append(
            _link_exists(principal, col(SupplyChainLink.supplier_code) == filters.supplier_code)
        )
    if filters.q:
        needle = f"%{filters.q.lower()}%"
        conditions.append(
            or_(
                func.lower(Factory.name).like(needle),
                func.lower(Factory.programme_code).like(needle),
                func.lower(Factory.os_id).like(needle),
            )
        )
    return statement.where(and_(*conditions)) if conditions else statement


def _supplier_codes(
    session: Session, principal: Principal, factory_ids: Sequence[str]
) -> dict[str, list[SupplierCode]]:
    """The caller's own vendor ids for these factories, in one query."""
    codes: dict[str, list[SupplierCode]] = defaultdict(list)
    if not factory_ids:
        return codes
    rows = session.execute(
        select(
            SupplyChainLink.factory_id,
            SupplyChainLink.supply_chain_id,
            SupplyChainLink.supplier_code,
        )
        .join(SupplyChain, col(SupplyChain.id) == col(SupplyChainLink.supply_chain_id))
        .where(col(SupplyChainLink.factory_id).in_(factory_ids), visible_links(principal))
        .order_by(col(SupplyChainLink.supply_chain_id))
    )
    for factory_id, chain_id, code in rows:
        codes[factory_id].append(SupplierCode(supply_chain_id=chain_id, supplier_code=code))
    return codes


def _sort_key(row: Any) -> tuple[dt.datetime, str]:
    factory: Factory = row[0]
    return factory.updated_at, factory.id


def _read(factory: Factory, risk_band: str | None, codes: list[SupplierCode]) -> FactoryRead:
    return FactoryRead.model_validate(
        row_values(factory) | {"risk_band": risk_band, "supplier_codes": codes}
    )


def _reads(session: Session, principal: Principal, rows: Sequence[Any]) -> list[FactoryRead]:
    codes = _supplier_codes(session, principal, [factory.id for factory, _ in rows])
    return [_read(factory, band, codes.get(factory.id, [])) for factory, band in rows]


def list_factories(
    session: Session,
    *,
    principal: Principal,
    filters: FactoryFilters,
    cursor: str | None,
    limit: int,
) -> Page[FactoryRead]:
    page = paginate(
        session,
        _list_statement(principal, filters),
        kind=LIST_KIND,
        order_by=(col(Factory.updated_at), col(Factory.id)),
        types=(dt.datetime, str),
        cursor=cursor,
        limit=limit,
        scalars=False,
        snapshot_column=col(Factory.updated_at),
        key_of=_sort_key,
    )
    return Page(items=_reads(session, principal, page.items), next_cursor=page.next_cursor)


def get_factory(session: Session, *, principal: Principal, factory_id: str) -> FactoryRead:
    row = session.execute(
        _list_statement(principal, FactoryFilters()).where(col(Factory.id) == factory_id)
    ).first()
    if row is None:
        raise not_found_factory(factory_id)
    return _reads(session, principal, [row])[0]


def export_factories_csv(
    engine: Engine, *, principal: Principal, filters: FactoryFilters
) -> Iterator[str]:
    """Every matching factory as CSV, read in keyset batches so memory stays flat."""
    yield _csv_line(CSV_COLUMNS)
    cursor: str | None = None
    with Session(engine) as session:
        while True:
            page = list_factories(
                session, principal=principal, filters=filters, cursor=cursor, limit=CSV_BATCH
            )
            chunk = io.StringIO()
            writer = csv.writer(chunk, lineterminator="\n")
            for factory in page.items:
                writer.writerow(_csv_row(factory))
            yield chunk.getvalue()
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
            session.expunge_all()


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _csv_row(factory: FactoryRead) -> list[Any]:
    data = factory.model_dump(mode="json")
    data["supplier_codes"] = ";".join(code.supplier_code or "" for code in factory.supplier_codes)
    return [data[column] if data[column] is not None else "" for column in CSV_COLUMNS]


def create_factory(session: Session, *, data: FactoryCreate) -> Factory:
    factory = Factory(**data.model_dump())
    session.add(factory)
    _flush_unique(session)
    emit_factory_updated(session, factory, sorted(data.model_fields_set))
    return factory


def update_factory(session: Session, *, factory_id: str, data: FactoryUpdate) -> Factory:
    factory = session.get(Factory, factory_id)
    if factory is None:
        raise not_found_factory(factory_id)
    changes = {
        name: value
        for name, value in data.model_dump(exclude_unset=True).items()
        if getattr(factory, name) != value
    }
    if not changes:
        return factory
    for name in ("name", "country", "sector", "status"):
        if name in changes and changes[name] is None:
            raise InvalidInput.at(name, f"{name} cannot be null")
    women = changes.get("workers_women", factory.workers_women)
    total = changes.get("workers_total", factory.workers_total)
    if women is not None and total is not None and women > total:
        raise InvalidInput.at("workers_women", "workers_women cannot exceed workers_total")
    apply_changes(session, factory, changes, at=utcnow())
    _flush_unique(session)
    return factory


def apply_changes(
    session: Session, factory: Factory, changes: dict[str, Any], *, at: dt.datetime
) -> None:
    """Sets the changed fields and emits `factory.updated` (and `factory.status_changed`)."""
    previous_status = factory.status
    for name, value in changes.items():
        setattr(factory, name, value)
    factory.updated_at = at
    session.add(factory)
    emit_factory_updated(session, factory, sorted(changes))
    if "status" in changes:
        emit(
            session,
            EventType.factory_status_changed,
            {"factory_id": factory.id, "from": previous_status, "to": factory.status},
            factory_id=factory.id,
        )


def emit_factory_updated(session: Session, factory: Factory, changed: list[str]) -> None:
    emit(
        session,
        EventType.factory_updated,
        {
            "factory_id": factory.id,
            "name": factory.name,
            "country": factory.country,
            "status": factory.status,
            "changed": changed,
        },
        factory_id=factory.id,
    )


def _flush_unique(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        message = str(exc.orig).lower()
        field = "os_id" if "os_id" in message else "programme_code"
        message = f"Another factory already has this {field}."
        raise Conflict(message, [FieldError(field, message)]) from None
