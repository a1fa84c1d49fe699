"""The assessments JSON Lines import: one assessment with all its findings a line, each checked in
full and committed on its own (a SAVEPOINT), so a bad one leaves nothing of itself behind.

Lines are read in batches: a batch's factories, latest published cycles and existing visits are
looked up in one query each, and its good drafts are written in one SAVEPOINT with two bulk
statements (the assessments, then all their findings). Parsing runs on a thread of its own, so
the next batch is parsed while the database works on this one."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import ValidationError
from sqlalchemy import func, insert, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from src.db import copy_rows, insert_rows, utcnow
from src.ids import new_id
from src.models import Assessment, Factory, Finding, Question
from src.models.assessments import AssessmentCreate, AssessmentStatus
from src.models.imports import ImportRowError
from src.services.assessments import publish_assessment
from src.services.catalogue import resolve_version
from src.services.errors import DomainError, NotFound
from src.services.import_rows import validation_errors

# A batch ends at whichever comes first; memory holds the batch being written and at most
# QUEUED parsed ones.
BATCH_LINES = 500
BATCH_FINDINGS = 10_000
QUEUED = 1

VisitKey = tuple[str, int, str, dt.date]  # factory id, cycle, kind, visit_start
FindingRow = tuple[str, int, bool, str | None]
FINDING_COLUMNS = ("assessment_id", "question_id", "compliant", "note")
ASSESSMENTS = SQLModel.metadata.tables[str(Assessment.__tablename__)]
FINDINGS = SQLModel.metadata.tables[str(Finding.__tablename__)]


class AssessmentLine(AssessmentCreate):
    """One line of the file: a draft assessment, its factory named by programme code or id."""

    factory_id: str = pydantic.Field(
        validation_alias="factory", min_length=1, max_length=40, description="Programme code or id"
    )
    publish: bool = False


@dataclass
class AssessmentImportResult:
    lines: int = 0
    created: int = 0
    published: int = 0
    unchanged: int = 0
    failed: int = 0
    findings: int = 0
    errors: list[ImportRowError] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "created": self.created,
            "published": self.published,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "findings": self.findings,
        }


@dataclass(frozen=True)
class _Parsed:
    line: int
    data: AssessmentLine


@dataclass(frozen=True)
class _Ready:
    """A checked assessment as the rows to insert."""

    line: int
    key: VisitKey
    assessment: dict[str, Any]
    findings: list[FindingRow]
    publish: bool


@dataclass(frozen=True)
class _Catalogue:
    version: str
    questions: dict[str, int]  # code -> question id


def import_assessments(session: Session, *, lines: Iterable[str]) -> AssessmentImportResult:
    """Reads JSON Lines (blank lines skipped). Each good assessment is written as a draft and
    published when its line says so; a line already imported (same factory, cycle, kind and
    visit_start) is left as it is and counted unchanged."""
    importer = _Importer(session)
    with _Parser(lines) as parser:
        for batch in parser:
            importer.run(batch)
    result = importer.result
    result.lines = parser.lines
    result.failed += parser.failed
    result.errors.extend(parser.errors)
    result.errors.sort(key=lambda error: error.line)
    return result


class _Parser:
    """Reads and parses the lines into batches on a thread of its own (the main one waits on the
    database meanwhile, without the GIL). A line that is not a valid assessment on its own is
    reported here and left out. Its counts are read once the `with` block is over."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = 0
        self.failed = 0
        self.errors: list[ImportRowError] = []
        self._source = lines
        self._queue: queue.Queue[list[_Parsed] | BaseException | None] = queue.Queue(QUEUED)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, name="assessment-import-parser", daemon=True
        )

    def __enter__(self) -> _Parser:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[list[_Parsed]]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _produce(self) -> None:
        try:
            for batch in self._batches():
                if not self._put(batch):
                    return
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def _put(self, item: list[_Parsed] | BaseException | None) -> bool:
        """False once the consumer has stopped listening."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _batches(self) -> Iterator[list[_Parsed]]:
        batch: list[_Parsed] = []
        findings = 0
        for number, text in enumerate(self._source, start=1):
            if not text.strip():
                continue
            self.lines += 1
            try:
                data = AssessmentLine.model_validate_json(text.strip())
            except ValidationError as exc:
                self.failed += 1
                self.errors.extend(validation_errors(number, exc, whole="line"))
                continue
            batch.append(_Parsed(line=number, data=data))
            findings += len(data.findings)
            if len(batch) >= BATCH_LINES or findings >= BATCH_FINDINGS:
                yield batch
                batch, findings = [], 0
        if batch:
            yield batch


class _Importer:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.result = AssessmentImportResult()
        self.catalogues: dict[str | None, _Catalogue | str] = {}  # a str says why there is none
        self.seen: dict[VisitKey, int] = {}  # -> the line that brought it
        self.drafts: list[_Ready] = []

    def run(self, batch: list[_Parsed]) -> None:
        factories = self._factory_ids({parsed.data.factory_id for parsed in batch})
        ids = set(factories.values())
        latest = self._latest_published(ids)
        existing = self._existing(ids, {parsed.data.visit_start for parsed in batch})
        for parsed in batch:
            ready = self._check(parsed, factories.get(parsed.data.factory_id), latest)
            if isinstance(ready, list):
                self.result.failed += 1
                self.result.errors.extend(ready)
                continue
            factory_id = ready.key[0]
            self.seen[ready.key] = parsed.line
            if ready.key in existing:
                self.result.unchanged += 1
            elif ready.publish:
                self._write_drafts()
                if self._write_one(ready):
                    latest[factory_id] = max(latest.get(factory_id, 0), parsed.data.cycle)
            else:
                self.drafts.append(ready)
        self._write_drafts()

    def _check(
        self, parsed: _Parsed, factory_id: str | None, latest: dict[str, int]
    ) -> _Ready | list[ImportRowError]:
        """The rows to write, or every problem of the line."""
        data, line = parsed.data, parsed.line
        errors: list[ImportRowError] = []

        def problem(where: str, message: str) -> None:
            errors.append(ImportRowError(line=line, field=where, message=message))

        if factory_id is None:
            problem("factory", f"No factory has the programme code or id {data.factory_id!r}.")
        else:
            key = _key(data, factory_id)
            if key in self.seen:
                problem(
                    "visit_start",
                    f"Line {self.seen[key]} already has this factory's {data.kind} of cycle "
                    f"{data.cycle} visited from {data.visit_start}.",
                )
            if data.cycle < latest.get(factory_id, 0):
                problem(
                    "cycle",
                    f"Cycle {data.cycle} is lower than the factory's latest published cycle "
                    f"({latest[factory_id]}).",
                )
        if data.visit_end < data.visit_start:
            problem("visit_end", "visit_end is before visit_start.")
        catalogue = self._catalogue(data.catalogue_version)
        if isinstance(catalogue, str):
            problem("catalogue_version", catalogue)
            return errors
        question_ids: list[int] = []
        answered: set[int] = set()
        for index, finding in enumerate(data.findings):
            question_id = catalogue.questions.get(finding.question)
            if question_id is None:
                problem(
                    f"findings.{index}.question",
                    f"{finding.question} is not in catalogue version {catalogue.version}.",
                )
            elif question_id in answered:
                problem(f"findings.{index}.question", f"{finding.question} is answered twice.")
            else:
                answered.add(question_id)
            question_ids.append(question_id or 0)
        if errors or factory_id is None:
            return errors
        return _ready(parsed, _key(data, factory_id), catalogue.version, question_ids)

    def _catalogue(self, version: str | None) -> _Catalogue | str:
        """A catalogue version's questions, read once per import."""
        if version not in self.catalogues:
            try:
                found = resolve_version(self.session, version=version).version
            except NotFound as exc:
                self.catalogues[version] = str(exc)
            else:
                rows = self.session.exec(
                    select(Question.code, Question.id).where(col(Question.version) == found)
                ).all()
                questions = {code: question_id for code, question_id in rows if question_id}
                self.catalogues[version] = _Catalogue(found, questions)
        return self.catalogues[version]

    def _factory_ids(self, refs: set[str]) -> dict[str, str]:
        """Each reference's factory id; a programme code wins over an id spelled the same."""
        rows = self.session.exec(
            select(Factory.id, Factory.programme_code).where(
                or_(col(Factory.programme_code).in_(refs), col(Factory.id).in_(refs))
            )
        ).all()
        found = {factory_id: factory_id for factory_id, _code in rows}
        return found | {code: factory_id for factory_id, code in rows if code is not None}

    def _latest_published(self, factory_ids: set[str]) -> dict[str, int]:
        rows = self.session.exec(
            select(Assessment.factory_id, func.max(Assessment.cycle))
            .where(
                col(Assessment.factory_id).in_(factory_ids),
                col(Assessment.status) == AssessmentStatus.published,
            )
            .group_by(col(Assessment.factory_id))
        ).all()
        return {factory_id: int(cycle) for factory_id, cycle in rows}

    def _existing(self, factory_ids: set[str], starts: set[dt.date]) -> set[VisitKey]:
        rows = self.session.exec(
            select(
                col(Assessment.factory_id),
                col(Assessment.cycle),
                col(Assessment.kind),
                col(Assessment.visit_start),
            ).where(
                col(Assessment.factory_id).in_(factory_ids),
                col(Assessment.visit_start).in_(starts),
            )
        ).all()
        return {(factory_id, cycle, str(kind), start) for factory_id, cycle, kind, start in rows}

    def _write_drafts(self) -> None:
        """The pending drafts in two statements and one SAVEPOINT; should that fail (another
        writer got there first), each again on its own so only the clashing one is lost."""
        drafts, self.drafts = self.drafts, []
        if not drafts:
            return
        try:
            with self.session.begin_nested():
                self._insert(drafts)
        except IntegrityError:
            for ready in drafts:
                self._write_one(ready)
            return
        self.result.created += len(drafts)
        self.result.findings += sum(len(ready.findings) for ready in drafts)

    def _write_one(self, ready: _Ready) -> bool:
        """One assessment (published when asked) in its own SAVEPOINT; False when it failed."""
        try:
            with self.session.begin_nested():
                self._insert([ready])
                if ready.publish:
                    publish_assessment(self.session, assessment_id=ready.assessment["id"])
        except IntegrityError:
            message = "Another import wrote the same assessment meanwhile; import the line again."
            self._fail(ready, "factory", message)
            return False
        except DomainError as exc:
            self._fail(ready, "publish", str(exc))
            return False
        self.result.created += 1
        self.result.published += int(ready.publish)
        self.result.findings += len(ready.findings)
        return True

    def _insert(self, drafts: list[_Ready]) -> None:
        """Core statements, not the ORM's bulk insert (which splits the rows into one statement
        per run of rows with the same null columns). The findings go in as the driver takes them
        fastest: PostgreSQL by COPY, SQLite by multi-row INSERTs."""
        self.session.execute(insert(ASSESSMENTS), [ready.assessment for ready in drafts])
        findings = [row for ready in drafts for row in ready.findings]
        connection = self.session.connection()
        if connection.dialect.name == "sqlite":
            insert_rows(connection, FINDINGS, FINDING_COLUMNS, findings)
            return
        copy_rows(connection, FINDINGS, FINDING_COLUMNS, findings)

    def _fail(self, ready: _Ready, where: str, message: str) -> None:
        self.seen.pop(ready.key, None)
        self.result.failed += 1
        self.result.errors.append(ImportRowError(line=ready.line, field=where, message=message))


def _key(data: AssessmentLine, factory_id: str) -> VisitKey:
    return factory_id, data.cycle, str(data.kind), data.visit_start


def _ready(parsed: _Parsed, key: VisitKey, version: str, question_ids: list[int]) -> _Ready:
    data, now = parsed.data, utcnow()
    assessment_id = new_id("asm")
    return _Ready(
        line=parsed.line,
        key=key,
        assessment={
            "id": assessment_id,
            "factory_id": key[0],
            "catalogue_version": version,
            "cycle": data.cycle,
            "kind": str(data.kind),
            "announced": data.announced,
            "visit_start": data.visit_start,
            "visit_end": data.visit_end,
            "status": str(AssessmentStatus.draft),
            "published_at": None,
            "retracted_at": None,
            "created_at": now,
            "updated_at": now,
        },
        findings=[
            (assessment_id, question_id, finding.compliant, finding.note)
            for finding, question_id in zip(data.findings, question_ids, strict=True)
        ],
        publish=data.publish,
    )
