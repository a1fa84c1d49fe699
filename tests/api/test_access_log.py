"""`GET /v1/factories/{id}/access-log`: the programme lists who read a factory's full findings."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from src.models.organizations import OrgKind
from src.services.access import Principal, log_full_disclosure
from src.services.clients import NewClient
from tests.builders import (
    admin_headers,
    bearer,
    make_buyer,
    make_client,
    make_factory,
    make_programme_client,
)


def principal_of(credentials: NewClient, kind: OrgKind = OrgKind.buyer) -> Principal:
    client = credentials.client
    return Principal(
        client_id=client.id,
        org_id=client.org_id,
        org_kind=kind,
        scopes=frozenset(client.scopes),
        supply_chain_ids=("*",),
    )


@pytest.fixture
def admin(client: TestClient, session: Session) -> dict[str, str]:
    return admin_headers(client, session)


class TestAccessLog:
    def test_lists_the_full_disclosure_reads_of_one_factory(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        factory, other = make_factory(session), make_factory(session)
        reader = make_client(session, make_buyer(session))
        who = principal_of(reader)
        log_full_disclosure(
            session, who, factory_id=factory.id, resource="assessment", resource_id="asm_1"
        )
        log_full_disclosure(
            session, who, factory_id=other.id, resource="assessment", resource_id="asm_2"
        )
        log_full_disclosure(
            session, who, factory_id=factory.id, resource="remediation_item", resource_id="rem_1"
        )
        session.commit()

        response = client.get(f"/v1/factories/{factory.id}/access-log", headers=admin)
        assert response.status_code == 200
        entries = response.json()["data"]
        assert [(e["resource"], e["resource_id"]) for e in entries] == [
            ("assessment", "asm_1"),
            ("remediation_item", "rem_1"),
        ]
        for entry in entries:
            assert (entry["factory_id"], entry["org_id"], entry["client_id"]) == (
                factory.id,
                reader.client.org_id,
                reader.client.id,
            )
            assert entry["created_at"].endswith("Z")

    def test_pages(self, client: TestClient, session: Session, admin: dict[str, str]) -> None:
        factory = make_factory(session)
        who = principal_of(make_client(session, make_buyer(session)))
        for n in range(3):
            log_full_disclosure(
                session, who, factory_id=factory.id, resource="assessment", resource_id=f"asm_{n}"
            )
        session.commit()
        url = f"/v1/factories/{factory.id}/access-log"
        first = client.get(f"{url}?limit=2", headers=admin)
        assert first.json()["has_more"] is True
        assert 'rel="next"' in first.headers["link"]
        rest = client.get(f"{url}?limit=2&cursor={first.json()['next_cursor']}", headers=admin)
        listed = [e["resource_id"] for e in first.json()["data"] + rest.json()["data"]]
        assert listed == ["asm_0", "asm_1", "asm_2"]
        assert rest.json()["has_more"] is False

    def test_the_programmes_own_reads_are_not_logged(
        self, client: TestClient, session: Session, admin: dict[str, str]
    ) -> None:
        factory = make_factory(session)
        staff = principal_of(make_programme_client(session), OrgKind.programme)
        log_full_disclosure(
            session, staff, factory_id=factory.id, resource="assessment", resource_id="asm_1"
        )
        session.commit()
        response = client.get(f"/v1/factories/{factory.id}/access-log", headers=admin)
        assert response.json()["data"] == []

    def test_an_unknown_factory_is_404(self, client: TestClient, admin: dict[str, str]) -> None:
        response = client.get("/v1/factories/fac_nope/access-log", headers=admin)
        assert response.status_code == 404
        assert response.json()["detail"] == "No factory with this id."

    def test_only_the_programme_reads_it(self, client: TestClient, session: Session) -> None:
        factory = make_factory(session)
        reader = make_client(session, make_buyer(session))
        session.commit()
        response = client.get(
            f"/v1/factories/{factory.id}/access-log", headers=bearer(client, reader)
        )
        assert response.status_code == 403
