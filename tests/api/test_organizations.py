"""`/v1/organizations` and their subscriptions: the programme's register."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from src.models import Delegation
from src.models.organizations import OrgKind
from tests.builders import admin_headers, bearer, make_buyer, make_client, make_org, make_partner


@pytest.fixture
def admin(client: TestClient, session: Session) -> dict[str, str]:
    return admin_headers(client, session)


def problem_fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


class TestCreate:
    def test_a_buyer(self, client: TestClient, admin: dict[str, str]) -> None:
        response = client.post(
            "/v1/organizations", json={"name": "Northwind", "kind": "buyer"}, headers=admin
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("org_")
        assert response.headers["location"] == f"/v1/organizations/{body['id']}"
        assert {k: body[k] for k in ("name", "kind", "delegations", "subscription")} == {
            "name": "Northwind",
            "kind": "buyer",
            "delegations": [],
            "subscription": None,
        }

    def test_a_partner_acting_for_buyers_creates_delegations(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        first, second = make_buyer(session), make_buyer(session)
        session.commit()
        response = client.post(
            "/v1/organizations",
            json={"name": "Loom Platform", "kind": "partner", "acts_for": [first.id, second.id]},
            headers=admin,
        )
        assert response.status_code == 201
        partner_id = response.json()["id"]
        assert sorted(
            (d["partner_org_id"], d["buyer_org_id"]) for d in response.json()["delegations"]
        ) == sorted([(partner_id, first.id), (partner_id, second.id)])
        rows = session.exec(select(Delegation).where(Delegation.partner_org_id == partner_id))
        assert {row.buyer_org_id for row in rows} == {first.id, second.id}

    def test_only_a_partner_acts_for_buyers(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        session.commit()
        response = client.post(
            "/v1/organizations",
            json={"name": "X", "kind": "buyer", "acts_for": [buyer.id]},
            headers=admin,
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["acts_for"]

    def test_a_partner_acts_only_for_buyers(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer, other_partner = make_buyer(session), make_org(session, OrgKind.partner)
        session.commit()
        response = client.post(
            "/v1/organizations",
            json={"name": "X", "kind": "partner", "acts_for": [buyer.id, other_partner.id]},
            headers=admin,
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "in": "body",
                "field": "acts_for.1",
                "message": f"{other_partner.id} is not a buyer organization",
            }
        ]

    @pytest.mark.parametrize(
        "body",
        [{"name": "X", "kind": "supplier"}, {"name": "", "kind": "buyer"}, {"kind": "buyer"}],
        ids=["unknown kind", "empty name", "no name"],
    )
    def test_an_invalid_body_is_422(
        self, client: TestClient, admin: dict[str, str], body: dict[str, Any]
    ) -> None:
        response = client.post("/v1/organizations", json=body, headers=admin)
        assert response.status_code == 422

    def test_unknown_fields_are_rejected(self, client: TestClient, admin: dict[str, str]) -> None:
        response = client.post(
            "/v1/organizations", json={"name": "X", "kind": "buyer", "tier": "gold"}, headers=admin
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["tier"]


class TestRead:
    def test_list_pages_and_filters_by_kind(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyers = [make_buyer(session).id for _ in range(3)]
        make_org(session, OrgKind.partner)
        session.commit()
        first = client.get("/v1/organizations?kind=buyer&limit=2", headers=admin)
        assert first.status_code == 200
        assert first.json()["has_more"] is True
        assert 'rel="next"' in first.headers["link"]
        cursor = first.json()["next_cursor"]
        second = client.get(f"/v1/organizations?kind=buyer&limit=2&cursor={cursor}", headers=admin)
        assert second.json()["has_more"] is False
        listed = [o["id"] for o in first.json()["data"] + second.json()["data"]]
        assert listed == buyers
        everyone = client.get("/v1/organizations", headers=admin).json()["data"]
        assert {o["kind"] for o in everyone} == {"buyer", "partner", "programme"}

    def test_detail_shows_delegations_and_the_running_subscription(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        partner = make_partner(session, buyer)
        session.commit()
        response = client.get(f"/v1/organizations/{buyer.id}", headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert [(d["partner_org_id"], d["buyer_org_id"]) for d in body["delegations"]] == [
            (partner.id, buyer.id)
        ]
        assert body["subscription"]["active"] is True
        assert body["subscription"]["tier"] == "standard"
        partner_view = client.get(f"/v1/organizations/{partner.id}", headers=admin).json()
        assert partner_view["delegations"] == body["delegations"]

    def test_an_unknown_organization_is_404(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        response = client.get("/v1/organizations/org_nope", headers=admin)
        assert response.status_code == 404
        assert response.json()["detail"] == "No organization org_nope."


class TestSubscriptions:
    def test_add_and_list(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_org(session, OrgKind.buyer)
        session.commit()
        url = f"/v1/organizations/{buyer.id}/subscriptions"
        today = dt.date.today()
        response = client.post(
            url,
            json={"tier": "premium", "starts_on": str(today), "ends_on": str(today)},
            headers=admin,
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("sub_")
        assert {k: body[k] for k in ("org_id", "tier", "starts_on", "ends_on", "active")} == {
            "org_id": buyer.id,
            "tier": "premium",
            "starts_on": str(today),
            "ends_on": str(today),
            "active": True,
        }
        listed = client.get(url, headers=admin).json()
        assert [s["id"] for s in listed["data"]] == [body["id"]]
        detail = client.get(f"/v1/organizations/{buyer.id}", headers=admin).json()
        assert detail["subscription"]["id"] == body["id"]

    def test_a_subscription_ending_before_it_starts_is_422(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_org(session, OrgKind.buyer)
        session.commit()
        response = client.post(
            f"/v1/organizations/{buyer.id}/subscriptions",
            json={"tier": "standard", "starts_on": "2026-06-01", "ends_on": "2026-05-31"},
            headers=admin,
        )
        assert response.status_code == 422
        assert "ends_on must be on or after starts_on" in response.json()["detail"]

    @pytest.mark.parametrize("kind", [OrgKind.partner, OrgKind.programme])
    def test_only_buyers_subscribe(
        self, client: TestClient, session: Session, admin: dict[str, str], kind: OrgKind
    ) -> None:
        org = make_org(session, kind)
        session.commit()
        response = client.post(
            f"/v1/organizations/{org.id}/subscriptions",
            json={"tier": "standard", "starts_on": "2026-06-01"},
            headers=admin,
        )
        assert response.status_code == 422
        assert response.json()["detail"] == f"Only buyers subscribe; {org.id} is a {kind.value}."

    def test_an_unknown_organization_is_404(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        url = "/v1/organizations/org_nope/subscriptions"
        assert client.get(url, headers=admin).status_code == 404
        body = {"tier": "standard", "starts_on": "2026-06-01"}
        assert client.post(url, json=body, headers=admin).status_code == 404


class TestAdminOnly:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v1/organizations"),
            ("POST", "/v1/organizations"),
            ("GET", "/v1/organizations/org_x"),
            ("GET", "/v1/organizations/org_x/subscriptions"),
            ("POST", "/v1/organizations/org_x/subscriptions"),
        ],
    )
    def test_a_buyer_is_403(
        self, client: TestClient, session: Session, method: str, path: str
    ) -> None:
        caller = make_client(session, make_buyer(session))
        session.commit()
        response = client.request(method, path, headers=bearer(client, caller), json={})
        assert response.status_code == 403
        assert response.json()["type"] == "https://weft.dev/problems/insufficient-scope"

    def test_no_token_is_401(self, client: TestClient) -> None:
        assert client.get("/v1/organizations").status_code == 401
