"""`GET /v1/factories/{id}/compliance-summary`: the stored bytes, full with consent, public
without, 404 for a factory the caller does not see."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from src.api.self_served import ServedAsIs
from src.db import utcnow
from src.etags import etag_for
from src.models import Client, ComplianceSummary, Consent
from src.models.compliance_summaries import ComplianceSummaryRead
from tests.api.test_assessments import access_log
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

FINDINGS = {"CL-CHL-01": False, "CL-CHL-03": False, "OS-MGT-01": True, "OS-MGT-02": True}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    consenting, other = make_buyer(session), make_buyer(session)
    chain, other_chain = make_supply_chain(session, consenting), make_supply_chain(session, other)
    factory, unassessed, hidden = (make_factory(session) for _ in range(3))
    for linked in (factory, unassessed):
        link(session, chain, linked)
        link(session, other_chain, linked)
    consent = grant_consent(session, factory, consenting)
    grant_consent(session, unassessed, consenting)
    make_assessment(session, factory, FINDINGS)
    make_assessment(session, hidden, FINDINGS)
    world = {
        "factory": factory,
        "unassessed": unassessed,
        "hidden": hidden,
        "consent": consent,
        "admin": make_programme_client(session),
        "reader": make_client(session, consenting, supply_chains=[chain]),
        "no_consent": make_client(session, other, supply_chains=[other_chain]),
    }
    session.commit()
    return world


def url(factory: Any) -> str:
    return f"/v1/factories/{factory.id}/compliance-summary"


def stored(session: Session, factory_id: str) -> ComplianceSummary:
    session.expire_all()
    row = session.get(ComplianceSummary, factory_id)
    assert row is not None
    return row


class TestDisclosure:
    def test_with_consent_the_full_summary_is_served_as_stored(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        factory = world["factory"]
        response = client.get(url(factory), headers=bearer(client, world["reader"]))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == stored(session, factory.id).full_json
        body = response.json()
        assert (body["disclosure"], body["risk_band"]) == ("full", "critical")
        assert body["remediation"]["total"] == 2
        assert access_log(session) == [("compliance_summary", factory.id, factory.id)]

    def test_without_consent_the_public_summary_is_served(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        factory = world["factory"]
        response = client.get(url(factory), headers=bearer(client, world["no_consent"]))
        assert response.status_code == 200
        assert response.content == stored(session, factory.id).public_json
        body = response.json()
        assert (body["disclosure"], body["risk_band"], body["remediation"]) == (
            "public",
            "critical",
            None,
        )
        assert [c["points"] for c in body["clusters"]] == [None, None]
        assert access_log(session) == []

    def test_a_revoked_consent_takes_effect_at_once(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["reader"])
        assert client.get(url(world["factory"]), headers=headers).json()["disclosure"] == "full"
        consent = session.get(Consent, world["consent"].id)
        consent.revoked_at = utcnow()
        session.commit()
        assert client.get(url(world["factory"]), headers=headers).json()["disclosure"] == "public"

    def test_a_revoked_client_is_refused_at_once_by_its_one_statement(
        self, client: TestClient, session: Session, engine: Engine, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["reader"])
        assert client.get(url(world["factory"]), headers=headers).status_code == 200
        with count_statements(engine) as statements:
            assert client.get(url(world["factory"]), headers=headers).status_code == 200
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
        revoked = session.get(Client, world["reader"].client.id)
        revoked.revoked_at = utcnow()
        session.commit()
        for target in (world["factory"], world["hidden"]):
            refused = client.get(url(target), headers=headers)
            assert refused.status_code == 401
            assert refused.json()["detail"] == "The client behind this token has been revoked."

    def test_the_programme_reads_the_full_summary_without_a_log_entry(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        response = client.get(url(world["hidden"]), headers=bearer(client, world["admin"]))
        assert response.json()["disclosure"] == "full"
        assert access_log(session) == []

    def test_a_factory_the_caller_does_not_see_is_a_404_like_a_missing_one(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["reader"])
        hidden = client.get(url(world["hidden"]), headers=headers)
        missing = client.get(
            "/v1/factories/fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ/compliance-summary", headers=headers
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"] == "No factory with this id."

    def test_reading_needs_the_compliance_scope(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        response = client.get(
            url(world["factory"]), headers=bearer(client, world["reader"], scope="factories:read")
        )
        assert response.status_code == 403


class TestBeforeAnyAssessment:
    @pytest.mark.parametrize(
        ("reader", "disclosure"), [("reader", "full"), ("no_consent", "public")]
    )
    def test_the_summary_says_so_with_nulls(
        self, client: TestClient, world: dict[str, Any], reader: str, disclosure: str
    ) -> None:
        factory = world["unassessed"]
        response = client.get(url(factory), headers=bearer(client, world[reader]))
        assert response.status_code == 200
        body = response.json()
        assert body == {
            "factory_id": factory.id,
            "disclosure": disclosure,
            "assessment": None,
            "previous_assessment": None,
            "risk_band": None,
            "previous_risk_band": None,
            "non_compliance": None,
            "clusters": [],
            "critical_issues": [],
            "remediation": None,
            "updated_at": body["updated_at"],
        }


class TestServing:
    def test_conditional_get(self, client: TestClient, world: dict[str, Any]) -> None:
        headers = bearer(client, world["reader"])
        first = client.get(url(world["factory"]), headers=headers)
        again = client.get(
            url(world["factory"]), headers=headers | {"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304

    def test_the_entity_tag_is_the_one_stored_with_the_answer(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        row = stored(session, world["factory"].id)
        assert (row.full_etag, row.public_etag) == (
            etag_for(row.full_json),
            etag_for(row.public_json),
        )
        row.full_etag, row.public_etag = '"stored-full"', '"stored-public"'
        session.add(row)
        session.commit()
        response = client.get(url(world["factory"]), headers=bearer(client, world["reader"]))
        assert response.headers["etag"] in {'"stored-full"', '"stored-public"'}

    def test_the_answer_is_documented_in_openapi(self, client: TestClient) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        operation = paths["/v1/factories/{factory_id}/compliance-summary"]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ComplianceSummaryRead"
        }
        assert set(operation["responses"]) >= {"200", "401", "403", "404"}
        # The route reads its caller and `factory_id` itself; its declaration must say what
        # FastAPI writes for the same parameter on a declared route, and the scope it checks.
        assert operation["parameters"] == paths["/v1/factories/{factory_id}"]["get"]["parameters"]
        assert operation["security"] == [{"OAuth2ClientCredentials": ["compliance:read"]}]

    def test_full_and_public_bodies_match_the_documented_schema(
        self, session: Session, world: dict[str, Any]
    ) -> None:
        row = stored(session, world["factory"].id)
        for raw in (row.full_json, row.public_json):
            assert ComplianceSummaryRead.model_validate(json.loads(raw)).factory_id == (
                world["factory"].id
            )

    def test_its_route_class_refuses_an_endpoint_that_needs_fastapi_to_solve_anything(
        self,
    ) -> None:
        async def wants_a_query_parameter(request: Request, page: int) -> Response:
            return Response(f"{request.url.path} {page}")

        app = FastAPI()
        with pytest.raises(TypeError, match="must take only the Request"):
            app.router.add_api_route("/x", wants_a_query_parameter, route_class_override=ServedAsIs)
