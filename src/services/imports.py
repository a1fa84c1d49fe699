"""Bulk imports: each upload is read line by line, handed to the import of its kind, and recorded
as an Import with its counts and every bad row (the first `MAX_STORED_ERRORS` of them listed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from sqlmodel import Session, col, select

from src.config import Settings
from src.db import utcnow
from src.models import Import
from src.models.base import row_values
from src.models.imports import ImportKind, ImportRead, ImportRowError, ImportStatus
from src.services.assessment_import import import_assessments
from src.services.errors import NotFound
from src.services.factory_import import import_factories
from src.services.import_rows import decode_lines
from src.services.pagination import Page, paginate
from src.services.surveys import import_survey

MAX_STORED_ERRORS = 1000
LIST_KIND = "imports"
# Counts of what was read, as opposed to what was written.
READ_COUNTS = frozenset({"rows", "lines"})


@dataclass(frozen=True)
class _Outcome:
    counts: dict[str, int]
    errors: list[ImportRowError]


def run_import(
    session: Session,
    *,
    kind: ImportKind,
    filename: str,
    source: BinaryIO,
    settings: Settings,
    client_id: str | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Import:
    """Imports the file and records how it went. Factories and survey files are written all or
    nothing; assessments one by one (`partial` when some failed)."""
    record = Import(
        kind=kind, filename=filename[:300], status=ImportStatus.failed, client_id=client_id
    )
    session.add(record)
    # Written before any SAVEPOINT: on SQLite a SAVEPOINT that opens the transaction is committed
    # by its RELEASE, whatever the caller does next.
    session.flush()
    unreadable: list[ImportRowError] = []
    lines = decode_lines(source, unreadable, on_read=on_read)
    savepoint = session.begin_nested()
    try:
        outcome = _dispatch(session, kind, lines, settings)
    except BaseException:
        savepoint.rollback()
        raise
    errors = sorted([*unreadable, *outcome.errors], key=lambda error: error.line)
    counts = dict(outcome.counts)
    if kind == ImportKind.assessments:
        # An unreadable line is a failed assessment; the others stand.
        counts["lines"] += len(unreadable)
        counts["failed"] += len(unreadable)
        savepoint.commit()
        status = _assessments_status(counts, errors)
    elif errors:
        savepoint.rollback()
        counts = {name: value if name in READ_COUNTS else 0 for name, value in counts.items()}
        status = ImportStatus.failed
    else:
        savepoint.commit()
        status = ImportStatus.succeeded
    counts["errors"] = len(errors)
    counts["errors_not_listed"] = max(0, len(errors) - MAX_STORED_ERRORS)
    record.status = status
    record.counts = counts
    record.errors = [error.model_dump() for error in errors[:MAX_STORED_ERRORS]]
    record.finished_at = utcnow()
    session.add(record)
    session.flush()
    return record


def _dispatch(
    session: Session, kind: ImportKind, lines: Iterable[str], settings: Settings
) -> _Outcome:
    if kind == ImportKind.factories:
        factories = import_factories(session, lines=lines)
        return _Outcome(factories.counts, factories.errors)
    if kind == ImportKind.assessments:
        assessments = import_assessments(session, lines=lines)
        return _Outcome(assessments.counts, assessments.errors)
    survey = import_survey(session, lines=lines, settings=settings)
    return _Outcome(survey.counts, survey.errors)


def _assessments_status(counts: dict[str, int], errors: list[ImportRowError]) -> ImportStatus:
    if not errors:
        return ImportStatus.succeeded
    accepted = counts["created"] + counts["unchanged"]
    return ImportStatus.partial if accepted else ImportStatus.failed


def import_read(record: Import) -> ImportRead:
    return ImportRead.model_validate(row_values(record))


def get_import(session: Session, *, import_id: str) -> ImportRead:
    record = session.get(Import, import_id)
    if record is None:
        raise NotFound(f"No import {import_id}.")
    return import_read(record)


def list_imports(session: Session, *, cursor: str | None, limit: int) -> Page[ImportRead]:
    """Oldest first."""
    page = paginate(
        session,
        select(Import),
        kind=LIST_KIND,
        order_by=(col(Import.id),),
        types=(str,),
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[import_read(record) for record in page.items], next_cursor=page.next_cursor)
