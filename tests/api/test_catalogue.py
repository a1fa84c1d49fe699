"""`GET /v1/catalogue`: versions, structure, and results that keep the version they were
assessed against."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete
from sqlmodel import Session, col

from src.db import transaction
from src.models import CatalogueVersion, Cluster, CompliancePoint, Question
from src.services.catalogue import CATALOGUE_FILE, load_catalogue
from tests.builders import (
    bearer,
    grant_consent,
    link,
    make_assessment,
    make_buyer,
    make_client,
    make_factory,
    make_programme_client,
    make_supply_chain,
)
from tests.conftest import _empty_tables

CURRENT = "2026.1"


@contextmanager
def extra_catalogue(
    engine: Engine,
    session: Session,
    version: str,
    published_on: dt.date,
    changes: dict[str, dict[str, Any]],
) -> Iterator[None]:
    """Loads a copy of the shipped catalogue as `version`, with `changes` applied per question
    code; removes it (and every row that refers to it) afterwards, since catalogue tables
    outlive a test. The test's `session` is ended first so that it holds no lock."""
    document = copy.deepcopy(json.loads(CATALOGUE_FILE.read_text()))
    document["version"], document["published_on"] = version, published_on.isoformat()
    for cluster in document["clusters"]:
        for point in cluster["points"]:
            for question in point["questions"]:
                question.update(changes.get(question["code"], {}))
    with transaction(engine) as loading:
        load_catalogue(loading, document)
    try:
        yield
    finally:
        session.rollback()
        _empty_tables(engine)
        with transaction(engine) as cleaning:
            for table in (Question, CompliancePoint, Cluster, CatalogueVersion):
                cleaning.execute(delete(table).where(col(table.version) == version))


def headers_for(client: TestClient, session: Session) -> dict[str, str]:
    credentials = make_client(session, make_buyer(session), scopes=["factories:read"])
    session.commit()
    return bearer(client, credentials)


class TestCurrentVersion:
    def test_any_token_reads_the_current_catalogue(
        self, client: TestClient, session: Session
    ) -> None:
        response = client.get("/v1/catalogue", headers=headers_for(client, session))
        assert response.status_code == 200
        body = response.json()
        assert (body["version"], body["published_on"], body["current"]) == (
            CURRENT,
            "2026-01-15",
            True,
        )
        assert body["versions"] == [{"version": CURRENT, "published_on": "2026-01-15"}]
        assert [c["code"] for c in body["clusters"]] == [
            "CL", "DI", "FL", "FA", "CO", "CT", "OS", "WT",
        ]  # fmt: skip
        assert [c["category"] for c in body["clusters"]] == ["core_labour_standards"] * 4 + [
            "working_conditions"
        ] * 4
        questions = [q for c in body["clusters"] for p in c["points"] for q in p["questions"]]
        assert len(questions) == 122
        assert body["clusters"][0]["points"][0] == {
            "code": "CL-CHL",
            "name": "Child Labourers",
            "questions": [
                {
                    "code": "CL-CHL-01",
                    "text": "Are there workers at the factory under the age of 15?",
                    "critical": True,
                    "public": True,
                },
                {
                    "code": "CL-CHL-02",
                    "text": "Are there workers at the factory under the legal minimum working age?",
                    "critical": True,
                    "public": True,
                },
                {
                    "code": "CL-CHL-03",
                    "text": "Does the employer verify the age of every worker before hiring, "
                    "using reliable documentation?",
                    "critical": False,
                    "public": False,
                },
            ],
        }

    def test_a_named_version(self, client: TestClient, session: Session) -> None:
        response = client.get("/v1/catalogue?version=2026.1", headers=headers_for(client, session))
        assert response.status_code == 200
        assert response.json()["version"] == CURRENT

    def test_an_unknown_version_is_a_404(self, client: TestClient, session: Session) -> None:
        response = client.get("/v1/catalogue?version=1999.9", headers=headers_for(client, session))
        assert response.status_code == 404
        assert response.json()["type"] == "https://weft.dev/problems/not-found"
        assert response.json()["detail"] == "No catalogue version 1999.9."

    def test_a_token_is_required(self, client: TestClient) -> None:
        assert client.get("/v1/catalogue").status_code == 401


class TestNewVersion:
    CHANGED = "CL-CHL-03"
    NEW_TEXT = "Does the employer keep a verified proof of age for every worker?"

    def test_a_newer_version_becomes_current_and_leaves_old_results_alone(
        self, client: TestClient, session: Session, engine: Engine
    ) -> None:
        buyer = make_buyer(session)
        chain = make_supply_chain(session, buyer)
        factory = make_factory(session)
        link(session, chain, factory)
        grant_consent(session, factory, buyer)
        old = make_assessment(session, factory, {self.CHANGED: False, "CL-CHL-01": True})
        reader = make_client(session, buyer, supply_chains=[chain])
        admin = make_programme_client(session)
        session.commit()
        headers = bearer(client, reader)
        summary_before = client.get(
            f"/v1/factories/{factory.id}/compliance-summary", headers=headers
        )
        detail_before = client.get(f"/v1/assessments/{old.id}", headers=headers)

        changes = {self.CHANGED: {"text": self.NEW_TEXT, "critical": True, "public": True}}
        with extra_catalogue(engine, session, "2027.1", dt.date(2027, 1, 10), changes):
            catalogue = client.get("/v1/catalogue", headers=headers).json()
            assert (catalogue["version"], catalogue["current"]) == ("2027.1", True)
            assert catalogue["versions"] == [
                {"version": "2027.1", "published_on": "2027-01-10"},
                {"version": CURRENT, "published_on": "2026-01-15"},
            ]
            assert catalogue["clusters"][0]["points"][0]["questions"][2]["text"] == self.NEW_TEXT
            older = client.get(f"/v1/catalogue?version={CURRENT}", headers=headers).json()
            assert older["current"] is False
            assert older["clusters"][0]["points"][0]["questions"][2]["critical"] is False

            summary_after = client.get(
                f"/v1/factories/{factory.id}/compliance-summary", headers=headers
            )
            detail_after = client.get(f"/v1/assessments/{old.id}", headers=headers)
            assert summary_after.content == summary_before.content
            assert detail_after.json() == detail_before.json()
            assert detail_after.json()["catalogue_version"] == CURRENT

            # A new draft is checked against (and defaults to) the new version.
            draft = client.post(
                "/v1/assessments",
                headers=bearer(client, admin),
                json={
                    "factory_id": factory.id,
                    "cycle": 2,
                    "visit_start": "2027-02-01",
                    "visit_end": "2027-02-02",
                    "findings": [{"question": self.CHANGED, "compliant": False}],
                },
            )
            assert draft.status_code == 201, draft.text
            assert draft.json()["catalogue_version"] == "2027.1"
            finding = draft.json()["clusters"][0]["points"][0]["findings"][0]
            assert (finding["text"], finding["critical"]) == (self.NEW_TEXT, True)
