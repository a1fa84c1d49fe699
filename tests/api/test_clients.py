"""`/v1/clients`: the programme creates clients (the secret is shown once) and revokes them; and
`weft clients create` on the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from src.cli import app as cli
from src.cli import demo_banner
from src.config import Settings, get_settings
from src.db import engine_for
from src.models import Client
from src.models.organizations import OrgKind
from src.services.clients import BUYER_SCOPES, PARTNER_SCOPES
from src.services.demo import seed_demo
from tests.builders import (
    admin_headers,
    make_buyer,
    make_org,
    make_partner,
    make_supply_chain,
)


@pytest.fixture
def admin(client: TestClient, session: Session) -> dict[str, str]:
    return admin_headers(client, session)


def create(client: TestClient, admin: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/clients", json={"name": "Sourcing sync"} | body, headers=admin)


def token_response(client: TestClient, client_id: str, secret: str) -> Any:
    return client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )


class TestCreate:
    def test_answers_the_secret_once_and_it_works(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        chain = make_supply_chain(session, buyer)
        session.commit()
        response = create(
            client, admin, org_id=buyer.id, scopes=["factories:read"], supply_chains=[chain.id]
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {
            "id", "client_id", "client_secret", "org_id", "name", "scopes", "supply_chains",
            "created_at",
        }  # fmt: skip
        assert body["id"] == body["client_id"]
        assert body["id"].startswith("cli_")
        assert body["client_secret"].startswith("wsec_")
        assert response.headers["location"] == f"/v1/clients/{body['id']}"
        assert (body["org_id"], body["name"], body["scopes"], body["supply_chains"]) == (
            buyer.id,
            "Sourcing sync",
            ["factories:read"],
            [chain.id],
        )
        token = token_response(client, body["client_id"], body["client_secret"])
        assert token.status_code == 200
        assert token.json()["scope"] == "factories:read"

        detail = client.get(f"/v1/clients/{body['id']}", headers=admin)
        assert detail.status_code == 200
        assert "client_secret" not in detail.json()
        assert detail.json()["revoked_at"] is None
        listed = client.get(f"/v1/clients?org_id={buyer.id}", headers=admin).json()["data"]
        assert [c["id"] for c in listed] == [body["id"]]
        assert "client_secret" not in listed[0]

    def test_the_secret_is_stored_hashed(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        session.commit()
        body = create(client, admin, org_id=buyer.id).json()
        stored = session.get_one(Client, body["id"])
        assert body["client_secret"] not in stored.secret_hash

    @pytest.mark.parametrize(
        ("kind", "scopes"),
        [(OrgKind.buyer, list(BUYER_SCOPES)), (OrgKind.partner, list(PARTNER_SCOPES))],
    )
    def test_without_scopes_the_client_gets_all_its_kind_allows(
        self,
        client: TestClient,
        session: Session,
        admin: dict[str, str],
        kind: OrgKind,
        scopes: list[str],
    ) -> None:
        org = make_org(session, kind)
        session.commit()
        body = create(client, admin, org_id=org.id).json()
        assert body["scopes"] == scopes
        assert body["supply_chains"] == []

    def test_a_scope_the_kind_does_not_allow_is_422(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        session.commit()
        response = create(client, admin, org_id=buyer.id, scopes=["factories:read", "admin"])
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["scopes"]

    def test_another_organisations_chain_is_422(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        theirs = make_supply_chain(session, make_buyer(session))
        session.commit()
        response = create(client, admin, org_id=buyer.id, supply_chains=[theirs.id])
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "in": "body",
                "field": "supply_chains.0",
                "message": f"{theirs.id} is not a supply chain of {buyer.id}",
            }
        ]

    def test_a_partner_may_name_the_chains_of_buyers_it_acts_for(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        partner = make_partner(session, buyer)
        chain = make_supply_chain(session, buyer)
        session.commit()
        response = create(client, admin, org_id=partner.id, supply_chains=[chain.id])
        assert response.status_code == 201
        assert response.json()["supply_chains"] == [chain.id]

    def test_an_unknown_organization_is_422(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        response = create(client, admin, org_id="org_nope")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["org_id"]

    def test_an_empty_scope_list_is_422(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        session.commit()
        assert create(client, admin, org_id=buyer.id, scopes=[]).status_code == 422


class TestRevoke:
    def test_revoking_stops_the_live_token_at_once(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        buyer = make_buyer(session)
        session.commit()
        created = create(client, admin, org_id=buyer.id).json()
        token = token_response(client, created["id"], created["client_secret"]).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert client.get("/v1/me", headers=headers).status_code == 200

        response = client.delete(f"/v1/clients/{created['id']}", headers=admin)
        assert response.status_code == 204
        assert response.content == b""

        refused = client.get("/v1/me", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        again = token_response(client, created["id"], created["client_secret"])
        assert again.status_code == 401
        detail = client.get(f"/v1/clients/{created['id']}", headers=admin).json()
        assert detail["revoked_at"] is not None
        assert client.delete(f"/v1/clients/{created['id']}", headers=admin).status_code == 204

    def test_an_unknown_client_is_404(self, client: TestClient, admin: dict[str, str]) -> None:
        assert client.delete("/v1/clients/cli_nope", headers=admin).status_code == 404
        response = client.get("/v1/clients/cli_nope", headers=admin)
        assert response.status_code == 404
        assert response.json()["detail"] == "No client cli_nope."


class TestList:
    def test_pages(self, client: TestClient, session: Session, admin: dict[str, str]) -> None:
        buyer = make_buyer(session)
        session.commit()
        made = [create(client, admin, org_id=buyer.id).json()["id"] for _ in range(3)]
        first = client.get(f"/v1/clients?org_id={buyer.id}&limit=2", headers=admin).json()
        assert first["has_more"] is True
        rest = client.get(
            f"/v1/clients?org_id={buyer.id}&limit=2&cursor={first['next_cursor']}", headers=admin
        ).json()
        assert [c["id"] for c in first["data"] + rest["data"]] == made
        assert rest["has_more"] is False


class TestCommandLine:
    @pytest.fixture
    def weft(self, settings: Settings) -> Iterator[Any]:
        get_settings.cache_clear()
        runner = CliRunner()

        def invoke(*args: str) -> Any:
            return runner.invoke(cli, list(args), env={"WEFT_DATABASE_URL": settings.database_url})

        yield invoke
        get_settings.cache_clear()
        engine_for(settings.database_url).dispose()

    def test_creates_a_client_whose_secret_gets_a_token(
        self, weft: Any, client: TestClient, session: Session
    ) -> None:
        buyer = make_buyer(session)
        chain = make_supply_chain(session, buyer)
        session.commit()
        result = weft(
            "clients", "create", "--org", buyer.id, "--scopes", "factories:read events:read",
            "--supply-chain", chain.id, "--name", "nightly sync",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert printed["org_id"] == buyer.id
        assert printed["scopes"] == ["factories:read", "events:read"]
        assert printed["supply_chains"] == [chain.id]
        token = token_response(client, printed["client_id"], printed["client_secret"])
        assert token.status_code == 200
        me = client.get(
            "/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
        ).json()
        assert (me["client_name"], me["supply_chains"]) == ("nightly sync", [chain.id])

    def test_several_values_follow_one_flag_as_design_writes_them(
        self, weft: Any, session: Session
    ) -> None:
        buyer = make_buyer(session)
        chains = [make_supply_chain(session, buyer).id for _ in range(2)]
        session.commit()
        result = weft(
            "clients", "create", "--org", buyer.id, "--scopes", "factories:read", "events:read",
            "--supply-chain", *chains,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert printed["scopes"] == ["factories:read", "events:read"]
        assert sorted(printed["supply_chains"]) == sorted(chains)

    def test_the_demo_prints_every_demo_clients_working_credentials(
        self, client: TestClient, session: Session
    ) -> None:
        clients = seed_demo(session).clients
        session.commit()
        banner = demo_banner(clients, "http://127.0.0.1:8000", "fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ")
        for demo in clients:
            assert f"{demo['client_id']}:{demo['client_secret']}" in banner
            assert (
                token_response(client, demo["client_id"], demo["client_secret"]).status_code == 200
            )

    def test_refuses_a_scope_the_organisation_may_not_hold(
        self, weft: Any, session: Session
    ) -> None:
        buyer = make_buyer(session)
        session.commit()
        result = weft("clients", "create", "--org", buyer.id, "--scopes", "admin")
        assert result.exit_code == 1
        assert "Refused" in result.output

    def test_bootstraps_the_programme_from_an_empty_database(
        self, weft: Any, client: TestClient
    ) -> None:
        made = weft("organizations", "create", "--name", "Better Work", "--kind", "programme")
        assert made.exit_code == 0, made.output
        org = json.loads(made.stdout)
        assert (org["name"], org["kind"]) == ("Better Work", "programme")
        result = weft("clients", "create", "--org", org["id"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert "admin" in printed["scopes"]
        token = token_response(client, printed["client_id"], printed["client_secret"])
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        listed = client.get("/v1/organizations", headers=headers)
        assert [o["id"] for o in listed.json()["data"]] == [org["id"]]

    def test_refuses_an_unknown_kind(self, weft: Any) -> None:
        result = weft("organizations", "create", "--name", "X", "--kind", "supplier")
        assert result.exit_code == 1
        assert "Refused" in result.output
