"""The factories CSV import: every row checked, written all or nothing, in chunks.

A row updates the factory with its `programme_code`, or enrols a new one. A blank cell leaves that
field as it is (a new factory takes the default). Re-importing a file changes nothing: a factory
whose values are already those of its row is not touched and gets no event."""

from __future__ import annotations

import _csv
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import Factory
from src.models.factories import FactoryFields
from src.models.imports import ImportRowError
from src.services.factories import apply_changes, emit_factory_updated
from src.services.import_rows import read_header, validation_errors

COLUMNS = tuple(FactoryFields.model_fields)
# Rows per lookup and per flush: bounds memory whatever the file's size.
CHUNK = 500


@dataclass(frozen=True)
class FactoryImportResult:
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class _Row:
    line: int
    cells: dict[str, str]  # the non-blank cells

    @property
    def code(self) -> str:
        return self.cells["programme_code"]


@dataclass
class _Tally:
    """What the import has seen so far, across chunks."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    codes: dict[str, int] = field(default_factory=dict)  # programme_code -> line
    taken_os_ids: dict[str, int] = field(default_factory=dict)  # os_id -> line that sets it
    released_os_ids: dict[str, int] = field(default_factory=dict)  # os_id -> line that moves it


def import_factories(session: Session, *, lines: Iterable[str]) -> FactoryImportResult:
    """Reads the CSV lines (a header is line 1). Any bad row: nothing is written, and every bad
    row is reported. The writes of each chunk happen in one SAVEPOINT, rolled back on failure, so
    memory holds one chunk at a time."""
    reader = csv.reader(lines)
    errors: list[ImportRowError] = []
    header = next(reader, None)
    columns = read_header(header, COLUMNS, errors)
    if header is None or columns is None:
        return FactoryImportResult(rows=0, created=0, updated=0, unchanged=0, errors=errors)
    tally = _Tally()
    savepoint = session.begin_nested()
    try:
        for chunk in _chunks(_rows(reader, columns, len(header), tally, errors)):
            _apply_chunk(session, chunk, tally, errors, write=not errors)
    except BaseException:
        savepoint.rollback()
        raise
    if errors:
        savepoint.rollback()
        errors.sort(key=lambda error: error.line)
        return FactoryImportResult(
            rows=tally.rows, created=0, updated=0, unchanged=0, errors=errors
        )
    savepoint.commit()
    return FactoryImportResult(
        rows=tally.rows,
        created=tally.created,
        updated=tally.updated,
        unchanged=tally.unchanged,
        errors=[],
    )


def _rows(
    reader: _csv.Reader,
    columns: dict[str, int],
    width: int,
    tally: _Tally,
    errors: list[ImportRowError],
) -> Iterator[_Row]:
    """The data rows with their first line, blank lines skipped; a row the CSV reader refuses, or
    with more values than the header, is counted and reported here but not yielded."""
    last_line = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line, last_line = last_line + 1, reader.line_num
            tally.rows += 1
            errors.append(ImportRowError(line=line, field="row", message=f"Not valid CSV: {exc}."))
            continue
        line, last_line = last_line + 1, reader.line_num
        if not any(value.strip() for value in values):
            continue
        tally.rows += 1
        if len(values) > width:
            errors.append(
                ImportRowError(
                    line=line,
                    field="row",
                    message=f"Has {len(values)} values; the header has {width} columns.",
                )
            )
            continue
        cells = {
            name: values[position].strip()
            for name, position in columns.items()
            if position < len(values) and values[position].strip()
        }
        yield _Row(line=line, cells=cells)


def _chunks(rows: Iterator[_Row]) -> Iterator[list[_Row]]:
    while chunk := list(islice(rows, CHUNK)):
        yield chunk


def _apply_chunk(
    session: Session,
    chunk: list[_Row],
    tally: _Tally,
    errors: list[ImportRowError],
    *,
    write: bool,
) -> None:
    """Checks a chunk in two queries and, while the file is still good, writes it."""
    codes = [row.cells["programme_code"] for row in chunk if "programme_code" in row.cells]
    existing = {
        factory.programme_code: factory
        for factory in session.exec(
            select(Factory).where(col(Factory.programme_code).in_(codes))
        ).all()
    }
    os_ids = [row.cells["os_id"] for row in chunk if "os_id" in row.cells]
    holders = dict(
        session.exec(select(Factory.os_id, Factory.id).where(col(Factory.os_id).in_(os_ids))).all()
    )
    now = utcnow()
    created: list[tuple[Factory, list[str]]] = []
    for row in chunk:
        found = _check_row(row, existing, holders, tally)
        if found:
            errors.extend(found)
            continue
        factory = existing.get(row.code)
        try:
            values = _validated(row, factory)
        except ValidationError as exc:
            errors.extend(validation_errors(row.line, exc, whole="row"))
            continue
        _claim(row, factory, values, tally)
        if factory is None:
            tally.created += 1
            created.append((Factory(**values), sorted(row.cells)))
        else:
            changes = {
                name: value for name, value in values.items() if getattr(factory, name) != value
            }
            if not changes:
                tally.unchanged += 1
            else:
                tally.updated += 1
                if write:
                    apply_changes(session, factory, changes, at=now)
    if write:
        _create(session, created)


def _check_row(
    row: _Row,
    existing: dict[str | None, Factory],
    holders: dict[str | None, str],
    tally: _Tally,
) -> list[ImportRowError]:
    """The problems that need the rest of the file or the database: a programme code given twice,
    an os_id another factory has, or that another row sets or moves."""
    found: list[ImportRowError] = []
    code = row.cells.get("programme_code")
    if code is None:
        found.append(ImportRowError(line=row.line, field="programme_code", message="Required."))
    elif code in tally.codes:
        found.append(
            ImportRowError(
                line=row.line,
                field="programme_code",
                message=f"Line {tally.codes[code]} already has programme code {code!r}.",
            )
        )
    else:
        tally.codes[code] = row.line
    os_id = row.cells.get("os_id")
    if os_id is None or code is None:
        return found
    own = existing.get(code)
    if os_id in tally.taken_os_ids:
        message = f"Line {tally.taken_os_ids[os_id]} already sets os_id {os_id!r}."
    elif os_id in tally.released_os_ids:
        message = (
            f"Line {tally.released_os_ids[os_id]} moves os_id {os_id!r} off its factory; "
            "give it to another factory in a later import."
        )
    elif os_id in holders and (own is None or holders[os_id] != own.id):
        message = f"Factory {holders[os_id]} already has os_id {os_id!r}."
    else:
        return found
    found.append(ImportRowError(line=row.line, field="os_id", message=message))
    return found


def _validated(row: _Row, factory: Factory | None) -> dict[str, Any]:
    """The factory's values once the row applies: its cells over the current values (or the
    defaults), checked together."""
    current = {} if factory is None else {name: getattr(factory, name) for name in COLUMNS}
    return FactoryFields.model_validate(current | row.cells).model_dump()


def _claim(row: _Row, factory: Factory | None, values: dict[str, Any], tally: _Tally) -> None:
    """Remembers the os_ids this row gives and takes away, so later rows cannot take them."""
    os_id, current = values["os_id"], None if factory is None else factory.os_id
    if os_id == current:
        return
    if os_id is not None:
        tally.taken_os_ids.setdefault(os_id, row.line)
    if current is not None:
        tally.released_os_ids.setdefault(current, row.line)


def _create(session: Session, created: list[tuple[Factory, list[str]]]) -> None:
    """Adds the new factories, then (their rows being there for the events to point at) their
    `factory.updated` events naming the fields their rows gave."""
    session.add_all(factory for factory, _given in created)
    session.flush()
    for factory, given in created:
        emit_factory_updated(session, factory, given)
    session.flush()
