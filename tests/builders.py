"""Typed builders for test data: each makes one row with believable defaults, flushes, returns it."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from src.etags import etag_for
from src.models import (
    Assessment,
    ComplianceSummary,
    Consent,
    Delegation,
    Factory,
    Organization,
    Subscription,
    SupplyChain,
    SupplyChainLink,
)
from src.models.assessments import AssessmentCreate, FindingInput
from src.models.organizations import OrgKind
from src.services.assessments import create_assessment, publish_assessment
from src.services.clients import NewClient, create_client
from src.services.surveys import write_responses

_counter = itertools.count(1)


def make_org(session: Session, kind: OrgKind = OrgKind.buyer, **overrides: Any) -> Organization:
    org = Organization(
        name=overrides.pop("name", f"{kind.value.title()} {next(_counter)}"), kind=kind, **overrides
    )
    session.add(org)
    session.flush()
    return org


def make_subscription(
    session: Session, org: Organization, *, active: bool = True, **overrides: Any
) -> Subscription:
    today = dt.date.today()
    defaults: dict[str, Any] = (
        {"starts_on": today - dt.timedelta(days=30), "ends_on": today + dt.timedelta(days=335)}
        if active
        else {"starts_on": today - dt.timedelta(days=400), "ends_on": today - dt.timedelta(days=1)}
    )
    subscription = Subscription(org_id=org.id, tier="standard", **(defaults | overrides))
    session.add(subscription)
    session.flush()
    return subscription


def make_buyer(session: Session, *, active: bool = True, **overrides: Any) -> Organization:
    org = make_org(session, OrgKind.buyer, **overrides)
    make_subscription(session, org, active=active)
    return org


def make_factory(session: Session, **overrides: Any) -> Factory:
    n = next(_counter)
    defaults: dict[str, Any] = {
        "name": f"Factory {n}",
        "country": "BD",
        "address": f"Plot {n}, Ashulia, Dhaka",
        "programme_code": f"BW-T-{n:05d}",
        "sector": "garment",
        "workers_total": 1200,
        "workers_women": 800,
        "status": "active",
        "enrolled_on": dt.date(2020, 1, 1),
    }
    factory = Factory(**(defaults | overrides))
    session.add(factory)
    session.flush()
    return factory


def make_supply_chain(session: Session, org: Organization, **overrides: Any) -> SupplyChain:
    chain = SupplyChain(
        org_id=org.id, name=overrides.pop("name", f"Chain {next(_counter)}"), **overrides
    )
    session.add(chain)
    session.flush()
    return chain


def link(
    session: Session, chain: SupplyChain, factory: Factory, **overrides: Any
) -> SupplyChainLink:
    defaults: dict[str, Any] = {
        "supplier_code": f"V-{next(_counter):05d}",
        "starts_on": dt.date.today() - dt.timedelta(days=10),
    }
    row = SupplyChainLink(supply_chain_id=chain.id, factory_id=factory.id, **(defaults | overrides))
    session.add(row)
    session.flush()
    return row


def grant_consent(session: Session, factory: Factory, org: Organization) -> Consent:
    consent = Consent(factory_id=factory.id, org_id=org.id)
    session.add(consent)
    session.flush()
    return consent


def delegate(session: Session, buyer: Organization, partner: Organization) -> Delegation:
    row = Delegation(buyer_org_id=buyer.id, partner_org_id=partner.id)
    session.add(row)
    session.flush()
    return row


def make_client(
    session: Session,
    org: Organization,
    *,
    scopes: list[str] | None = None,
    supply_chains: list[SupplyChain] = (),  # type: ignore[assignment]
) -> NewClient:
    return create_client(
        session,
        org_id=org.id,
        name=f"client {next(_counter)}",
        scopes=scopes,
        supply_chain_ids=[chain.id for chain in supply_chains],
    )


def make_programme_client(session: Session) -> NewClient:
    return make_client(session, make_org(session, OrgKind.programme))


def token_for(http: TestClient, credentials: NewClient, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    response = http.post(
        "/oauth/token", data=data, auth=(credentials.client.id, credentials.secret)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(http: TestClient, credentials: NewClient, scope: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(http, credentials, scope)}"}


def demo_bearer(http: TestClient, demo: dict[str, Any]) -> dict[str, str]:
    """A bearer header for a demo client, as the demo clients file lists it."""
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(demo["client_id"], demo["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def rate_buyer(
    session: Session,
    buyer: Organization,
    factories: Sequence[Factory],
    ratings: dict[str, int | Sequence[int]],
    *,
    period: str = "2026H1",
) -> None:
    """Each factory rates the buyer on each question: one rating for all, or one per factory."""
    write_responses(
        session,
        [
            (period, buyer.id, factory.id, question, r if isinstance(r, int) else r[index])
            for question, r in ratings.items()
            for index, factory in enumerate(factories)
        ],
    )


def make_assessment(
    session: Session,
    factory: Factory,
    findings: dict[str, bool],
    *,
    cycle: int = 1,
    publish: bool = True,
    **overrides: Any,
) -> Assessment:
    """An assessment answering each question code compliant (True) or not; published unless told.
    Cycle N is visited in March of 2024 + N."""
    visit_start = dt.date(2024 + cycle, 3, 10)
    defaults: dict[str, Any] = {
        "kind": "assessment",
        "announced": True,
        "visit_start": visit_start,
        "visit_end": visit_start + dt.timedelta(days=2),
    }
    data = AssessmentCreate(
        factory_id=factory.id,
        cycle=cycle,
        findings=[FindingInput(question=code, compliant=ok) for code, ok in findings.items()],
        **(defaults | overrides),
    )
    assessment = create_assessment(session, data=data)
    if publish:
        publish_assessment(session, assessment_id=assessment.id)
    session.flush()
    return assessment


def make_partner(session: Session, *acts_for: Organization, **overrides: Any) -> Organization:
    """A partner organisation that the given buyers delegated to."""
    partner = make_org(session, OrgKind.partner, **overrides)
    for buyer in acts_for:
        delegate(session, buyer, partner)
    return partner


def admin_headers(http: TestClient, session: Session) -> dict[str, str]:
    """A bearer header for a new programme client (commits, so the API sees it)."""
    credentials = make_programme_client(session)
    session.commit()
    return bearer(http, credentials)


def summary_row(
    factory_id: str, *, full_json: bytes = b"{}", public_json: bytes = b"{}", **overrides: Any
) -> ComplianceSummary:
    """A stored summary with the given answers (and their entity tags), for a test to add."""
    return ComplianceSummary(
        factory_id=factory_id, full_json=full_json, public_json=public_json,
        full_etag=etag_for(full_json), public_etag=etag_for(public_json), **overrides,
    )  # fmt: skip
