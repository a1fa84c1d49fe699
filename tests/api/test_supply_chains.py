"""`/v1/supply-chains` and their factory links: ownership, 404 for anyone else's chain, link rules
and the events they emit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from src.models import Event, Factory, Organization, SupplyChain
from src.services.clients import NewClient
from src.services.demo import seed_demo
from tests.builders import (
    admin_headers,
    bearer,
    demo_bearer,
    link,
    make_buyer,
    make_client,
    make_factory,
    make_partner,
    make_supply_chain,
)

TODAY = dt.date.today()


@dataclass
class World:
    north: Organization
    south: Organization
    chain_a: SupplyChain
    chain_b: SupplyChain
    south_chain: SupplyChain
    knit: Factory
    denim: Factory
    north_all: NewClient
    north_a_only: NewClient
    south_client: NewClient
    partner_client: NewClient


@pytest.fixture
def world(session: Session) -> World:
    north, south = make_buyer(session, name="North"), make_buyer(session, name="South")
    chain_a = make_supply_chain(session, north, name="Knitwear")
    chain_b = make_supply_chain(session, north, name="Denim")
    south_chain = make_supply_chain(session, south)
    knit = make_factory(
        session, name="Knit One", country="VN", os_id="VN2024000KNIT01", programme_code="BW-VN-1"
    )
    denim = make_factory(session, name="Denim Two", country="BD")
    world = World(
        north=north,
        south=south,
        chain_a=chain_a,
        chain_b=chain_b,
        south_chain=south_chain,
        knit=knit,
        denim=denim,
        north_all=make_client(session, north),
        north_a_only=make_client(session, north, supply_chains=[chain_a]),
        south_client=make_client(session, south),
        partner_client=make_client(session, make_partner(session, north)),
    )
    session.commit()
    return world


def ids(response: Any) -> list[str]:
    return [item["id"] for item in response.json()["data"]]


def events(session: Session, type_: str) -> list[Event]:
    session.expire_all()
    return list(session.exec(select(Event).where(col(Event.type) == type_)).all())


class TestChains:
    def test_each_caller_lists_only_the_chains_it_may_read(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        def listed(credentials: NewClient) -> list[str]:
            return ids(client.get("/v1/supply-chains", headers=bearer(client, credentials)))

        north = sorted([world.chain_a.id, world.chain_b.id])
        assert listed(world.north_all) == north
        assert listed(world.north_a_only) == [world.chain_a.id]
        assert listed(world.south_client) == [world.south_chain.id]
        assert listed(world.partner_client) == north
        admin = client.get("/v1/supply-chains", headers=admin_headers(client, session))
        assert ids(admin) == sorted([*north, world.south_chain.id])

    def test_the_list_pages(self, client: TestClient, world: World) -> None:
        headers = bearer(client, world.north_all)
        first = client.get("/v1/supply-chains?limit=1", headers=headers)
        assert first.json()["has_more"] is True
        assert 'rel="next"' in first.headers["link"]
        second = client.get(
            f"/v1/supply-chains?limit=1&cursor={first.json()['next_cursor']}", headers=headers
        )
        assert ids(first) + ids(second) == sorted([world.chain_a.id, world.chain_b.id])
        assert second.json()["has_more"] is False

    def test_detail(self, client: TestClient, world: World) -> None:
        response = client.get(
            f"/v1/supply-chains/{world.chain_a.id}", headers=bearer(client, world.north_all)
        )
        assert response.status_code == 200
        body = response.json()
        assert {k: body[k] for k in ("id", "org_id", "name", "description")} == {
            "id": world.chain_a.id,
            "org_id": world.north.id,
            "name": "Knitwear",
            "description": "",
        }

    @pytest.mark.parametrize(
        ("caller", "chain"),
        [
            ("south_client", "chain_a"),
            ("north_a_only", "chain_b"),
            ("partner_client", "south_chain"),
        ],
        ids=["another buyer's", "not in the token", "not delegated"],
    )
    def test_a_chain_the_caller_may_not_read_is_404_like_a_missing_one(
        self, client: TestClient, world: World, caller: str, chain: str
    ) -> None:
        headers = bearer(client, getattr(world, caller))
        chain_id = getattr(world, chain).id
        hidden = client.get(f"/v1/supply-chains/{chain_id}", headers=headers)
        missing = client.get("/v1/supply-chains/sc_missing", headers=headers)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == {
            "type": "https://weft.dev/problems/not-found",
            "title": "Not found",
            "status": 404,
            "detail": f"No supply chain {chain_id}.",
            "instance": f"/v1/supply-chains/{chain_id}",
        }
        assert missing.json()["detail"] == "No supply chain sc_missing."
        for path in ("factories", f"factories/{world.knit.id}"):
            nested = client.get(f"/v1/supply-chains/{chain_id}/{path}", headers=headers)
            assert (nested.status_code, nested.json()["detail"]) == (404, hidden.json()["detail"])


class TestWriteChains:
    def test_a_buyer_creates_its_own_chain(self, client: TestClient, world: World) -> None:
        headers = bearer(client, world.north_all)
        response = client.post(
            "/v1/supply-chains", json={"name": "Outerwear", "description": "AW27"}, headers=headers
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("sc_")
        assert (body["org_id"], body["name"], body["description"]) == (
            world.north.id,
            "Outerwear",
            "AW27",
        )
        assert response.headers["location"] == f"/v1/supply-chains/{body['id']}"
        assert client.get(response.headers["location"], headers=headers).status_code == 200

    def test_a_demo_buyer_creates_a_chain_and_links_a_factory_to_it(
        self, client: TestClient, session: Session
    ) -> None:
        demo = next(c for c in seed_demo(session).clients if c["org_kind"] == "buyer")
        factory_id = session.exec(select(Factory.id).order_by(col(Factory.id))).first()
        session.commit()
        headers = demo_bearer(client, demo)
        created = client.post("/v1/supply-chains", json={"name": "Outerwear"}, headers=headers)
        assert created.status_code == 201, created.text
        linked = client.post(
            f"/v1/supply-chains/{created.json()['id']}/factories",
            json={"factory_id": factory_id, "supplier_code": "OW-1"},
            headers=headers,
        )
        assert linked.status_code == 201, linked.text

    def test_a_client_limited_to_named_chains_cannot_create_one(
        self, client: TestClient, world: World
    ) -> None:
        response = client.post(
            "/v1/supply-chains", json={"name": "X"}, headers=bearer(client, world.north_a_only)
        )
        assert response.status_code == 403
        assert response.json()["type"] == "https://weft.dev/problems/forbidden"

    def test_a_buyer_cannot_create_for_another_buyer(
        self, client: TestClient, world: World
    ) -> None:
        response = client.post(
            "/v1/supply-chains",
            json={"name": "X", "org_id": world.south.id},
            headers=bearer(client, world.north_all),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "org_id"

    def test_the_programme_creates_for_a_named_buyer(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        admin = admin_headers(client, session)
        missing = client.post("/v1/supply-chains", json={"name": "X"}, headers=admin)
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "org_id"
        response = client.post(
            "/v1/supply-chains", json={"name": "X", "org_id": world.south.id}, headers=admin
        )
        assert response.status_code == 201
        assert response.json()["org_id"] == world.south.id

    def test_a_partner_lacks_the_write_scope(self, client: TestClient, world: World) -> None:
        response = client.post(
            "/v1/supply-chains", json={"name": "X"}, headers=bearer(client, world.partner_client)
        )
        assert response.status_code == 403
        assert response.json()["type"].endswith("insufficient-scope")

    def test_patch_renames(self, client: TestClient, world: World) -> None:
        response = client.patch(
            f"/v1/supply-chains/{world.chain_a.id}",
            json={"name": "Knit & jersey"},
            headers=bearer(client, world.north_all),
        )
        assert response.status_code == 200
        assert (response.json()["name"], response.json()["description"]) == ("Knit & jersey", "")
        assert response.json()["updated_at"] > response.json()["created_at"]

    def test_patch_refuses_null_and_unknown_fields(self, client: TestClient, world: World) -> None:
        headers = bearer(client, world.north_all)
        url = f"/v1/supply-chains/{world.chain_a.id}"
        assert client.patch(url, json={"name": None}, headers=headers).status_code == 422
        assert client.patch(url, json={"org_id": "org_x"}, headers=headers).status_code == 422

    def test_patch_of_another_buyers_chain_is_404(self, client: TestClient, world: World) -> None:
        response = client.patch(
            f"/v1/supply-chains/{world.chain_a.id}",
            json={"name": "Mine now"},
            headers=bearer(client, world.south_client),
        )
        assert response.status_code == 404


def link_url(chain: SupplyChain, factory: Factory | None = None) -> str:
    base = f"/v1/supply-chains/{chain.id}/factories"
    return base if factory is None else f"{base}/{factory.id}"


class TestLinks:
    @pytest.mark.parametrize(
        ("reference", "value"),
        [("factory_id", "id"), ("os_id", "os_id"), ("programme_code", "programme_code")],
    )
    def test_link_a_factory_by_any_of_its_ids(
        self, client: TestClient, session: Session, world: World, reference: str, value: str
    ) -> None:
        headers = bearer(client, world.north_all)
        response = client.post(
            link_url(world.chain_a),
            json={reference: getattr(world.knit, value), "supplier_code": "V-100"},
            headers=headers,
        )
        assert response.status_code == 201
        body = response.json()
        assert {k: body[k] for k in ("supply_chain_id", "factory", "supplier_code")} == {
            "supply_chain_id": world.chain_a.id,
            "factory": {"id": world.knit.id, "name": "Knit One", "country": "VN"},
            "supplier_code": "V-100",
        }
        assert (body["starts_on"], body["ends_on"]) == (TODAY.isoformat(), None)
        assert response.headers["location"] == link_url(world.chain_a, world.knit)
        [event] = events(session, "supply_chain.factory_linked")
        assert (event.factory_id, event.org_id) == (world.knit.id, world.north.id)
        assert event.data == {
            "supply_chain_id": world.chain_a.id,
            "org_id": world.north.id,
            "factory_id": world.knit.id,
            "supplier_code": "V-100",
        }

    def test_a_linked_factory_becomes_visible_and_unlinking_hides_it(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        headers = bearer(client, world.north_all)
        factory_url = f"/v1/factories/{world.denim.id}"
        assert client.get(factory_url, headers=headers).status_code == 404
        created = client.post(
            link_url(world.chain_b),
            json={"factory_id": world.denim.id, "supplier_code": "D-1"},
            headers=headers,
        )
        assert created.status_code == 201
        assert client.get(factory_url, headers=headers).status_code == 200

        deleted = client.delete(link_url(world.chain_b, world.denim), headers=headers)
        assert deleted.status_code == 204
        assert client.get(factory_url, headers=headers).status_code == 404
        assert client.get(link_url(world.chain_b, world.denim), headers=headers).status_code == 404
        [event] = events(session, "supply_chain.factory_unlinked")
        assert (event.factory_id, event.org_id) == (None, world.north.id)  # the owner is told
        assert event.data == {
            "supply_chain_id": world.chain_b.id,
            "org_id": world.north.id,
            "factory_id": world.denim.id,
            "supplier_code": "D-1",
        }

    def test_dates_are_kept(self, client: TestClient, world: World) -> None:
        response = client.post(
            link_url(world.chain_a),
            json={
                "factory_id": world.knit.id,
                "supplier_code": "V-1",
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
            },
            headers=bearer(client, world.north_all),
        )
        assert response.status_code == 201
        assert (response.json()["starts_on"], response.json()["ends_on"]) == (
            "2026-01-01",
            "2026-12-31",
        )

    def test_a_duplicate_link_is_409(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        link(session, world.chain_a, world.knit, supplier_code="V-1")
        session.commit()
        response = client.post(
            link_url(world.chain_a),
            json={"os_id": world.knit.os_id, "supplier_code": "V-2"},
            headers=bearer(client, world.north_all),
        )
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"Factory {world.knit.id} is already linked in supply chain {world.chain_a.id}."
        )
        assert events(session, "supply_chain.factory_linked") == []

    def test_a_supplier_code_is_unique_within_a_chain(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        link(session, world.chain_a, world.knit, supplier_code="V-1")
        session.commit()
        headers = bearer(client, world.north_all)
        clash = client.post(
            link_url(world.chain_a),
            json={"factory_id": world.denim.id, "supplier_code": "V-1"},
            headers=headers,
        )
        assert clash.status_code == 409
        assert clash.json()["detail"] == (
            f"Supplier code V-1 is already used in supply chain {world.chain_a.id}."
        )
        elsewhere = client.post(
            link_url(world.chain_b),
            json={"factory_id": world.denim.id, "supplier_code": "V-1"},
            headers=headers,
        )
        assert elsewhere.status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            {"supplier_code": "V-1"},
            {"factory_id": "x", "os_id": "y", "supplier_code": "V-1"},
            {"factory_id": "x"},
            {"factory_id": "x", "supplier_code": ""},
            {"factory_id": "x", "supplier_code": "V-1", "note": "extra"},
        ],
        ids=["no factory", "two references", "no supplier code", "empty code", "unknown field"],
    )
    def test_an_invalid_body_is_422(
        self, client: TestClient, world: World, body: dict[str, Any]
    ) -> None:
        response = client.post(
            link_url(world.chain_a), json=body, headers=bearer(client, world.north_all)
        )
        assert response.status_code == 422

    @pytest.mark.parametrize("reference", ["factory_id", "os_id", "programme_code"])
    def test_an_unknown_factory_is_422(
        self, client: TestClient, world: World, reference: str
    ) -> None:
        response = client.post(
            link_url(world.chain_a),
            json={reference: "nope", "supplier_code": "V-1"},
            headers=bearer(client, world.north_all),
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"in": "body", "field": reference, "message": f"no factory has {reference} nope"}
        ]

    def test_an_end_before_the_default_start_is_422(self, client: TestClient, world: World) -> None:
        response = client.post(
            link_url(world.chain_a),
            json={"factory_id": world.knit.id, "supplier_code": "V-1", "ends_on": "2020-01-01"},
            headers=bearer(client, world.north_all),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "ends_on"

    def test_list_and_detail_show_every_link_with_its_dates(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        link(session, world.chain_a, world.knit, supplier_code="K-1")
        link(session, world.chain_a, world.denim, supplier_code="D-1", ends_on=TODAY)
        session.commit()
        headers = bearer(client, world.north_a_only)
        first = client.get(f"{link_url(world.chain_a)}?limit=1", headers=headers).json()
        rest = client.get(
            f"{link_url(world.chain_a)}?limit=1&cursor={first['next_cursor']}", headers=headers
        ).json()
        listed = first["data"] + rest["data"]
        assert [item["factory"]["id"] for item in listed] == sorted([world.knit.id, world.denim.id])
        assert rest["has_more"] is False
        detail = client.get(link_url(world.chain_a, world.denim), headers=headers)
        assert detail.status_code == 200
        assert (detail.json()["supplier_code"], detail.json()["ends_on"]) == (
            "D-1",
            TODAY.isoformat(),
        )

    def test_a_partner_reads_the_links_of_a_buyer_it_acts_for(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        link(session, world.chain_a, world.knit, supplier_code="K-1")
        session.commit()
        response = client.get(link_url(world.chain_a), headers=bearer(client, world.partner_client))
        assert [item["supplier_code"] for item in response.json()["data"]] == ["K-1"]

    def test_another_buyers_chain_is_404_for_every_link_call(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        link(session, world.chain_a, world.knit)
        session.commit()
        headers = bearer(client, world.south_client)
        expected = f"No supply chain {world.chain_a.id}."
        calls = [
            client.get(link_url(world.chain_a), headers=headers),
            client.get(link_url(world.chain_a, world.knit), headers=headers),
            client.post(
                link_url(world.chain_a),
                json={"factory_id": world.denim.id, "supplier_code": "S-1"},
                headers=headers,
            ),
            client.delete(link_url(world.chain_a, world.knit), headers=headers),
        ]
        assert [(r.status_code, r.json()["detail"]) for r in calls] == [(404, expected)] * 4
        assert events(session, "supply_chain.factory_unlinked") == []

    def test_unlinking_a_factory_not_in_the_chain_is_404(
        self, client: TestClient, world: World
    ) -> None:
        response = client.delete(
            link_url(world.chain_a, world.knit), headers=bearer(client, world.north_all)
        )
        assert response.status_code == 404
        assert response.json()["detail"] == (
            f"Factory {world.knit.id} is not linked in supply chain {world.chain_a.id}."
        )

    def test_reading_links_needs_factories_read(self, client: TestClient, world: World) -> None:
        headers = bearer(client, world.north_all, scope="supply-chains:write")
        assert client.get(link_url(world.chain_a), headers=headers).status_code == 403
