"""Survey responses: the CSV import, validated in full and written all or nothing, in bulk."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from sqlalchemy import Executable, Table, bindparam, cast, func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, SQLModel, col, or_, select

from src.config import Settings, get_settings
from src.db import UTCDateTime, utcnow
from src.models import Factory, Organization, SurveyQuestion, SurveyResponse
from src.models.imports import ImportRowError
from src.models.organizations import OrgKind
from src.models.surveys import PERIOD_PATTERN, SurveyImportResult
from src.services.scorecards import recompute_periods

COLUMNS = ("period", "buyer", "factory", "question", "rating")
KEY_COLUMNS = ["period", "buyer_org_id", "factory_id", "question_code"]
VALUE_COLUMNS = [*KEY_COLUMNS, "rating"]
RATINGS = {"1", "2", "3", "4", "5"}
# Rows per lookup and per INSERT: 1000 rows x 7 values stays under every driver's bind limit.
CHUNK = 1000
_PERIOD = re.compile(PERIOD_PATTERN)

T = TypeVar("T")
AnyInsert = TypeVar("AnyInsert", postgresql.Insert, sqlite.Insert)
# (period, buyer organisation id, factory id, question code)
ResponseKey = tuple[str, str, str, str]
ResponseRow = tuple[str, str, str, str, int]


@dataclass(frozen=True)
class _ParsedRow:
    """A row whose own values are valid; its buyer and factory still need looking up."""

    line: int
    period: str
    buyer: str
    factory: str
    question: str
    rating: int


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def import_survey(
    session: Session, *, lines: Iterable[str], settings: Settings | None = None
) -> SurveyImportResult:
    """Reads `period,buyer,factory,question,rating` CSV lines; a header is line 1.

    Every row is checked and every problem reported; when there is any, nothing is written.
    Otherwise the ratings replace those of the same period, buyer, factory and question, and the
    scorecards of the periods concerned (and of later periods, whose change depends on them) are
    recomputed. Memory holds one chunk of rows plus the validated ratings."""
    reader = csv.reader(lines)
    errors: list[ImportRowError] = []
    columns = _read_header(next(reader, None), errors)
    if columns is None:
        return SurveyImportResult(rows=0, inserted_or_updated=0, errors=errors)
    questions = set(session.exec(select(SurveyQuestion.code)).all())
    ratings: dict[ResponseKey, tuple[int, int]] = {}  # key -> (rating, line)
    pending: list[_ParsedRow] = []
    rows = 0
    last_line = reader.line_num
    for values in reader:
        line, last_line = last_line + 1, reader.line_num
        if not any(value.strip() for value in values):
            continue
        rows += 1
        parsed = _parse_row(line, values, columns, questions, errors)
        if parsed is not None:
            pending.append(parsed)
        if len(pending) >= CHUNK:
            _resolve(session, pending, ratings, errors)
            pending.clear()
    _resolve(session, pending, ratings, errors)
    if errors:
        errors.sort(key=_error_order)
        return SurveyImportResult(rows=rows, inserted_or_updated=0, errors=errors)
    written = write_responses(session, ((*key, rating) for key, (rating, _line) in ratings.items()))
    recompute_periods(
        session, periods={key[0] for key in ratings}, settings=settings or get_settings()
    )
    return SurveyImportResult(rows=rows, inserted_or_updated=written, errors=[])


def write_responses(session: Session, rows: Iterable[ResponseRow]) -> int:
    """Inserts the ratings, replacing any for the same period, buyer, factory and question, one
    statement per chunk. No two rows may share that key."""
    table = SQLModel.metadata.tables[str(SurveyResponse.__tablename__)]
    postgres = session.get_bind().dialect.name == "postgresql"
    statement = _pg_upsert(table) if postgres else _sqlite_upsert(table)
    written = 0
    for chunk in chunked(rows):
        now = utcnow()
        if postgres:
            columns = dict(zip(VALUE_COLUMNS, map(list, zip(*chunk, strict=True)), strict=True))
            session.execute(statement, columns | {"now": now})
        else:
            session.execute(
                statement,
                [
                    dict(zip(VALUE_COLUMNS, row, strict=True))
                    | {"created_at": now, "updated_at": now}
                    for row in chunk
                ],
            )
        written += len(chunk)
    return written


def _on_conflict_replace(upsert: AnyInsert) -> AnyInsert:
    return upsert.on_conflict_do_update(
        index_elements=KEY_COLUMNS,
        set_={"rating": upsert.excluded.rating, "updated_at": upsert.excluded.updated_at},
    )


def _pg_upsert(table: Table) -> Executable:
    """PostgreSQL reads a chunk as one array per column: a small statement whatever the chunk."""
    arrays = [cast(bindparam(name), ARRAY(table.c[name].type)) for name in VALUE_COLUMNS]
    source = func.unnest(*arrays).table_valued(*VALUE_COLUMNS).render_derived(name="chunk")
    now = bindparam("now", type_=UTCDateTime())
    return _on_conflict_replace(
        postgresql.insert(table).from_select(
            [*VALUE_COLUMNS, "created_at", "updated_at"], sa_select(*source.c, now, now)
        )
    )


def _sqlite_upsert(table: Table) -> Executable:
    """SQLite gets multi-row VALUES: SQLAlchemy batches the parameter sets into one statement
    when it returns rows."""
    return _on_conflict_replace(sqlite.insert(table)).returning(table.c.id)


def _error_order(error: ImportRowError) -> tuple[int, int]:
    return error.line, COLUMNS.index(error.field) if error.field in COLUMNS else -1


def _read_header(header: list[str] | None, errors: list[ImportRowError]) -> dict[str, int] | None:
    """The position of each column, or None when the rows cannot be read."""
    expected = ",".join(COLUMNS)
    if header is None:
        errors.append(
            ImportRowError(
                line=1,
                field="header",
                message=f"The file is empty; expected the header {expected}.",
            )
        )
        return None
    names = [name.strip().lstrip("\ufeff") for name in header]
    columns: dict[str, int] = {}
    readable = True
    for position, name in enumerate(names):
        if name in columns:
            errors.append(ImportRowError(line=1, field=name, message="Column appears twice."))
            readable = False
        elif name not in COLUMNS:
            errors.append(
                ImportRowError(
                    line=1, field=name, message=f"Unknown column; the header is {expected}."
                )
            )
        columns.setdefault(name, position)
    for name in COLUMNS:
        if name not in columns:
            errors.append(ImportRowError(line=1, field=name, message="Missing column."))
            readable = False
    return columns if readable else None


def _parse_row(
    line: int,
    values: Sequence[str],
    columns: dict[str, int],
    questions: set[str],
    errors: list[ImportRowError],
) -> _ParsedRow | None:
    """Checks what a row holds on its own; None (with its errors added) when it is bad."""
    found: list[ImportRowError] = []
    if len(values) > len(columns):
        found.append(
            ImportRowError(
                line=line,
                field="row",
                message=f"Has {len(values)} values; the header has {len(columns)} columns.",
            )
        )
    cell = {
        name: values[position].strip() if position < len(values) else ""
        for name, position in columns.items()
    }
    for name in COLUMNS:
        if not cell[name]:
            found.append(ImportRowError(line=line, field=name, message="Required."))
    period, question, rating = cell["period"], cell["question"], cell["rating"]
    if period and not _PERIOD.match(period):
        found.append(
            ImportRowError(
                line=line,
                field="period",
                message=f"{period!r} is not a period; write the year and half, e.g. 2026H1.",
            )
        )
    if question and question not in questions:
        found.append(
            ImportRowError(
                line=line,
                field="question",
                message=f"No survey question has the code {question!r}.",
            )
        )
    if rating and rating not in RATINGS:
        found.append(
            ImportRowError(
                line=line, field="rating", message=f"{rating!r} is not a whole number from 1 to 5."
            )
        )
    errors.extend(found)
    if found:
        return None
    return _ParsedRow(
        line=line,
        period=period,
        buyer=cell["buyer"],
        factory=cell["factory"],
        question=question,
        rating=int(rating),
    )


def _resolve(
    session: Session,
    rows: Sequence[_ParsedRow],
    ratings: dict[ResponseKey, tuple[int, int]],
    errors: list[ImportRowError],
) -> None:
    """Looks up the buyers and factories of a chunk in two queries and adds its good rows."""
    if not rows:
        return
    buyer_refs = {row.buyer for row in rows}
    kinds = dict(
        session.exec(
            select(Organization.id, Organization.kind).where(col(Organization.id).in_(buyer_refs))
        ).all()
    )
    factory_refs = {row.factory for row in rows}
    found = session.exec(
        select(Factory.id, Factory.programme_code).where(
            or_(col(Factory.programme_code).in_(factory_refs), col(Factory.id).in_(factory_refs))
        )
    ).all()
    # A programme code wins over an id that happens to spell the same.
    by_ref = {factory_id: factory_id for factory_id, _code in found}
    by_ref |= {code: factory_id for factory_id, code in found if code is not None}
    for row in rows:
        bad = False
        kind = kinds.get(row.buyer)
        if kind != OrgKind.buyer:
            message = (
                f"No organisation has the id {row.buyer!r}."
                if kind is None
                else f"{row.buyer} is a {kind} organisation, not a buyer."
            )
            errors.append(ImportRowError(line=row.line, field="buyer", message=message))
            bad = True
        factory_id = by_ref.get(row.factory)
        if factory_id is None:
            errors.append(
                ImportRowError(
                    line=row.line,
                    field="factory",
                    message=f"No factory has the programme code or id {row.factory!r}.",
                )
            )
            bad = True
        if bad or factory_id is None:
            continue
        key = (row.period, row.buyer, factory_id, row.question)
        earlier = ratings.get(key)
        if earlier is not None:
            errors.append(
                ImportRowError(
                    line=row.line,
                    field="question",
                    message=f"Line {earlier[1]} already rates this question for the same period, "
                    "buyer and factory.",
                )
            )
            continue
        ratings[key] = (row.rating, row.line)
