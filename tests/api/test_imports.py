"""`/v1/imports` and `weft import`: uploads read line by line, the Import resource with its counts
and bad rows, all-or-nothing factories, per-assessment commits, survey dispatch, the size limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from src.cli import app as cli
from src.config import Settings, get_settings
from src.db import engine_for
from src.main import create_app
from src.models import Assessment, Factory, Finding, SurveyResponse
from src.services.clients import NewClient
from tests.builders import bearer, make_buyer, make_client, make_factory, make_programme_client

HEADER = (
    "programme_code,name,country,address,os_id,sector,workers_total,workers_women,status,"
    "enrolled_on\n"
)
GOOD_FACTORIES = (
    HEADER + "BW-1,Alpha,BD,Plot 1,OS-1,garment,100,50,active,2020-01-01\nBW-2,Beta,VN,,,,,,,\n"
)
BAD_FACTORIES = HEADER + "BW-1,Alpha,BD,,,,,,,\n,No Code,BD,,,,,,,\nBW-3,Gamma,bd,,,,,,,\n"


@pytest.fixture
def admin(session: Session) -> NewClient:
    credentials = make_programme_client(session)
    session.commit()
    return credentials


def upload(
    client: TestClient, headers: dict[str, str], kind: str, name: str, content: str | bytes
) -> Any:
    return client.post(
        "/v1/imports", headers=headers, data={"kind": kind}, files={"file": (name, content)}
    )


def factory_rows(session: Session) -> list[tuple[str | None, str, str]]:
    session.expire_all()
    return [
        (f.programme_code, f.name, f.country)
        for f in session.exec(select(Factory).order_by(col(Factory.programme_code)))
    ]


def finding_line(factory: str, cycle: int, questions: list[str], **extra: Any) -> str:
    return (
        json.dumps(
            {
                "factory": factory,
                "cycle": cycle,
                "kind": "assessment",
                "announced": True,
                "visit_start": f"{2024 + cycle}-03-10",
                "visit_end": f"{2024 + cycle}-03-12",
                "findings": [{"question": q, "compliant": False, "note": None} for q in questions],
            }
            | extra
        )
        + "\n"
    )


class TestFactoriesUpload:
    def test_a_good_file_answers_201_with_the_import(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        response = upload(client, bearer(client, admin), "factories", "f.csv", GOOD_FACTORIES)

        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == f"/v1/imports/{body['id']}"
        assert body["id"].startswith("imp_")
        assert {k: body[k] for k in ("kind", "filename", "status", "counts", "errors")} == {
            "kind": "factories",
            "filename": "f.csv",
            "status": "succeeded",
            "counts": {
                "rows": 2,
                "created": 2,
                "updated": 0,
                "unchanged": 0,
                "errors": 0,
                "errors_not_listed": 0,
            },
            "errors": [],
        }
        assert factory_rows(session) == [("BW-1", "Alpha", "BD"), ("BW-2", "Beta", "VN")]
        again = client.get(response.headers["location"], headers=bearer(client, admin))
        assert again.status_code == 200
        assert again.json() == body

    def test_the_same_file_twice_changes_nothing_the_second_time(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        headers = bearer(client, admin)
        upload(client, headers, "factories", "f.csv", GOOD_FACTORIES)
        stamps = {f.id: f.updated_at for f in session.exec(select(Factory))}

        second = upload(client, headers, "factories", "f.csv", GOOD_FACTORIES)

        assert second.json()["status"] == "succeeded"
        assert second.json()["counts"]["unchanged"] == 2
        session.expire_all()
        assert {f.id: f.updated_at for f in session.exec(select(Factory))} == stamps

    def test_a_bad_file_writes_nothing_and_lists_every_bad_row(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        make_factory(session, programme_code="BW-1", name="Original", country="KH")
        session.commit()

        response = upload(client, bearer(client, admin), "factories", "bad.csv", BAD_FACTORIES)

        assert response.status_code == 201
        body = response.json()
        assert (body["status"], body["counts"]) == (
            "failed",
            {
                "rows": 3,
                "created": 0,
                "updated": 0,
                "unchanged": 0,
                "errors": 2,
                "errors_not_listed": 0,
            },
        )
        assert body["errors"] == [
            {"line": 3, "field": "programme_code", "message": "Required."},
            {"line": 4, "field": "country", "message": "String should match pattern '^[A-Z]{2}$'"},
        ]
        assert factory_rows(session) == [("BW-1", "Original", "KH")]

    def test_a_line_that_is_not_utf8_is_a_row_error(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        content = (HEADER + "BW-1,Caf\xe9,BD,,,,,,,\n").encode("latin-1")

        response = upload(client, bearer(client, admin), "factories", "latin.csv", content)

        assert response.json()["status"] == "failed"
        assert response.json()["errors"] == [
            {
                "line": 2,
                "field": "line",
                "message": "Not valid UTF-8: byte 0xe9 at position 9; save the file as UTF-8.",
            }
        ]
        assert factory_rows(session) == []


class TestAssessmentsUpload:
    def test_good_ones_commit_and_a_bad_one_leaves_nothing(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        factory = make_factory(session, programme_code="BW-A")
        session.commit()
        content = (
            finding_line("BW-A", 1, ["CL-CHL-01", "CL-CHL-02"])
            + finding_line("BW-A", 2, ["CL-CHL-01", "NOPE-1"])
            + finding_line("BW-A", 3, ["CL-CHL-03"], publish=True)
        )

        response = upload(client, bearer(client, admin), "assessments", "a.jsonl", content)

        assert response.status_code == 201
        body = response.json()
        assert (body["status"], body["counts"], body["errors"]) == (
            "partial",
            {
                "lines": 3,
                "created": 2,
                "published": 1,
                "unchanged": 0,
                "failed": 1,
                "findings": 3,
                "errors": 1,
                "errors_not_listed": 0,
            },
            [
                {
                    "line": 2,
                    "field": "findings.1.question",
                    "message": "NOPE-1 is not in catalogue version 2026.1.",
                }
            ],
        )
        cycles = session.exec(
            select(Assessment.cycle).where(col(Assessment.factory_id) == factory.id)
        ).all()
        assert sorted(cycles) == [1, 3]
        assert session.scalar(select(func.count()).select_from(Finding)) == 3

    def test_re_importing_counts_unchanged(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        make_factory(session, programme_code="BW-A")
        session.commit()
        content = finding_line("BW-A", 1, ["CL-CHL-01"], publish=True)
        headers = bearer(client, admin)
        upload(client, headers, "assessments", "a.jsonl", content)

        second = upload(client, headers, "assessments", "a.jsonl", content)

        assert (second.json()["status"], second.json()["counts"]["unchanged"]) == ("succeeded", 1)
        assert session.scalar(select(func.count()).select_from(Assessment)) == 1

    def test_nothing_good_is_a_failed_import(self, client: TestClient, admin: NewClient) -> None:
        response = upload(client, bearer(client, admin), "assessments", "a.jsonl", "not json\n")

        assert response.json()["status"] == "failed"


class TestSurveyUpload:
    def test_a_survey_file_goes_to_the_survey_import(
        self, client: TestClient, session: Session, admin: NewClient
    ) -> None:
        buyer = make_buyer(session)
        make_factory(session, programme_code="BW-S")
        session.commit()
        content = f"period,buyer,factory,question,rating\n2026H1,{buyer.id},BW-S,PF-01,4\n"

        response = upload(client, bearer(client, admin), "survey", "s.csv", content)

        assert (response.json()["status"], response.json()["counts"]) == (
            "succeeded",
            {"rows": 1, "inserted_or_updated": 1, "errors": 0, "errors_not_listed": 0},
        )
        assert session.exec(select(SurveyResponse.rating)).all() == [4]


class TestTheResource:
    def test_an_unknown_kind_is_a_422_on_kind(self, client: TestClient, admin: NewClient) -> None:
        response = upload(client, bearer(client, admin), "suppliers", "f.csv", GOOD_FACTORIES)

        assert response.status_code == 422
        assert [(e["in"], e["field"]) for e in response.json()["errors"]] == [("body", "kind")]

    def test_only_the_programme_may_import(self, client: TestClient, session: Session) -> None:
        buyer = make_client(session, make_buyer(session))
        session.commit()

        response = upload(client, bearer(client, buyer), "factories", "f.csv", GOOD_FACTORIES)

        assert response.status_code == 403
        assert factory_rows(session) == []

    def test_imports_are_listed_oldest_first_and_paged(
        self, client: TestClient, admin: NewClient
    ) -> None:
        headers = bearer(client, admin)
        ids = [
            upload(client, headers, "factories", f"{n}.csv", GOOD_FACTORIES).json()["id"]
            for n in range(3)
        ]

        first = client.get("/v1/imports?limit=2", headers=headers)
        rest = client.get(
            f"/v1/imports?limit=2&cursor={first.json()['next_cursor']}", headers=headers
        )

        assert [item["id"] for item in first.json()["data"]] == ids[:2]
        assert 'rel="next"' in first.headers["link"]
        assert [item["id"] for item in rest.json()["data"]] == ids[2:]
        assert rest.json()["has_more"] is False

    def test_an_unknown_import_is_a_404(self, client: TestClient, admin: NewClient) -> None:
        response = client.get("/v1/imports/imp_nope", headers=bearer(client, admin))

        assert response.status_code == 404
        assert response.json()["detail"] == "No import imp_nope."

    def test_a_file_over_the_import_limit_is_a_413(
        self, settings: Settings, engine: Engine, session: Session, admin: NewClient
    ) -> None:
        small = settings.model_copy(update={"max_import_bytes": 1024})
        with TestClient(create_app(small, engine=engine)) as client:
            content = HEADER + "BW-1,Alpha,BD,,,,,,,\n" * 100

            response = upload(client, bearer(client, admin), "factories", "big.csv", content)

        assert response.status_code == 413
        assert response.json()["type"] == "https://weft.dev/problems/payload-too-large"
        assert factory_rows(session) == []


class TestCommandLine:
    @pytest.fixture
    def weft(self, settings: Settings) -> Any:
        get_settings.cache_clear()
        runner = CliRunner()

        def invoke(*args: str) -> Any:
            return runner.invoke(cli, list(args), env={"WEFT_DATABASE_URL": settings.database_url})

        yield invoke
        get_settings.cache_clear()
        engine_for(settings.database_url).dispose()

    def test_imports_a_file_and_prints_the_record(
        self, weft: Any, tmp_path: Path, session: Session
    ) -> None:
        path = tmp_path / "factories.csv"
        path.write_text(GOOD_FACTORIES)

        result = weft("import", "factories", str(path))

        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert (record["kind"], record["filename"], record["status"]) == (
            "factories",
            "factories.csv",
            "succeeded",
        )
        assert record["counts"]["created"] == 2
        assert factory_rows(session) == [("BW-1", "Alpha", "BD"), ("BW-2", "Beta", "VN")]

    def test_a_bad_file_exits_1_and_lists_the_bad_rows(
        self, weft: Any, tmp_path: Path, session: Session
    ) -> None:
        path = tmp_path / "bad.csv"
        path.write_text(BAD_FACTORIES)

        result = weft("import", "factories", str(path))

        assert result.exit_code == 1
        assert json.loads(result.stdout)["status"] == "failed"
        assert "line 3, programme_code: Required." in result.stderr
        assert "line 4, country: String should match pattern" in result.stderr
        assert factory_rows(session) == []
