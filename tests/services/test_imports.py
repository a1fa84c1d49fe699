"""The factories CSV and assessments JSON Lines imports, and reading uploads line by line: every bad
row reported exactly, factories all or nothing, assessments one by one, re-imports change nothing."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from src.config import Settings
from src.models import (
    Assessment,
    Event,
    Factory,
    Finding,
    Import,
    RemediationItem,
    SurveyResponse,
)
from src.models.imports import ImportKind, ImportRowError, ImportStatus
from src.services import assessment_import
from src.services.assessment_import import AssessmentImportResult, import_assessments
from src.services.factory_import import FactoryImportResult, import_factories
from src.services.imports import run_import
from tests.builders import make_assessment, make_buyer, make_factory

HEADER = (
    "programme_code,name,country,address,os_id,sector,workers_total,workers_women,status,"
    "enrolled_on\n"
)
Q1, Q2, Q3, Q4 = "CL-CHL-01", "CL-CHL-02", "CL-CHL-03", "CL-DOC-01"


def factories_csv(*rows: str) -> list[str]:
    return (HEADER + "".join(row + "\n" for row in rows)).splitlines(keepends=True)


def table(session: Session) -> list[tuple[Any, ...]]:
    session.expire_all()
    return [
        (f.programme_code, f.name, f.country, f.os_id, f.workers_total, f.workers_women, f.status)
        for f in session.exec(select(Factory).order_by(col(Factory.programme_code)))
    ]


def events(session: Session) -> list[tuple[str, str | None, Any]]:
    return [
        (event.type, event.factory_id, event.data.get("changed", event.data.get("to")))
        for event in session.exec(select(Event).order_by(col(Event.id)))
    ]


def count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


class TestFactoriesGoodFile:
    def test_creates_new_factories_and_updates_by_programme_code(self, session: Session) -> None:
        known = make_factory(
            session, programme_code="BW-1", name="Old Name", status="active", os_id="OS-OLD"
        )
        session.commit()

        result = import_factories(
            session,
            lines=factories_csv(
                "BW-1,New Name,BD,Plot 1,,,1200,800,suspended,",
                'BW-2,"Knit, Ltd",VN,"Lot 4, Binh Duong",OS-2,knitwear,300,200,active,2021-05-01',
                "BW-3,Denim Co,KH,,,,,,,",
            ),
        )

        assert result == FactoryImportResult(rows=3, created=2, updated=1, unchanged=0, errors=[])
        assert table(session) == [
            ("BW-1", "New Name", "BD", "OS-OLD", 1200, 800, "suspended"),
            ("BW-2", "Knit, Ltd", "VN", "OS-2", 300, 200, "active"),
            ("BW-3", "Denim Co", "KH", None, 0, 0, "enrolled"),
        ]
        new = session.exec(select(Factory).where(col(Factory.programme_code) == "BW-2")).one()
        assert (new.address, new.sector, new.enrolled_on) == (
            "Lot 4, Binh Duong",
            "knitwear",
            dt.date(2021, 5, 1),
        )
        ids = {f.programme_code: f.id for f in session.exec(select(Factory))}
        assert events(session) == [
            ("factory.updated", known.id, ["address", "name", "status"]),
            ("factory.status_changed", known.id, "suspended"),
            (
                "factory.updated",
                ids["BW-2"],
                [
                    "address", "country", "enrolled_on", "name", "os_id", "programme_code",
                    "sector", "status", "workers_total", "workers_women",
                ],
            ),
            ("factory.updated", ids["BW-3"], ["country", "name", "programme_code"]),
        ]  # fmt: skip

    def test_importing_the_same_file_again_changes_nothing(self, session: Session) -> None:
        lines = factories_csv(
            "BW-1,Alpha,BD,Plot 1,OS-1,garment,100,50,active,2020-01-01",
            "BW-2,Beta,VN,,,,,,,",
        )
        import_factories(session, lines=lines)
        session.commit()
        stamps = {f.id: f.updated_at for f in session.exec(select(Factory))}
        events_before = count(session, Event)

        again = import_factories(session, lines=lines)
        session.commit()

        assert again == FactoryImportResult(rows=2, created=0, updated=0, unchanged=2, errors=[])
        session.expire_all()
        assert {f.id: f.updated_at for f in session.exec(select(Factory))} == stamps
        assert count(session, Event) == events_before

    def test_an_os_id_may_stay_with_its_own_factory(self, session: Session) -> None:
        make_factory(session, programme_code="BW-1", name="Alpha", os_id="OS-1")
        session.commit()

        result = import_factories(session, lines=factories_csv("BW-1,Alpha Two,BD,,OS-1,,,,,"))

        assert (result.updated, result.errors) == (1, [])


class TestFactoriesBadFile:
    def test_every_bad_row_is_reported_and_nothing_is_written(self, session: Session) -> None:
        make_factory(session, programme_code="BW-1", name="Alpha", os_id="OS-TAKEN")
        session.commit()
        before = table(session)

        result = import_factories(
            session,
            lines=factories_csv(
                "BW-1,Alpha Renamed,BD,,,,,,,",  # line 2: good on its own
                ",No Code,BD,,,,,,,",
                "BW-2,Bad Country,Bangladesh,,,,,,,",
                "BW-3,Too Many Women,BD,,,,10,20,,",
                "BW-4,Thief,BD,,OS-TAKEN,,,,,",
                "BW-2,Twice,BD,,,,,,,",
                "BW-5,Sets OS,VN,,OS-NEW,,,,,",
                "BW-6,Same OS,VN,,OS-NEW,,,,,",
                "BW-7,Bad Values,BD,,,,many,,closed,2020-13-01",
                "BW-8,Extra,BD,,,,,,,,surplus",
                "BW-9,,BD,,,,,,,",
                "BW-10,Epoch,BD,,,,,,,0",  # a number is not a date, though pydantic reads 1970
            ),
        )

        assert result.counts == {"rows": 12, "created": 0, "updated": 0, "unchanged": 0}
        assert result.errors == [
            ImportRowError(line=3, field="programme_code", message="Required."),
            ImportRowError(
                line=4, field="country", message="String should match pattern '^[A-Z]{2}$'"
            ),
            ImportRowError(
                line=5, field="row", message="workers_women cannot exceed workers_total"
            ),
            ImportRowError(
                line=6,
                field="os_id",
                message=f"Factory {session.exec(select(Factory.id)).one()} already has os_id "
                "'OS-TAKEN'.",
            ),
            ImportRowError(
                line=7, field="programme_code", message="Line 4 already has programme code 'BW-2'."
            ),
            ImportRowError(line=9, field="os_id", message="Line 8 already sets os_id 'OS-NEW'."),
            ImportRowError(
                line=10,
                field="workers_total",
                message="Input should be a valid integer, unable to parse string as an integer",
            ),
            ImportRowError(
                line=10,
                field="status",
                message="Input should be 'enrolled', 'active', 'suspended' or 'exited'",
            ),
            ImportRowError(
                line=10,
                field="enrolled_on",
                message="Input should be a valid date or datetime, month value is outside "
                "expected range of 1-12",
            ),
            ImportRowError(
                line=11, field="row", message="Has 11 values; the header has 10 columns."
            ),
            ImportRowError(line=12, field="name", message="Field required"),
            ImportRowError(
                line=13, field="enrolled_on", message="must be an ISO 8601 date, e.g. 2026-01-31"
            ),
        ]
        session.commit()
        assert table(session) == before
        assert count(session, Event) == 0

    def test_missing_and_unknown_columns_are_reported_on_line_1(self, session: Session) -> None:
        lines = ["programme_code,name,colour,address\n", "BW-1,Alpha,red,Plot 1\n"]

        result = import_factories(session, lines=lines)

        missing = ["country", "os_id", "sector", "workers_total", "workers_women", "status"]
        assert result.errors == [
            ImportRowError(
                line=1,
                field="colour",
                message="Unknown column; expected programme_code,name,country,address,os_id,"
                "sector,workers_total,workers_women,status,enrolled_on.",
            ),
            *(ImportRowError(line=1, field=name, message="Missing column.") for name in missing),
            ImportRowError(line=1, field="enrolled_on", message="Missing column."),
        ]
        assert count(session, Factory) == 0

    def test_an_unknown_column_alone_fails_the_file(self, session: Session) -> None:
        lines = [HEADER.strip() + ",colour\n", "BW-1,Alpha,BD,,,,,,,,red\n"]

        result = import_factories(session, lines=lines)

        assert [(e.line, e.field) for e in result.errors] == [(1, "colour")]
        assert count(session, Factory) == 0

    def test_moving_an_os_id_to_another_factory_takes_two_imports(self, session: Session) -> None:
        make_factory(session, programme_code="BW-1", os_id="OS-1")
        session.commit()

        result = import_factories(
            session, lines=factories_csv("BW-1,Alpha,BD,,OS-9,,,,,", "BW-2,Beta,BD,,OS-1,,,,,")
        )

        assert result.errors == [
            ImportRowError(
                line=3,
                field="os_id",
                message="Line 2 moves os_id 'OS-1' off its factory; give it to another factory "
                "in a later import.",
            )
        ]

    def test_a_row_the_csv_reader_refuses_is_reported(self, session: Session) -> None:
        huge = "x" * 140_000
        result = import_factories(
            session,
            lines=factories_csv(
                "BW-1,Alpha,BD,,,,,,,", f"BW-2,{huge},BD,,,,,,,", "BW-3,C,BD,,,,,,,"
            ),
        )

        assert result.errors == [
            ImportRowError(
                line=3,
                field="row",
                message="Not valid CSV: field larger than field limit (131072).",
            )
        ]
        assert (result.rows, count(session, Factory)) == (3, 0)

    def test_an_empty_file_is_reported(self, session: Session) -> None:
        result = import_factories(session, lines=[])

        assert [(e.line, e.field) for e in result.errors] == [(1, "header")]


def assessment_line(factory: str, *, cycle: int = 1, **overrides: Any) -> str:
    start = dt.date(2024 + cycle, 3, 10)
    document: dict[str, Any] = {
        "factory": factory,
        "cycle": cycle,
        "kind": "assessment",
        "announced": False,
        "visit_start": start.isoformat(),
        "visit_end": (start + dt.timedelta(days=2)).isoformat(),
        "publish": False,
        "findings": [
            {"question": Q1, "compliant": True, "note": None},
            {"question": Q2, "compliant": False, "note": "No age records for 3 workers"},
            {"question": Q3, "compliant": True, "note": None},
        ],
    }
    return json.dumps(document | overrides) + "\n"


def stored_assessments(session: Session) -> list[tuple[str, int, str, int]]:
    session.expire_all()
    rows = session.exec(
        select(
            col(Assessment.factory_id),
            col(Assessment.cycle),
            col(Assessment.status),
            func.count(col(Finding.id)),
        )
        .outerjoin(Finding, col(Finding.assessment_id) == col(Assessment.id))
        .group_by(col(Assessment.id))
        .order_by(col(Assessment.factory_id), col(Assessment.cycle))
    ).all()
    return [(factory_id, cycle, str(status), n) for factory_id, cycle, status, n in rows]


class TestAssessmentsImport:
    def test_writes_drafts_and_publishes_those_that_ask(self, session: Session) -> None:
        first = make_factory(session, programme_code="BW-A")
        second = make_factory(session)
        session.commit()

        result = import_assessments(
            session,
            lines=[
                assessment_line("BW-A", publish=True),
                "\n",
                assessment_line(second.id, cycle=2),
            ],
        )

        assert result == AssessmentImportResult(
            lines=2, created=2, published=1, unchanged=0, failed=0, findings=6, errors=[]
        )
        assert sorted(stored_assessments(session)) == sorted(
            [(first.id, 1, "published", 3), (second.id, 2, "draft", 3)]
        )
        draft = session.exec(
            select(Assessment).where(col(Assessment.factory_id) == second.id)
        ).one()
        assert (draft.announced, draft.visit_end, draft.catalogue_version) == (
            False,
            dt.date(2026, 3, 12),
            "2026.1",
        )
        # publishing made the improvement plan and sent the events
        assert count(session, RemediationItem) == 1
        assert ("assessment.published", first.id) in {(e[0], e[1]) for e in events(session)}

    def test_a_bad_assessment_leaves_nothing_and_the_good_ones_stay(self, session: Session) -> None:
        factory = make_factory(session, programme_code="BW-A")
        published = make_factory(session, programme_code="BW-P")
        make_assessment(session, published, {Q1: True}, cycle=3)
        session.commit()
        findings_before = count(session, Finding)
        duplicate = [{"question": Q1, "compliant": True}, {"question": Q1, "compliant": False}]

        result = import_assessments(
            session,
            lines=[
                assessment_line("BW-A"),  # 1 good
                '{"factory": "BW-A", "cycle": \n',  # 2
                assessment_line("BW-NOPE"),  # 3
                assessment_line("BW-A", cycle=2, findings=duplicate),  # 4
                assessment_line(
                    "BW-A",
                    cycle=3,
                    visit_end="2020-01-01",
                    findings=[{"question": "XX-99", "compliant": True}],
                ),  # 5
                assessment_line("BW-P", cycle=2),  # 6: below the published cycle 3
                assessment_line("BW-A", cycle=1),  # 7: the same visit as line 1
                assessment_line("BW-A", cycle=4, catalogue_version="1999.1"),  # 8
                assessment_line("BW-A", cycle=5, findings=[], colour="red"),  # 9
                assessment_line(
                    "BW-P",
                    cycle=3,
                    visit_start="2027-04-01",
                    visit_end="2027-04-02",
                    publish=True,
                ),  # 10
            ],
        )

        assert result.counts == {
            "lines": 10,
            "created": 2,
            "published": 1,
            "unchanged": 0,
            "failed": 8,
            "findings": 6,
        }
        assert result.errors == [
            ImportRowError(
                line=2,
                field="line",
                message="Invalid JSON: EOF while parsing a value at line 1 column 28",
            ),
            ImportRowError(
                line=3,
                field="factory",
                message="No factory has the programme code or id 'BW-NOPE'.",
            ),
            ImportRowError(
                line=4, field="findings.1.question", message="CL-CHL-01 is answered twice."
            ),
            ImportRowError(line=5, field="visit_end", message="visit_end is before visit_start."),
            ImportRowError(
                line=5,
                field="findings.0.question",
                message="XX-99 is not in catalogue version 2026.1.",
            ),
            ImportRowError(
                line=6,
                field="cycle",
                message="Cycle 2 is lower than the factory's latest published cycle (3).",
            ),
            ImportRowError(
                line=7,
                field="visit_start",
                message="Line 1 already has this factory's assessment of cycle 1 visited from "
                "2025-03-10.",
            ),
            ImportRowError(
                line=8, field="catalogue_version", message="No catalogue version 1999.1."
            ),
            ImportRowError(
                line=9,
                field="findings",
                message="List should have at least 1 item after validation, not 0",
            ),
            ImportRowError(line=9, field="colour", message="Extra inputs are not permitted"),
        ]
        assert sorted(stored_assessments(session)) == sorted(
            [
                (factory.id, 1, "draft", 3),
                (published.id, 3, "published", 1),
                (published.id, 3, "published", 3),
            ]
        )
        assert count(session, Finding) == findings_before + 6  # no orphan findings

    def test_importing_the_same_file_again_changes_nothing(self, session: Session) -> None:
        factory = make_factory(session, programme_code="BW-A")
        session.commit()
        lines = [
            assessment_line("BW-A", publish=True),
            assessment_line(factory.id, cycle=2, kind="follow_up"),
        ]
        import_assessments(session, lines=lines)
        session.commit()
        before = (count(session, Assessment), count(session, Finding), count(session, Event))

        again = import_assessments(session, lines=lines)
        session.commit()

        assert again.counts == {
            "lines": 2,
            "created": 0,
            "published": 0,
            "unchanged": 2,
            "failed": 0,
            "findings": 0,
        }
        assert (count(session, Assessment), count(session, Finding), count(session, Event)) == (
            before
        )

    def test_a_publish_earlier_in_the_file_bounds_later_cycles(self, session: Session) -> None:
        make_factory(session, programme_code="BW-A")
        session.commit()

        result = import_assessments(
            session,
            lines=[
                assessment_line("BW-A", cycle=2, publish=True),
                assessment_line("BW-A", cycle=1),
            ],
        )

        assert result.errors == [
            ImportRowError(
                line=2,
                field="cycle",
                message="Cycle 1 is lower than the factory's latest published cycle (2).",
            )
        ]

    def test_lines_are_checked_across_batches(
        self, session: Session, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(assessment_import, "BATCH_LINES", 2)
        make_factory(session, programme_code="BW-A")
        session.commit()

        result = import_assessments(
            session,
            lines=[
                assessment_line("BW-A", cycle=1),
                assessment_line("BW-A", cycle=2, publish=True),
                assessment_line("BW-A", cycle=3),
                assessment_line("BW-A", cycle=1, visit_start="2025-06-01", visit_end="2025-06-02"),
                assessment_line("BW-A", cycle=3),
            ],
        )

        assert (result.created, result.published, result.failed) == (3, 1, 2)
        assert [(e.line, e.field) for e in result.errors] == [(4, "cycle"), (5, "visit_start")]


class TestReadingUploads:
    def test_a_line_that_is_not_utf8_fails_an_all_or_nothing_file(
        self, session: Session, settings: Settings
    ) -> None:
        data = (HEADER + "BW-1,Alpha,BD,,,,,,,\nBW-2,Caf\xe9,BD,,,,,,,\n").encode("latin-1")

        record = run_import(
            session,
            kind=ImportKind.factories,
            filename="factories.csv",
            source=io.BytesIO(data),
            settings=settings,
        )
        session.commit()

        assert (record.status, record.counts) == (
            ImportStatus.failed,
            {
                "rows": 1,
                "created": 0,
                "updated": 0,
                "unchanged": 0,
                "errors": 1,
                "errors_not_listed": 0,
            },
        )
        assert record.errors == [
            {
                "line": 3,
                "field": "line",
                "message": "Not valid UTF-8: byte 0xe9 at position 9; save the file as UTF-8.",
            }
        ]
        assert count(session, Factory) == 0
        assert count(session, Import) == 1

    def test_a_line_that_is_not_utf8_is_one_failed_assessment(
        self, session: Session, settings: Settings
    ) -> None:
        make_factory(session, programme_code="BW-A")
        session.commit()
        data = assessment_line("BW-A").encode() + b'{"factory": "\xff"}\n'

        record = run_import(
            session,
            kind=ImportKind.assessments,
            filename="visits.jsonl",
            source=io.BytesIO(b"\xef\xbb\xbf" + data),
            settings=settings,
        )

        assert record.status == ImportStatus.partial
        assert (record.counts["lines"], record.counts["created"], record.counts["failed"]) == (
            2,
            1,
            1,
        )
        assert [(e["line"], e["field"]) for e in record.errors] == [(2, "line")]

    def test_a_line_that_is_not_utf8_fails_a_survey_file_the_survey_import_accepted(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        make_factory(session, programme_code="BW-S")
        session.commit()
        data = (
            f"period,buyer,factory,question,rating\n2026H1,{buyer.id},BW-S,PF-01,4\n".encode()
            + b"\xff\n"
        )

        record = run_import(
            session,
            kind=ImportKind.survey,
            filename="survey.csv",
            source=io.BytesIO(data),
            settings=settings,
        )

        assert (record.status, record.counts["inserted_or_updated"]) == (ImportStatus.failed, 0)
        assert [(e["line"], e["field"]) for e in record.errors] == [(3, "line")]
        assert count(session, SurveyResponse) == 0

    def test_only_the_first_thousand_errors_are_listed(
        self, session: Session, settings: Settings
    ) -> None:
        data = (HEADER + ",No Code,BD,,,,,,,\n" * 1005).encode()

        record = run_import(
            session,
            kind=ImportKind.factories,
            filename="factories.csv",
            source=io.BytesIO(data),
            settings=settings,
        )

        assert (record.counts["errors"], record.counts["errors_not_listed"]) == (1005, 5)
        assert len(record.errors) == 1000
        assert record.errors[-1] == {
            "line": 1001,
            "field": "programme_code",
            "message": "Required.",
        }
