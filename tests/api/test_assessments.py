"""Assessments: drafts and their validation, the publish/retract state machine and its events,
and the consent-checked reads."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from src.models import AccessLogEntry, Assessment, Event, RemediationItem
from src.services.assessments import retract_assessment
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
from tests.statements import count_statements

FINDINGS = {"CL-CHL-01": True, "CL-CHL-03": False, "OS-MGT-01": False, "CO-MWA-01": True}


def draft_body(factory_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "factory_id": factory_id,
        "cycle": 1,
        "kind": "assessment",
        "announced": False,
        "visit_start": "2026-03-10",
        "visit_end": "2026-03-12",
        "findings": [
            {"question": "CL-CHL-01", "compliant": True, "note": None},
            {"question": "OS-MGT-01", "compliant": False, "note": "No OSH policy on file."},
            {"question": "CL-CHL-03", "compliant": False},
        ],
    } | overrides


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    """A factory linked to a consenting buyer and a non-consenting one; a hidden factory."""
    consenting, other = make_buyer(session), make_buyer(session)
    chain, other_chain = make_supply_chain(session, consenting), make_supply_chain(session, other)
    factory, hidden = make_factory(session), make_factory(session)
    link(session, chain, factory)
    link(session, other_chain, factory)
    grant_consent(session, factory, consenting)
    world = {
        "factory": factory,
        "hidden": hidden,
        "admin": make_programme_client(session),
        "reader": make_client(session, consenting, supply_chains=[chain]),
        "no_consent": make_client(session, other, supply_chains=[other_chain]),
        "consenting": consenting,
        "chain": chain,
    }
    session.commit()
    return world


def events(session: Session, *types: str) -> list[Event]:
    session.expire_all()
    return list(
        session.exec(select(Event).where(col(Event.type).in_(types)).order_by(col(Event.id))).all()
    )


class TestCreateDraft:
    def test_a_draft_is_created_with_its_findings(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        factory = world["factory"]
        response = client.post(
            "/v1/assessments", headers=bearer(client, world["admin"]), json=draft_body(factory.id)
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/assessments/{body['id']}"
        assert body["id"].startswith("asm_")
        assert {k: body[k] for k in ("factory_id", "catalogue_version", "cycle", "kind")} == {
            "factory_id": factory.id,
            "catalogue_version": "2026.1",
            "cycle": 1,
            "kind": "assessment",
        }
        assert (body["status"], body["announced"], body["published_at"]) == ("draft", False, None)
        assert (body["questions_asked"], body["non_compliant"]) == (3, 2)
        assert [
            (c["code"], [(p["code"], [f["question"] for f in p["findings"]]) for p in c["points"]])
            for c in body["clusters"]
        ] == [
            ("CL", [("CL-CHL", ["CL-CHL-01", "CL-CHL-03"])]),
            ("OS", [("OS-MGT", ["OS-MGT-01"])]),
        ]
        assert body["clusters"][1]["points"][0]["findings"][0] == {
            "question": "OS-MGT-01",
            "text": body["clusters"][1]["points"][0]["findings"][0]["text"],
            "critical": False,
            "public": False,
            "compliant": False,
            "note": "No OSH policy on file.",
            "remediation_item_id": None,
        }

    @pytest.mark.parametrize(
        ("change", "field", "message"),
        [
            (
                {"findings": [{"question": "CL-CHL-01", "compliant": True},
                              {"question": "XX-NOPE-01", "compliant": False}]},
                "findings.1.question",
                "XX-NOPE-01 is not in catalogue version 2026.1.",
            ),
            (
                {"findings": [{"question": "CL-CHL-01", "compliant": True},
                              {"question": "CL-CHL-03", "compliant": True},
                              {"question": "CL-CHL-03", "compliant": False}]},
                "findings.2.question",
                "CL-CHL-03 is answered twice.",
            ),
            (
                {"visit_end": "2026-03-09"},
                "visit_end",
                "visit_end is before visit_start.",
            ),
            (
                {"factory_id": "fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ"},
                "factory_id",
                "No factory fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ.",
            ),
            (
                {"catalogue_version": "1999.1"},
                "catalogue_version",
                "No catalogue version 1999.1.",
            ),
        ],
    )  # fmt: skip
    def test_invalid_drafts_name_the_field(
        self,
        client: TestClient,
        world: dict[str, Any],
        change: dict[str, Any],
        field: str,
        message: str,
    ) -> None:
        response = client.post(
            "/v1/assessments",
            headers=bearer(client, world["admin"]),
            json=draft_body(world["factory"].id) | change,
        )
        assert response.status_code == 422
        assert response.json()["type"] == "https://weft.dev/problems/validation-error"
        assert response.json()["errors"] == [{"in": "body", "field": field, "message": message}]

    def test_a_cycle_below_the_latest_published_one_is_refused(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        factory = world["factory"]
        make_assessment(session, factory, FINDINGS, cycle=3)
        session.commit()
        response = client.post(
            "/v1/assessments",
            headers=bearer(client, world["admin"]),
            json=draft_body(factory.id, cycle=2),
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "in": "body",
                "field": "cycle",
                "message": "Cycle 2 is lower than the factory's latest published cycle (3).",
            }
        ]
        same_cycle = client.post(
            "/v1/assessments",
            headers=bearer(client, world["admin"]),
            json=draft_body(factory.id, cycle=3, kind="follow_up"),
        )
        assert same_cycle.status_code == 201

    def test_every_problem_is_reported_at_once(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        response = client.post(
            "/v1/assessments",
            headers=bearer(client, world["admin"]),
            json=draft_body(
                world["factory"].id,
                visit_end="2026-03-01",
                findings=[{"question": "NOPE", "compliant": True}],
            ),
        )
        assert [e["field"] for e in response.json()["errors"]] == [
            "visit_end",
            "findings.0.question",
        ]

    def test_unknown_fields_and_empty_findings_are_refused(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["admin"])
        extra = client.post(
            "/v1/assessments", headers=headers, json=draft_body(world["factory"].id, grade="A")
        )
        empty = client.post(
            "/v1/assessments", headers=headers, json=draft_body(world["factory"].id, findings=[])
        )
        assert (extra.status_code, extra.json()["errors"][0]["field"]) == (422, "grade")
        assert (empty.status_code, empty.json()["errors"][0]["field"]) == (422, "findings")

    def test_the_same_visit_twice_is_a_conflict(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["admin"])
        body = draft_body(world["factory"].id)
        assert client.post("/v1/assessments", headers=headers, json=body).status_code == 201
        again = client.post("/v1/assessments", headers=headers, json=body)
        assert again.status_code == 409
        assert again.json()["type"] == "https://weft.dev/problems/conflict"

    def test_only_the_programme_writes(self, client: TestClient, world: dict[str, Any]) -> None:
        response = client.post(
            "/v1/assessments",
            headers=bearer(client, world["reader"]),
            json=draft_body(world["factory"].id),
        )
        assert response.status_code == 403
        assert response.json()["type"] == "https://weft.dev/problems/insufficient-scope"


class TestStateMachine:
    def create(self, client: TestClient, world: dict[str, Any]) -> str:
        response = client.post(
            "/v1/assessments",
            headers=bearer(client, world["admin"]),
            json=draft_body(world["factory"].id),
        )
        assessment_id: str = response.json()["id"]
        return assessment_id

    def test_publish_then_retract(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["admin"])
        assessment_id = self.create(client, world)
        published = client.post(f"/v1/assessments/{assessment_id}/publish", headers=headers)
        assert published.status_code == 200
        assert published.json()["status"] == "published"
        assert published.json()["published_at"] is not None
        assert (published.json()["questions_asked"], published.json()["non_compliant"]) == (3, 2)
        items = session.exec(
            select(RemediationItem).where(RemediationItem.assessment_id == assessment_id)
        ).all()
        assert len(items) == 2
        retracted = client.post(f"/v1/assessments/{assessment_id}/retract", headers=headers)
        assert retracted.status_code == 200
        assert retracted.json()["status"] == "retracted"
        assert retracted.json()["retracted_at"] is not None
        factory_id = world["factory"].id
        emitted = events(
            session, "assessment.published", "assessment.retracted", "compliance_summary.updated"
        )
        assert [(e.type, e.factory_id) for e in emitted] == [
            ("assessment.published", factory_id),
            ("compliance_summary.updated", factory_id),
            ("assessment.retracted", factory_id),
            ("compliance_summary.updated", factory_id),
        ]
        assert emitted[0].data == {
            "assessment_id": assessment_id,
            "factory_id": factory_id,
            "cycle": 1,
            "kind": "assessment",
            "catalogue_version": "2026.1",
            "visit_start": "2026-03-10",
            "visit_end": "2026-03-12",
        }

    @pytest.mark.parametrize(
        ("moves", "refused"),
        [
            (["publish"], "publish"),
            ([], "retract"),
            (["publish", "retract"], "publish"),
            (["publish", "retract"], "retract"),
        ],
    )
    def test_other_moves_are_conflicts(
        self, client: TestClient, world: dict[str, Any], moves: list[str], refused: str
    ) -> None:
        headers = bearer(client, world["admin"])
        assessment_id = self.create(client, world)
        for move in moves:
            response = client.post(f"/v1/assessments/{assessment_id}/{move}", headers=headers)
            assert response.status_code == 200
        response = client.post(f"/v1/assessments/{assessment_id}/{refused}", headers=headers)
        assert response.status_code == 409
        assert response.json()["type"] == "https://weft.dev/problems/conflict"

    def test_publishing_below_a_cycle_published_meanwhile_is_a_conflict(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        factory = world["factory"]
        draft = make_assessment(session, factory, FINDINGS, cycle=1, publish=False)
        make_assessment(session, factory, FINDINGS, cycle=2)
        session.commit()
        response = client.post(
            f"/v1/assessments/{draft.id}/publish", headers=bearer(client, world["admin"])
        )
        assert response.status_code == 409
        assert response.json()["detail"] == (
            "Cycle 1 is lower than the factory's latest published cycle (2)."
        )
        session.expire_all()
        assert session.get(Assessment, draft.id).status == "draft"

    def test_an_unknown_assessment_is_a_404(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        response = client.post(
            "/v1/assessments/asm_01ZZZZZZZZZZZZZZZZZZZZZZZZ/publish",
            headers=bearer(client, world["admin"]),
        )
        assert response.status_code == 404


@pytest.fixture
def assessed(session: Session, world: dict[str, Any]) -> dict[str, Any]:
    factory = world["factory"]
    world["first"] = make_assessment(session, factory, FINDINGS, cycle=1)
    world["retracted"] = make_assessment(session, factory, FINDINGS, cycle=2)
    world["draft"] = make_assessment(
        session, factory, FINDINGS, cycle=2, publish=False, kind="follow_up"
    )
    retract_assessment(session, assessment_id=world["retracted"].id)
    world["hidden_assessment"] = make_assessment(session, world["hidden"], FINDINGS)
    session.commit()
    return world


def access_log(session: Session) -> list[tuple[str, str, str]]:
    session.expire_all()
    return [
        (row.resource, row.resource_id, row.factory_id)
        for row in session.exec(select(AccessLogEntry).order_by(col(AccessLogEntry.id))).all()
    ]


class TestReads:
    def test_a_consenting_buyer_lists_published_assessments_only(
        self, client: TestClient, session: Session, assessed: dict[str, Any]
    ) -> None:
        factory = assessed["factory"]
        response = client.get(
            f"/v1/factories/{factory.id}/assessments", headers=bearer(client, assessed["reader"])
        )
        assert response.status_code == 200
        assert [a["id"] for a in response.json()["data"]] == [assessed["first"].id]
        assert response.json()["has_more"] is False
        assert access_log(session) == [("assessments", factory.id, factory.id)]

    def test_the_programme_also_sees_drafts_and_retracted_ones(
        self, client: TestClient, session: Session, assessed: dict[str, Any]
    ) -> None:
        factory = assessed["factory"]
        response = client.get(
            f"/v1/factories/{factory.id}/assessments", headers=bearer(client, assessed["admin"])
        )
        assert [(a["id"], a["status"]) for a in response.json()["data"]] == [
            (assessed["first"].id, "published"),
            (assessed["retracted"].id, "retracted"),
            (assessed["draft"].id, "draft"),
        ]
        assert access_log(session) == []

    def test_pages(self, client: TestClient, assessed: dict[str, Any]) -> None:
        headers = bearer(client, assessed["admin"])
        url = f"/v1/factories/{assessed['factory'].id}/assessments"
        first = client.get(f"{url}?limit=2", headers=headers)
        assert first.json()["has_more"] is True
        assert 'rel="next"' in first.headers["link"]
        second = client.get(f"{url}?limit=2&cursor={first.json()['next_cursor']}", headers=headers)
        assert [a["id"] for a in second.json()["data"]] == [assessed["draft"].id]
        assert second.json()["has_more"] is False

    def test_without_consent_reads_are_403(
        self, client: TestClient, session: Session, assessed: dict[str, Any]
    ) -> None:
        headers = bearer(client, assessed["no_consent"])
        listing = client.get(f"/v1/factories/{assessed['factory'].id}/assessments", headers=headers)
        detail = client.get(f"/v1/assessments/{assessed['first'].id}", headers=headers)
        for response in (listing, detail):
            assert response.status_code == 403
            assert response.json()["type"] == "https://weft.dev/problems/consent-required"
        assert access_log(session) == []

    def test_a_hidden_factory_and_its_assessments_are_404(
        self, client: TestClient, assessed: dict[str, Any]
    ) -> None:
        headers = bearer(client, assessed["reader"])
        listing = client.get(f"/v1/factories/{assessed['hidden'].id}/assessments", headers=headers)
        detail = client.get(f"/v1/assessments/{assessed['hidden_assessment'].id}", headers=headers)
        assert listing.status_code == detail.status_code == 404
        assert detail.json()["detail"] == f"No assessment {assessed['hidden_assessment'].id}."

    @pytest.mark.parametrize("name", ["draft", "retracted"])
    def test_unpublished_assessments_are_404_outside_the_programme(
        self, client: TestClient, assessed: dict[str, Any], name: str
    ) -> None:
        assessment_id = assessed[name].id
        reader = client.get(
            f"/v1/assessments/{assessment_id}", headers=bearer(client, assessed["reader"])
        )
        admin = client.get(
            f"/v1/assessments/{assessment_id}", headers=bearer(client, assessed["admin"])
        )
        assert (reader.status_code, admin.status_code) == (404, 200)

    def test_detail_groups_findings_and_links_remediation_items(
        self, client: TestClient, session: Session, assessed: dict[str, Any]
    ) -> None:
        first = assessed["first"]
        response = client.get(
            f"/v1/assessments/{first.id}", headers=bearer(client, assessed["reader"])
        )
        assert response.status_code == 200
        body = response.json()
        items = {
            item.finding_id: item.id
            for item in session.exec(
                select(RemediationItem).where(RemediationItem.assessment_id == first.id)
            ).all()
        }
        findings = [
            (c["code"], p["code"], f["question"], f["compliant"], f["remediation_item_id"])
            for c in body["clusters"]
            for p in c["points"]
            for f in p["findings"]
        ]
        assert [f[:4] for f in findings] == [
            ("CL", "CL-CHL", "CL-CHL-01", True),
            ("CL", "CL-CHL", "CL-CHL-03", False),
            ("CO", "CO-MWA", "CO-MWA-01", True),
            ("OS", "OS-MGT", "OS-MGT-01", False),
        ]
        assert [f[4] is not None for f in findings] == [False, True, False, True]
        assert {f[4] for f in findings if f[4]} == set(items.values())
        assert (body["questions_asked"], body["non_compliant"]) == (4, 2)
        assert access_log(session) == [("assessment", first.id, assessed["factory"].id)]

    def test_reading_needs_the_compliance_scope(
        self, client: TestClient, assessed: dict[str, Any]
    ) -> None:
        response = client.get(
            f"/v1/assessments/{assessed['first'].id}",
            headers=bearer(client, assessed["reader"], scope="factories:read"),
        )
        assert response.status_code == 403
        assert response.json()["type"] == "https://weft.dev/problems/insufficient-scope"


class TestNoQueryPerRow:
    def test_a_page_of_one_and_a_page_of_four_cost_the_same_statements(
        self, client: TestClient, session: Session, engine: Engine, world: dict[str, Any]
    ) -> None:
        factory, other = world["factory"], make_factory(session)
        link(session, world["chain"], other)
        grant_consent(session, other, world["consenting"])
        make_assessment(session, other, FINDINGS)
        for cycle in range(1, 5):
            make_assessment(session, factory, FINDINGS, cycle=cycle)
        session.commit()
        headers = bearer(client, world["reader"])
        assert client.get("/v1/me", headers=headers).status_code == 200  # verify the token first
        counts = []
        for path in (
            f"/v1/factories/{other.id}/assessments",
            f"/v1/factories/{factory.id}/assessments",
            f"/v1/factories/{other.id}/remediation-items",
            f"/v1/factories/{factory.id}/remediation-items",
        ):
            with count_statements(engine) as statements:
                assert client.get(path, headers=headers).status_code == 200
            counts.append(len(statements))
        assert counts[0] == counts[1]
        assert counts[2] == counts[3]
