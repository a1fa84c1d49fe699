"""`/v1/consents`: the programme grants and revokes a factory's consent to full disclosure; both
take effect at once and emit events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from src.models import Event, Factory, Organization
from src.models.organizations import OrgKind
from src.services.clients import NewClient
from tests.builders import (
    admin_headers,
    bearer,
    grant_consent,
    link,
    make_assessment,
    make_buyer,
    make_client,
    make_factory,
    make_org,
    make_supply_chain,
)

FINDINGS = {"CL-CHL-01": False, "OS-MGT-01": True}


@dataclass
class World:
    buyer: Organization
    factory: Factory
    reader: NewClient
    admin: dict[str, str]


@pytest.fixture
def world(client: TestClient, session: Session) -> World:
    buyer = make_buyer(session)
    factory = make_factory(session)
    link(session, make_supply_chain(session, buyer), factory)
    make_assessment(session, factory, FINDINGS)
    reader = make_client(session, buyer)
    return World(buyer, factory, reader, admin_headers(client, session))


def events(session: Session) -> list[tuple[str, dict[str, Any], str | None, str | None]]:
    session.expire_all()
    rows = session.exec(
        select(Event).where(col(Event.type).startswith("consent.")).order_by(col(Event.id))
    ).all()
    return [(e.type, e.data, e.factory_id, e.org_id) for e in rows]


def disclosure(client: TestClient, world: World) -> str:
    response = client.get(
        f"/v1/factories/{world.factory.id}/compliance-summary",
        headers=bearer(client, world.reader),
    )
    assert response.status_code == 200
    value: str = response.json()["disclosure"]
    return value


class TestGrantAndRevoke:
    def test_grant_then_revoke_take_effect_at_once(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        assert disclosure(client, world) == "public"
        response = client.post(
            "/v1/consents",
            json={"factory_id": world.factory.id, "org_id": world.buyer.id},
            headers=world.admin,
        )
        assert response.status_code == 201
        consent = response.json()
        assert consent["id"].startswith("cns_")
        assert response.headers["location"] == f"/v1/consents/{consent['id']}"
        assert {k: consent[k] for k in ("factory_id", "org_id", "revoked_at", "active")} == {
            "factory_id": world.factory.id,
            "org_id": world.buyer.id,
            "revoked_at": None,
            "active": True,
        }
        assert disclosure(client, world) == "full"

        revoked = client.delete(f"/v1/consents/{consent['id']}", headers=world.admin)
        assert revoked.status_code == 204
        assert disclosure(client, world) == "public"
        detail = client.get(f"/v1/consents/{consent['id']}", headers=world.admin).json()
        assert detail["active"] is False
        assert detail["revoked_at"] is not None

        data = {
            "consent_id": consent["id"],
            "factory_id": world.factory.id,
            "org_id": world.buyer.id,
        }
        assert events(session) == [
            ("consent.granted", data, world.factory.id, world.buyer.id),
            ("consent.revoked", data, world.factory.id, world.buyer.id),
        ]

    def test_revoking_twice_is_a_no_op(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        consent = grant_consent(session, world.factory, world.buyer)
        session.commit()
        for _ in range(2):
            response = client.delete(f"/v1/consents/{consent.id}", headers=world.admin)
            assert response.status_code == 204
        assert [event[0] for event in events(session)] == ["consent.revoked"]

    def test_an_active_consent_for_the_same_pair_is_409(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        existing = grant_consent(session, world.factory, world.buyer)
        session.commit()
        body = {"factory_id": world.factory.id, "org_id": world.buyer.id}
        response = client.post("/v1/consents", json=body, headers=world.admin)
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"Factory {world.factory.id} already consents to {world.buyer.id} ({existing.id})."
        )
        assert events(session) == []
        client.delete(f"/v1/consents/{existing.id}", headers=world.admin)
        assert client.post("/v1/consents", json=body, headers=world.admin).status_code == 201

    @pytest.mark.parametrize("kind", [OrgKind.partner, OrgKind.programme])
    def test_only_a_buyer_receives_consent(
        self, client: TestClient, session: Session, world: World, kind: OrgKind
    ) -> None:
        org = make_org(session, kind)
        session.commit()
        response = client.post(
            "/v1/consents",
            json={"factory_id": world.factory.id, "org_id": org.id},
            headers=world.admin,
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"in": "body", "field": "org_id", "message": f"{org.id} is not a buyer organization"}
        ]

    def test_an_unknown_factory_is_422(self, client: TestClient, world: World) -> None:
        response = client.post(
            "/v1/consents",
            json={"factory_id": "fac_nope", "org_id": world.buyer.id},
            headers=world.admin,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "factory_id"

    def test_unknown_consents_are_404(self, client: TestClient, world: World) -> None:
        assert client.get("/v1/consents/cns_nope", headers=world.admin).status_code == 404
        response = client.delete("/v1/consents/cns_nope", headers=world.admin)
        assert response.status_code == 404
        assert response.json()["detail"] == "No consent cns_nope."


class TestList:
    def test_filters_and_pages(self, client: TestClient, session: Session, world: World) -> None:
        other = make_factory(session)
        first = grant_consent(session, world.factory, world.buyer)
        second = grant_consent(session, other, world.buyer)
        third = grant_consent(session, world.factory, make_buyer(session))
        session.commit()
        client.delete(f"/v1/consents/{second.id}", headers=world.admin)

        def listed(query: str) -> list[str]:
            response = client.get(f"/v1/consents?{query}", headers=world.admin)
            assert response.status_code == 200
            return [c["id"] for c in response.json()["data"]]

        assert listed("") == [first.id, second.id, third.id]
        assert listed(f"factory_id={world.factory.id}") == [first.id, third.id]
        assert listed(f"org_id={world.buyer.id}") == [first.id, second.id]
        assert listed("active=true") == [first.id, third.id]
        assert listed("active=false") == [second.id]
        page = client.get("/v1/consents?limit=2", headers=world.admin).json()
        assert page["has_more"] is True
        rest = client.get(f"/v1/consents?limit=2&cursor={page['next_cursor']}", headers=world.admin)
        assert [c["id"] for c in rest.json()["data"]] == [third.id]

    def test_a_buyer_may_not_list_consents(self, client: TestClient, world: World) -> None:
        response = client.get("/v1/consents", headers=bearer(client, world.reader))
        assert response.status_code == 403
