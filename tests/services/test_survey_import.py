"""The survey CSV import: every bad row reported, all or nothing, re-imports replace, and the
scorecards of the periods concerned recomputed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from src.config import Settings
from src.models import Event, Factory, Organization, Scorecard, ScorecardPeriod, SurveyResponse
from src.models.organizations import OrgKind
from src.models.surveys import SurveyImportResult
from src.services.scorecards import publish_period
from src.services.surveys import CHUNK, import_survey
from tests.builders import make_buyer, make_factory, make_org

HEADER = "period,buyer,factory,question,rating\n"
QUESTIONS = [
    *(f"PF-0{n}" for n in range(1, 5)),
    *(f"DD-0{n}" for n in range(1, 6)),
    *(f"CN-0{n}" for n in range(1, 6)),
    *(f"{prefix}-0{n}" for prefix in ("SO", "PT", "MP", "WW") for n in range(1, 5)),
]


def run(session: Session, settings: Settings, text: str) -> SurveyImportResult:
    return import_survey(session, lines=text.splitlines(keepends=True), settings=settings)


def csv_of(rows: list[tuple[Any, ...]]) -> str:
    return HEADER + "".join(",".join(str(value) for value in row) + "\n" for row in rows)


def stored(session: Session) -> list[tuple[str, str, str, str, int]]:
    return [
        (r.period, r.buyer_org_id, r.factory_id, r.question_code, r.rating)
        for r in session.exec(
            select(SurveyResponse).order_by(
                col(SurveyResponse.factory_id), col(SurveyResponse.question_code)
            )
        )
    ]


def pf_score(session: Session, buyer: Organization, period: str = "2026H1") -> Any:
    scorecard = session.exec(
        select(Scorecard).where(col(Scorecard.org_id) == buyer.id, col(Scorecard.period) == period)
    ).one()
    return scorecard.categories[0]


@pytest.fixture
def buyer(session: Session) -> Organization:
    return make_buyer(session)


@pytest.fixture
def five(session: Session) -> list[Factory]:
    return [make_factory(session) for _ in range(5)]


class TestGoodFile:
    def test_writes_every_rating_and_computes_the_scorecard(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        # the factory by programme code, or by id
        refs = [five[0].programme_code, five[1].id, five[2].id, five[3].id, five[4].id]
        text = csv_of([("2026H1", buyer.id, ref, "PF-01", 4) for ref in refs])
        text += "\n"  # a blank line is not a row

        result = run(session, settings, text)

        assert result == SurveyImportResult(rows=5, inserted_or_updated=5, errors=[])
        assert result.counts == {"rows": 5, "inserted_or_updated": 5}
        assert sorted(stored(session)) == sorted(
            ("2026H1", buyer.id, factory.id, "PF-01", 4) for factory in five
        )
        assert pf_score(session, buyer)["score"] == 75.0
        assert session.get(ScorecardPeriod, "2026H1").published_at is None  # type: ignore[union-attr]

    def test_a_file_larger_than_one_chunk_is_written_whole(
        self, session: Session, settings: Settings, buyer: Organization
    ) -> None:
        factories = [make_factory(session) for _ in range(CHUNK // len(QUESTIONS) + 2)]
        rows = [("2026H1", buyer.id, f.programme_code, q, 3) for f in factories for q in QUESTIONS]
        assert len(rows) > CHUNK

        result = run(session, settings, csv_of(rows))

        assert (result.rows, result.inserted_or_updated, result.errors) == (
            len(rows),
            len(rows),
            [],
        )
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == len(rows)


class TestBadRows:
    def test_every_bad_row_is_reported_with_line_field_and_message(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        partner = make_org(session, OrgKind.partner)
        code = five[0].programme_code
        text = (
            HEADER
            + f"2026H1,{buyer.id},{code},PF-01,4\n"  # 2: good
            + f"2026-H1,{buyer.id},{code},PF-02,4\n"  # 3
            + f"2026H1,org_nobody,{code},PF-03,4\n"  # 4
            + f"2026H1,{partner.id},BW-NONE,PF-04,4\n"  # 5: two problems
            + f"2026H1,{buyer.id},{code},XX-99,0\n"  # 6: two problems
            + "\n"  # 7: blank
            + f"2026H1,{buyer.id},{code},DD-01,3.5\n"  # 8
            + f",{buyer.id},{code},DD-02,\n"  # 9
            + f"2026H1,{buyer.id},{code},DD-03,2,extra\n"  # 10
            + f'2026H1,"{buyer.id}\nsplit",{code},DD-04,2\n'  # 11-12: one record over two lines
            + f"2026H1,{buyer.id},{five[0].id},PF-01,5\n"  # 13: line 2 again (same factory by id)
            + f"2026H1,{buyer.id},{code},DD-05,6\n"  # 14
        )

        result = run(session, settings, text)

        assert result.rows == 11
        assert result.inserted_or_updated == 0
        assert [e.model_dump() for e in result.errors] == [
            {
                "line": 3,
                "field": "period",
                "message": "'2026-H1' is not a period; write the year and half, e.g. 2026H1.",
            },
            {"line": 4, "field": "buyer", "message": "No organisation has the id 'org_nobody'."},
            {"line": 5, "field": "buyer", "message": f"{partner.id} is a partner organisation, not a buyer."},
            {"line": 5, "field": "factory", "message": "No factory has the programme code or id 'BW-NONE'."},
            {"line": 6, "field": "question", "message": "No survey question has the code 'XX-99'."},
            {"line": 6, "field": "rating", "message": "'0' is not a whole number from 1 to 5."},
            {"line": 8, "field": "rating", "message": "'3.5' is not a whole number from 1 to 5."},
            {"line": 9, "field": "period", "message": "Required."},
            {"line": 9, "field": "rating", "message": "Required."},
            {"line": 10, "field": "row", "message": "Has 6 values; the header has 5 columns."},
            {"line": 11, "field": "buyer", "message": f"No organisation has the id '{buyer.id}\\nsplit'."},
            {
                "line": 13,
                "field": "question",
                "message": "Line 2 already rates this question for the same period, buyer and factory.",
            },
            {"line": 14, "field": "rating", "message": "'6' is not a whole number from 1 to 5."},
        ]  # fmt: skip
        assert stored(session) == []
        assert session.exec(select(ScorecardPeriod)).all() == []

    def test_one_bad_row_among_good_ones_writes_nothing(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        rows = [("2026H1", buyer.id, f.id, "PF-01", 3) for f in five]
        rows.append(("2026H1", buyer.id, five[0].id, "PF-02", 9))

        result = run(session, settings, csv_of(rows))

        assert [(e.line, e.field) for e in result.errors] == [(7, "rating")]
        assert stored(session) == []

    def test_a_bad_row_in_a_later_chunk_is_found_and_nothing_is_written(
        self, session: Session, settings: Settings, buyer: Organization
    ) -> None:
        factories = [make_factory(session) for _ in range(CHUNK // len(QUESTIONS) + 2)]
        rows = [("2026H1", buyer.id, f.id, q, 3) for f in factories for q in QUESTIONS]
        rows[-1] = ("2026H1", buyer.id, "fac_gone", rows[-1][3], 3)

        result = run(session, settings, csv_of(rows))

        assert [(e.line, e.field) for e in result.errors] == [(len(rows) + 1, "factory")]
        assert stored(session) == []


class TestHeader:
    @pytest.mark.parametrize(
        ("header", "errors"),
        [
            ("period,buyer,factory,rating\n", [("question", "Missing column.")]),
            ("period,buyer,buyer,factory,question,rating\n", [("buyer", "Column appears twice.")]),
            (
                "period,buyer,supplier,question,rating\n",
                [
                    ("supplier", "Unknown column; the header is period,buyer,factory,question,rating."),
                    ("factory", "Missing column."),
                ],
            ),
        ],
    )  # fmt: skip
    def test_a_header_that_cannot_be_read_is_reported_on_line_1(
        self, session: Session, settings: Settings, header: str, errors: list[tuple[str, str]]
    ) -> None:
        result = run(session, settings, header + "2026H1,org_x,fac_x,PF-01,3\n")

        assert result == SurveyImportResult(
            rows=0,
            inserted_or_updated=0,
            errors=[{"line": 1, "field": f, "message": m} for f, m in errors],  # type: ignore[misc]
        )

    def test_an_empty_file_is_reported_on_line_1(
        self, session: Session, settings: Settings
    ) -> None:
        result = run(session, settings, "")

        assert [e.model_dump() for e in result.errors] == [
            {
                "line": 1,
                "field": "header",
                "message": "The file is empty; expected the header "
                "period,buyer,factory,question,rating.",
            }
        ]

    def test_columns_may_come_in_any_order_and_an_extra_one_is_reported_with_the_rows(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        text = (
            f"rating,question,factory,buyer,period,note\n4,PF-01,{five[0].id},{buyer.id},2026H1,x\n"
        )

        result = run(session, settings, text)

        assert [(e.line, e.field) for e in result.errors] == [(1, "note")]
        assert result.rows == 1
        assert stored(session) == []


class TestReimport:
    def test_a_reimport_replaces_ratings_and_never_duplicates(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        run(session, settings, csv_of([("2026H1", buyer.id, f.id, "PF-01", 1) for f in five]))
        result = run(
            session, settings, csv_of([("2026H1", buyer.id, f.id, "PF-01", 5) for f in five])
        )

        assert result.inserted_or_updated == 5
        assert sorted(stored(session)) == sorted(
            ("2026H1", buyer.id, f.id, "PF-01", 5) for f in five
        )
        assert pf_score(session, buyer)["score"] == 100.0

    def test_a_published_period_is_recomputed_and_stays_published(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        run(session, settings, csv_of([("2026H1", buyer.id, f.id, "PF-01", 1) for f in five]))
        published = publish_period(session, period="2026H1", settings=settings)

        run(session, settings, csv_of([("2026H1", buyer.id, f.id, "PF-01", 3) for f in five]))

        assert pf_score(session, buyer)["score"] == 50.0
        period = session.get(ScorecardPeriod, "2026H1")
        assert period is not None
        assert period.published_at == published.published_at
        assert session.scalar(select(func.count()).select_from(Event)) == 1  # no new event

    def test_reimporting_an_earlier_period_recomputes_the_change_of_later_ones(
        self, session: Session, settings: Settings, buyer: Organization, five: list[Factory]
    ) -> None:
        run(session, settings, csv_of([("2026H1", buyer.id, f.id, "PF-01", 5) for f in five]))
        run(session, settings, csv_of([("2025H2", buyer.id, f.id, "PF-01", 3) for f in five]))

        assert pf_score(session, buyer)["change"] == 50.0
        assert pf_score(session, buyer, "2025H2")["change"] is None
