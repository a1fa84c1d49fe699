"""`GET /v1/me`: the client, organisation, scopes, supply chains and subscription of a token."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlmodel import Session

from src.models.organizations import OrgKind
from tests.builders import (
    bearer,
    delegate,
    link,
    make_buyer,
    make_client,
    make_factory,
    make_org,
    make_programme_client,
    make_subscription,
    make_supply_chain,
)


class TestMe:
    def test_a_buyer_client_for_all_its_chains(self, client: TestClient, session: Session) -> None:
        buyer = make_org(session, OrgKind.buyer, name="Northwind Apparel")
        subscription = make_subscription(
            session, buyer, starts_on=dt.date(2020, 1, 1), ends_on=None
        )
        first, second = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
        make_supply_chain(session, make_buyer(session))
        caller = make_client(session, buyer, scopes=["factories:read", "events:read"])
        session.commit()
        response = client.get("/v1/me", headers=bearer(client, caller))
        assert response.status_code == 200
        assert response.json() == {
            "client_id": caller.client.id,
            "client_name": caller.client.name,
            "organization": {"id": buyer.id, "name": "Northwind Apparel", "kind": "buyer"},
            "scopes": ["events:read", "factories:read"],
            "supply_chains": sorted([first.id, second.id]),
            "all_supply_chains": True,
            "subscription": {
                "id": subscription.id,
                "org_id": buyer.id,
                "tier": "standard",
                "starts_on": "2020-01-01",
                "ends_on": None,
                "active": True,
                "created_at": subscription.created_at.isoformat().replace("+00:00", "Z"),
            },
        }

    def test_a_client_limited_to_one_chain(self, client: TestClient, session: Session) -> None:
        buyer = make_buyer(session)
        chain = make_supply_chain(session, buyer)
        make_supply_chain(session, buyer)
        caller = make_client(session, buyer, supply_chains=[chain])
        session.commit()
        body = client.get("/v1/me", headers=bearer(client, caller)).json()
        assert body["supply_chains"] == [chain.id]
        assert body["all_supply_chains"] is False

    def test_a_partner_reads_the_chains_of_the_buyers_it_acts_for(
        self, client: TestClient, session: Session
    ) -> None:
        partner = make_org(session, OrgKind.partner)
        buyer = make_buyer(session)
        delegate(session, buyer, partner)
        chain = make_supply_chain(session, buyer)
        make_supply_chain(session, make_buyer(session))
        caller = make_client(session, partner)
        session.commit()
        body = client.get("/v1/me", headers=bearer(client, caller)).json()
        assert body["organization"]["kind"] == "partner"
        assert body["supply_chains"] == [chain.id]
        assert body["subscription"] is None

    def test_the_programme(self, client: TestClient, session: Session) -> None:
        caller = make_programme_client(session)
        session.commit()
        body = client.get("/v1/me", headers=bearer(client, caller)).json()
        assert body["organization"]["kind"] == "programme"
        assert "admin" in body["scopes"]
        assert body["supply_chains"] == []
        assert body["all_supply_chains"] is True

    def test_the_running_subscription_is_shown_before_a_later_one(
        self, client: TestClient, session: Session
    ) -> None:
        buyer = make_buyer(session)  # running now
        today = dt.date.today()
        make_subscription(session, buyer, starts_on=today + dt.timedelta(days=300), ends_on=None)
        caller = make_client(session, buyer)
        session.commit()
        subscription = client.get("/v1/me", headers=bearer(client, caller)).json()["subscription"]
        assert subscription["starts_on"] == (today - dt.timedelta(days=30)).isoformat()
        assert subscription["active"] is True


class TestEndedSubscription:
    def test_the_token_is_issued_and_me_says_inactive_but_factories_are_hidden(
        self, client: TestClient, session: Session
    ) -> None:
        buyer = make_buyer(session, active=False)
        chain = make_supply_chain(session, buyer)
        factory = make_factory(session)
        link(session, chain, factory)
        caller = make_client(session, buyer)
        session.commit()
        headers = bearer(client, caller)
        me = client.get("/v1/me", headers=headers).json()
        assert me["subscription"]["active"] is False
        assert me["subscription"]["ends_on"] == (dt.date.today() - dt.timedelta(days=1)).isoformat()
        assert client.get("/v1/factories", headers=headers).json()["data"] == []
        detail = client.get(f"/v1/factories/{factory.id}", headers=headers)
        assert detail.status_code == 404
        assert detail.json()["detail"] == "No factory with this id."
