"""The access matrix: every demo client × every demo factory × every read endpoint family, the
expected status derived from the access rules (computed here from the raw tables, independently of
`src.services.access`), and hidden factories answering exactly like missing ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session

from src.services.demo import seed_demo
from tests.builders import demo_bearer

MISSING_FACTORY = "fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ"


class Rules:
    """The access rules of DESIGN.md, read off the tables with plain SQL."""

    def __init__(self, connection: Any) -> None:
        today = dt.date.today()
        self.today = today
        rows = lambda sql: connection.execute(text(sql)).all()  # noqa: E731
        self.kind = dict(rows("SELECT id, kind FROM organizations"))
        self.chain_owner = dict(rows("SELECT id, org_id FROM supply_chains"))
        self.delegated = {
            (p, b) for p, b in rows("SELECT partner_org_id, buyer_org_id FROM delegations")
        }
        self.subscribed = {
            org
            for org, starts, ends in rows("SELECT org_id, starts_on, ends_on FROM subscriptions")
            if _date(starts) <= today and (ends is None or _date(ends) >= today)
        }
        self.links = [
            (chain, factory)
            for chain, factory, starts, ends in rows(
                "SELECT supply_chain_id, factory_id, starts_on, ends_on FROM supply_chain_links"
            )
            if _date(starts) <= today and (ends is None or _date(ends) >= today)
        ]
        self.consents = set(
            rows("SELECT factory_id, org_id FROM consents WHERE revoked_at IS NULL")
        )
        self.factories = [f for (f,) in rows("SELECT id FROM factories ORDER BY id")]
        self.latest_assessment = dict(
            rows(
                "SELECT factory_id, max(id) FROM assessments WHERE status = 'published' "
                "GROUP BY factory_id"
            )
        )

    def readable_chains(self, client: dict[str, Any]) -> set[str]:
        org = client["org_id"]
        if self.kind[org] == "programme":
            return set(self.chain_owner)
        owners = {org} | {b for p, b in self.delegated if p == org}
        named = set(client["supply_chains"]) or set(self.chain_owner)
        return {c for c in named if self.chain_owner[c] in owners}

    def seeing_chains(self, client: dict[str, Any], factory: str) -> set[str]:
        """The chains through which the client sees the factory."""
        return {
            chain
            for chain, linked in self.links
            if linked == factory
            and chain in self.readable_chains(client)
            and self.chain_owner[chain] in self.subscribed
        }

    def visible(self, client: dict[str, Any], factory: str) -> bool:
        return self.kind[client["org_id"]] == "programme" or bool(
            self.seeing_chains(client, factory)
        )

    def consented(self, client: dict[str, Any], factory: str) -> bool:
        return self.kind[client["org_id"]] == "programme" or any(
            (factory, self.chain_owner[chain]) in self.consents
            for chain in self.seeing_chains(client, factory)
        )

    def expected(self, client: dict[str, Any], factory: str, family: str) -> int:
        if not self.visible(client, factory):
            return 404
        if family in ("factory", "summary"):
            return 200
        return 200 if self.consented(client, factory) else 403


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def test_every_client_every_factory_every_read_and_hidden_is_missing(
    client: TestClient, session: Session, engine: Engine
) -> None:
    demo_clients = seed_demo(session).clients
    session.commit()
    with engine.connect() as connection:
        rules = Rules(connection)
    assert {c["org_kind"] for c in demo_clients} == {"programme", "buyer", "partner"}
    mismatches: list[str] = []
    outcomes: set[tuple[str, int]] = set()
    for demo in demo_clients:
        headers = demo_bearer(client, demo)
        for factory in rules.factories:
            assessment = rules.latest_assessment.get(factory, "asm_01ZZZZZZZZZZZZZZZZZZZZZZZZ")
            urls = {
                "factory": f"/v1/factories/{factory}",
                "summary": f"/v1/factories/{factory}/compliance-summary",
                "assessments": f"/v1/factories/{factory}/assessments",
                "assessment": f"/v1/assessments/{assessment}",
                "remediation": f"/v1/factories/{factory}/remediation-items",
            }
            for family, url in urls.items():
                response = client.get(url, headers=headers)
                want = rules.expected(demo, factory, family)
                outcomes.add((family, response.status_code))
                if response.status_code != want:
                    mismatches.append(
                        f"{demo['name']} {family} {factory}: {response.status_code}, want {want}"
                    )
                elif want == 403:
                    assert response.json()["type"].endswith("/consent-required")
                elif family == "summary" and want == 200:
                    disclosure = "full" if rules.consented(demo, factory) else "public"
                    assert response.json().get("disclosure") == disclosure, response.text[:300]
        for chain in rules.chain_owner:
            response = client.get(f"/v1/supply-chains/{chain}/compliance", headers=headers)
            want = 200 if chain in rules.readable_chains(demo) else 404
            if response.status_code != want:
                mismatches.append(f"{demo['name']} aggregate {chain}: {response.status_code}")
    assert mismatches == []
    # the demo exercises every outcome: visible, consent required, hidden
    assert {("assessments", 200), ("assessments", 403), ("assessments", 404)} <= outcomes
    check_hidden_answers_like_missing(client, rules, demo_clients)


def _comparable(response: Any) -> tuple[int, str, dict[str, Any]]:
    body = {k: v for k, v in response.json().items() if k != "instance"}
    return response.status_code, response.headers["content-type"], body


def check_hidden_answers_like_missing(
    client: TestClient, rules: Rules, demo_clients: list[dict[str, Any]]
) -> None:
    """A hidden factory's 404 is the missing id's 404: status, type, body but `instance`."""
    for demo in demo_clients:
        if demo["org_kind"] == "programme":
            continue
        hidden = [f for f in rules.factories if not rules.visible(demo, f)]
        assert hidden, demo["name"]
        headers = demo_bearer(client, demo)
        for suffix in ("", "/compliance-summary", "/assessments", "/remediation-items"):
            missing = client.get(f"/v1/factories/{MISSING_FACTORY}{suffix}", headers=headers)
            for factory in hidden[:3]:
                response = client.get(f"/v1/factories/{factory}{suffix}", headers=headers)
                assert _comparable(response) == _comparable(missing), (demo["name"], suffix)
                assert response.content.replace(factory.encode(), b"X") == missing.content.replace(
                    MISSING_FACTORY.encode(), b"X"
                )
