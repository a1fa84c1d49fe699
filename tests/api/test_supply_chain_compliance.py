"""`/v1/supply-chains/{id}/compliance`: the aggregate, its disclosure rules, its CSV, its cost."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from src.models import (
    Assessment,
    Factory,
    Finding,
    Question,
    RemediationItem,
    Subscription,
    SupplyChainLink,
)
from src.models.compliance_summaries import encode_cluster_counts
from src.models.supply_chain_compliance import SupplyChainCompliance
from src.prepared_reads import Reader
from src.services.supply_chain_compliance import _ChainRead, _open_critical_issues
from tests.api.test_access_log import principal_of
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
    summary_row,
)
from tests.statements import count_statements

VISIT = dt.date(2026, 3, 10)


def summarise(
    session: Session,
    factory: Factory,
    *,
    band: str,
    previous: str | None = None,
    clusters: dict[str, tuple[int, int]] | None = None,
    open_issues: tuple[str, ...] = (),
) -> None:
    """Stores a summary as publishing would, of a cycle-2 assessment with open remediation items
    on `open_issues`."""
    assessment = open_items(session, factory, open_issues, cycle=2)
    session.add(
        summary_row(
            factory.id,
            assessment_id=assessment.id,
            risk_band=band,
            previous_risk_band=previous,
            cycle=2,
            open_critical_count=len(open_issues),
            cluster_counts=encode_cluster_counts(clusters or {}),
        )
    )
    session.flush()


def open_items(
    session: Session, factory: Factory, codes: tuple[str, ...], cycle: int
) -> Assessment:
    """A published assessment with an open remediation item on each question in `codes`."""
    assessment = Assessment(
        factory_id=factory.id,
        catalogue_version="2026.1",
        cycle=cycle,
        kind="assessment",
        visit_start=VISIT.replace(year=VISIT.year - 2 + cycle),
        visit_end=VISIT.replace(year=VISIT.year - 2 + cycle),
        status="published",
    )
    session.add(assessment)
    session.flush()
    for code in codes:
        question = session.exec(select(Question).where(Question.code == code)).one()
        finding = Finding(assessment_id=assessment.id, question_id=question.id, compliant=False)
        session.add(finding)
        session.flush()
        session.add(
            RemediationItem(
                factory_id=factory.id,
                assessment_id=assessment.id,
                finding_id=finding.id,
                question_id=question.id,
            )
        )
    session.flush()
    return assessment


def first_question(session: Session, *, critical: bool, public: bool) -> str:
    return session.exec(
        select(Question.code).where(Question.critical == critical, Question.public == public)
    ).first()


@pytest.fixture
def chain_world(session: Session) -> dict[str, object]:
    buyer = make_buyer(session)
    chain = make_supply_chain(session, buyer)
    critical_public = first_question(session, critical=True, public=True)
    a, b, c, d = (
        make_factory(session, name=name) for name in ("Alpha", "Bravo", "Charlie", "Delta")
    )
    for factory in (a, b, c, d):
        link(session, chain, factory)
    summarise(
        session,
        a,
        band="critical",
        previous="medium",
        clusters={"CL": (10, 2), "CO": (20, 5)},
        open_issues=(critical_public,),
    )
    summarise(session, b, band="low", previous="low", clusters={"CL": (10, 0), "CO": (10, 1)})
    open_items(session, b, (critical_public,), cycle=1)  # an earlier cycle's item: not current
    summarise(session, c, band="medium", previous="high", clusters={"CO": (10, 4)})
    other = make_buyer(session)
    world = {
        "buyer": make_client(session, buyer),
        "buyer_org": buyer,
        "other": make_client(session, other),
        "admin": make_programme_client(session),
        "chain": chain,
        "factories": (a, b, c, d),
        "critical_public": critical_public,
    }
    session.commit()
    return world


class TestAggregate:
    def test_bands_weighted_cluster_rates_critical_issues_and_worsened(
        self, client: TestClient, chain_world: dict[str, object]
    ) -> None:
        chain = chain_world["chain"]
        a, _, _, _ = chain_world["factories"]
        response = client.get(
            f"/v1/supply-chains/{chain.id}/compliance", headers=bearer(client, chain_world["buyer"])
        )
        assert response.status_code == 200
        body = response.json()
        # Encoded without the model: it must still be exactly the documented schema.
        documented = SupplyChainCompliance.model_validate_json(response.content)
        assert documented.model_dump(mode="json") == body
        assert body["factories"] == 4
        assert body["risk_bands"] == {
            "low": 1,
            "medium": 1,
            "high": 0,
            "critical": 1,
            "unassessed": 1,
        }
        clusters = {cluster["code"]: cluster for cluster in body["clusters"]}
        assert clusters["CL"] | {"name": None} == {
            "code": "CL",
            "name": None,
            "asked": 20,
            "non_compliant": 2,
            "rate": 0.1,
        }
        assert clusters["CO"]["rate"] == round(10 / 40, 4)
        assert clusters["WT"] == {
            "code": "WT",
            "name": "Working Time",
            "asked": 0,
            "non_compliant": 0,
            "rate": None,
        }
        assert [issue["factory_id"] for issue in body["open_critical_issues"]] == [a.id]
        issue = body["open_critical_issues"][0]
        assert issue["question"] == chain_world["critical_public"]
        assert issue["age_days"] == (dt.date.today() - VISIT).days
        assert body["worsened"] == [
            {
                "factory_id": a.id,
                "factory_name": "Alpha",
                "previous_risk_band": "medium",
                "risk_band": "critical",
            }
        ]

    def test_a_published_assessments_open_critical_issue_is_listed(
        self, client: TestClient, session: Session, chain_world: dict[str, object]
    ) -> None:
        # Publishing writes its remediation items in one statement, past the ORM's flush events.
        chain = chain_world["chain"]
        delta = chain_world["factories"][3]
        critical = chain_world["critical_public"]
        compliant = first_question(session, critical=False, public=True)
        make_assessment(session, delta, {critical: False, compliant: False})
        session.commit()
        body = client.get(
            f"/v1/supply-chains/{chain.id}/compliance", headers=bearer(client, chain_world["buyer"])
        ).json()
        listed = [
            (issue["factory_id"], issue["question"]) for issue in body["open_critical_issues"]
        ]
        assert (delta.id, critical) in listed
        assert (delta.id, compliant) not in listed

    def test_another_organisations_chain_is_a_404(
        self, client: TestClient, chain_world: dict[str, object]
    ) -> None:
        chain = chain_world["chain"]
        response = client.get(
            f"/v1/supply-chains/{chain.id}/compliance", headers=bearer(client, chain_world["other"])
        )
        assert response.status_code == 404
        missing = client.get(
            "/v1/supply-chains/sc_01ZZZZZZZZZZZZZZZZZZZZZZZZ/compliance",
            headers=bearer(client, chain_world["other"]),
        )
        assert response.json()["title"] == missing.json()["title"]

    def test_critical_issues_on_non_public_questions_need_consent(
        self, client: TestClient, session: Session, chain_world: dict[str, object]
    ) -> None:
        # the catalogue flags every critical question public; make one private for this test
        private = first_question(session, critical=False, public=False)
        chain = chain_world["chain"]
        _, _, _, delta = chain_world["factories"]
        session.execute(
            Question.__table__.update().where(Question.code == private).values(critical=True)
        )
        summarise(session, delta, band="critical", open_issues=(private,))
        session.commit()
        try:
            url = f"/v1/supply-chains/{chain.id}/compliance"
            headers = bearer(client, chain_world["buyer"])
            without = client.get(url, headers=headers).json()["open_critical_issues"]
            assert private not in [issue["question"] for issue in without]
            grant_consent(session, delta, chain_world["buyer_org"])
            session.commit()
            with_consent = client.get(url, headers=headers).json()["open_critical_issues"]
            assert private in [issue["question"] for issue in with_consent]
        finally:
            session.execute(
                Question.__table__.update().where(Question.code == private).values(critical=False)
            )
            session.commit()

    def test_an_ended_link_leaves_the_aggregate(
        self, client: TestClient, session: Session, chain_world: dict[str, object]
    ) -> None:
        chain = chain_world["chain"]
        alpha = chain_world["factories"][0]
        session.execute(
            SupplyChainLink.__table__.update()
            .where(SupplyChainLink.factory_id == alpha.id)
            .values(ends_on=dt.date.today() - dt.timedelta(days=1))
        )
        session.commit()
        body = client.get(
            f"/v1/supply-chains/{chain.id}/compliance", headers=bearer(client, chain_world["buyer"])
        ).json()
        assert body["factories"] == 3
        assert body["risk_bands"]["critical"] == 0
        assert body["open_critical_issues"] == []

    def test_a_lapsed_subscription_shows_no_factory(
        self, client: TestClient, session: Session, chain_world: dict[str, object]
    ) -> None:
        chain = chain_world["chain"]
        session.execute(
            Subscription.__table__.update()
            .where(Subscription.org_id == chain_world["buyer_org"].id)
            .values(ends_on=dt.date.today() - dt.timedelta(days=1))
        )
        session.commit()
        headers = bearer(client, chain_world["buyer"])
        body = client.get(f"/v1/supply-chains/{chain.id}/compliance", headers=headers).json()
        assert body["factories"] == 0
        assert body["open_critical_issues"] == []
        assert all(cluster["asked"] == 0 for cluster in body["clusters"])
        exported = client.get(
            f"/v1/supply-chains/{chain.id}/compliance", headers=headers | {"Accept": "text/csv"}
        )
        assert exported.text.count("\n") == 1  # the header only
        admin = bearer(client, chain_world["admin"])
        seen_by_admin = client.get(f"/v1/supply-chains/{chain.id}/compliance", headers=admin)
        assert seen_by_admin.json()["factories"] == 4

    def test_an_issue_of_a_factory_linked_after_the_chain_was_read_waits_for_the_next_read(
        self, session: Session, chain_world: dict[str, object]
    ) -> None:
        # PostgreSQL runs each statement on its own snapshot: the critical-issues query may see a
        # link that the factories query before it did not.
        principal = principal_of(chain_world["buyer"])
        read = _ChainRead.of(principal, chain_world["chain"].id, factories_show=True)
        reader = Reader.of_session(session)
        alpha = chain_world["factories"][0]
        everyone = {factory.id: factory.name for factory in chain_world["factories"]}
        seen = _open_critical_issues(reader, read, everyone)
        assert [issue["factory_id"] for issue in seen] == [alpha.id]
        without_alpha = {key: name for key, name in everyone.items() if key != alpha.id}
        assert _open_critical_issues(reader, read, without_alpha) == []


class TestCsv:
    def test_csv_lists_the_chains_factories_with_their_figures(
        self, client: TestClient, chain_world: dict[str, object]
    ) -> None:
        chain = chain_world["chain"]
        response = client.get(
            f"/v1/supply-chains/{chain.id}/compliance",
            headers=bearer(client, chain_world["buyer"]) | {"Accept": "text/csv"},
        )
        assert response.status_code == 200
        rows = list(csv.DictReader(io.StringIO(response.text)))
        by_name = {row["name"]: row for row in rows}
        assert set(by_name) == {"Alpha", "Bravo", "Charlie", "Delta"}
        assert by_name["Alpha"]["risk_band"] == "critical"
        assert by_name["Alpha"]["non_compliance_CO"] == "0.25"
        assert by_name["Delta"]["risk_band"] == ""

    def test_csv_of_a_hidden_chain_is_a_404_problem(
        self, client: TestClient, chain_world: dict[str, object]
    ) -> None:
        chain = chain_world["chain"]
        response = client.get(
            f"/v1/supply-chains/{chain.id}/compliance",
            headers=bearer(client, chain_world["other"]) | {"Accept": "text/csv"},
        )
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


class TestCost:
    def test_50_and_500_factories_cost_the_same_statements(
        self, client: TestClient, session: Session, engine: Engine
    ) -> None:
        buyer = make_buyer(session)
        chains = [make_supply_chain(session, buyer) for _ in range(2)]
        issue = first_question(session, critical=True, public=True)
        for chain, size in zip(chains, (50, 500), strict=True):
            for n in range(size):
                factory = make_factory(session)
                link(session, chain, factory)
                summarise(
                    session,
                    factory,
                    band="high",
                    previous="low",
                    clusters={"CO": (10, 3)},
                    open_issues=(issue,) if n % 10 == 0 else (),
                )
        credentials = make_client(session, buyer)
        session.commit()
        headers = bearer(client, credentials)
        assert client.get("/v1/me", headers=headers).status_code == 200  # verify the token first
        counts: list[list[str]] = []
        for chain in chains:
            with count_statements(engine) as statements:
                response = client.get(f"/v1/supply-chains/{chain.id}/compliance", headers=headers)
            assert response.status_code == 200
            counts.append(statements)
        assert len(counts[0]) == len(counts[1]), counts
