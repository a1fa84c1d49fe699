"""`/v1/scorecards` and `/v1/benchmarks`: publication, what a buyer reads, that it reads only its
own, and that nothing any endpoint answers depends on a suppressed category."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from src.config import Settings
from src.models import Event, Factory, Organization, Scorecard
from src.services.clients import NewClient
from src.services.scorecard_figures import category_names
from src.services.scorecards import recompute_periods
from src.services.surveys import import_survey
from tests.builders import (
    bearer,
    make_buyer,
    make_client,
    make_factory,
    make_programme_client,
    rate_buyer,
)

QUESTIONS_BY_CATEGORY = {
    "planning_forecasting": ["PF-01", "PF-02", "PF-03", "PF-04"],
    "design_development": ["DD-01", "DD-02", "DD-03", "DD-04", "DD-05"],
    "cost_negotiation": ["CN-01", "CN-02", "CN-03", "CN-04", "CN-05"],
    "sourcing_order_placement": ["SO-01", "SO-02", "SO-03", "SO-04"],
    "payment_terms": ["PT-01", "PT-02", "PT-03", "PT-04"],
    "management_purchasing_process": ["MP-01", "MP-02", "MP-03", "MP-04"],
    "win_win_partnership": ["WW-01", "WW-02", "WW-03", "WW-04"],
}
QUESTIONS = [code for codes in QUESTIONS_BY_CATEGORY.values() for code in codes]
CN = QUESTIONS_BY_CATEGORY["cost_negotiation"]


def every_question(rating: int, *, without: list[str] = ()) -> dict[str, int | list[int]]:  # type: ignore[assignment]
    return {code: rating for code in QUESTIONS if code not in without}


@dataclass
class World:
    """Five buyers rated by the same five suppliers in 2026H1 (A: 4, the others 1, 2, 3, 5 on
    every question); A also in 2025H2 (3 everywhere). A lapsed buyer; the programme. Scorecards
    computed, no period published."""

    buyers: list[Organization]
    clients: list[NewClient]
    lapsed: Organization
    lapsed_client: NewClient
    admin: NewClient
    pool: list[Factory]

    @property
    def a(self) -> Organization:
        return self.buyers[0]

    @property
    def b(self) -> Organization:
        return self.buyers[1]


@pytest.fixture
def world(session: Session, settings: Settings) -> World:
    pool = [make_factory(session) for _ in range(5)]
    buyers = [make_buyer(session, name=f"Buyer {letter}") for letter in "ABCDE"]
    for buyer, rating in zip(buyers, [4, 1, 2, 3, 5], strict=True):
        rate_buyer(session, buyer, pool, every_question(rating))
    rate_buyer(session, buyers[0], pool, every_question(3), period="2025H2")
    lapsed = make_buyer(session, active=False)
    rate_buyer(session, lapsed, pool, every_question(2))
    recompute_periods(session, periods=["2025H2", "2026H1"], settings=settings)  # as an import does
    world = World(
        buyers=buyers,
        clients=[make_client(session, buyer) for buyer in buyers],
        lapsed=lapsed,
        lapsed_client=make_client(session, lapsed),
        admin=make_programme_client(session),
        pool=pool,
    )
    session.commit()
    return world


def publish(client: TestClient, admin: dict[str, str], *periods: str) -> None:
    for period in periods:
        response = client.post(f"/v1/scorecards/{period}/publish", headers=admin)
        assert response.status_code == 200, response.text


def category_body(code: str, **values: Any) -> dict[str, Any]:
    return {"category": code, "name": category_names()[code]} | values


class TestPublication:
    def test_publishing_computes_and_emits_one_event_per_buyer(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        response = client.post("/v1/scorecards/2026H1/publish", headers=bearer(client, world.admin))

        assert response.status_code == 200
        body = response.json()
        assert (body["period"], body["scorecards"]) == ("2026H1", 6)
        assert body["published_at"] is not None
        scorecards = dict(
            session.exec(
                select(Scorecard.org_id, Scorecard.id).where(col(Scorecard.period) == "2026H1")
            ).all()
        )
        events = session.exec(select(Event).where(col(Event.type) == "scorecard.published")).all()
        assert sorted(
            (e.org_id, e.data["period"], e.data["scorecard_id"]) for e in events
        ) == sorted((org_id, "2026H1", scorecard_id) for org_id, scorecard_id in scorecards.items())
        assert len(events) == 6

    def test_publishing_twice_conflicts(self, client: TestClient, world: World) -> None:
        admin = bearer(client, world.admin)
        publish(client, admin, "2026H1")

        response = client.post("/v1/scorecards/2026H1/publish", headers=admin)

        assert response.status_code == 409
        assert response.json()["type"] == "https://weft.dev/problems/conflict"

    def test_a_period_without_responses_is_not_found(
        self, client: TestClient, world: World
    ) -> None:
        response = client.post("/v1/scorecards/2024H1/publish", headers=bearer(client, world.admin))

        assert response.status_code == 404
        assert response.json()["detail"] == "No survey responses for period 2024H1."

    def test_a_buyer_cannot_publish(self, client: TestClient, world: World) -> None:
        response = client.post(
            "/v1/scorecards/2026H1/publish", headers=bearer(client, world.clients[0])
        )

        assert response.status_code == 403

    def test_a_malformed_period_is_rejected(self, client: TestClient, world: World) -> None:
        response = client.get("/v1/scorecards/2026-1", headers=bearer(client, world.clients[0]))

        assert response.status_code == 422

    def test_unpublished_periods_are_invisible_to_buyers_but_not_to_the_programme(
        self, client: TestClient, world: World
    ) -> None:
        a = bearer(client, world.clients[0])
        assert client.get("/v1/scorecards/2026H1", headers=a).status_code == 404
        assert client.get("/v1/benchmarks/2026H1", headers=a).status_code == 404
        assert client.get("/v1/scorecards", headers=a).json() == {
            "data": [],
            "next_cursor": None,
            "has_more": False,
        }

        admin = client.get(
            "/v1/scorecards/2026H1",
            params={"org_id": world.a.id},
            headers=bearer(client, world.admin),
        )
        assert admin.status_code == 200
        assert admin.json()["published_at"] is None


class TestReading:
    def test_a_buyer_reads_its_scorecard(self, client: TestClient, world: World) -> None:
        admin = bearer(client, world.admin)
        publish(client, admin, "2025H2", "2026H1")

        response = client.get("/v1/scorecards/2026H1", headers=bearer(client, world.clients[0]))

        assert response.status_code == 200
        body = response.json()
        scorecard_id = body.pop("id")
        assert scorecard_id.startswith("scd_")
        assert body.pop("published_at") is not None
        # scores 0, 25, 50, 75, 100 (lapsed buyer 25): A is 75, 4 of the 5 others lower
        assert body == {
            "org_id": world.a.id,
            "period": "2026H1",
            "overall": 75.0,
            "overall_change": 25.0,
            "overall_benchmark_median": 37.5,
            "overall_percentile": 80.0,
            "respondents": 5,
            "categories": [
                category_body(
                    code,
                    score=75.0,
                    suppressed=False,
                    respondents=5,
                    change=25.0,
                    benchmark_median=37.5,
                    percentile=80.0,
                )
                for code in category_names()
            ],
        }

    def test_the_benchmark_shows_medians_and_the_callers_percentile(
        self, client: TestClient, world: World
    ) -> None:
        publish(client, bearer(client, world.admin), "2025H2", "2026H1")
        b = bearer(client, world.clients[1])

        current = client.get("/v1/benchmarks/2026H1", headers=b).json()
        earlier = client.get("/v1/benchmarks/2025H2", headers=b).json()

        assert current.pop("published_at") is not None
        assert current == {
            "period": "2026H1",
            "overall_median": 37.5,
            "overall_suppressed": False,
            "overall_percentile": 0.0,
            "categories": [
                category_body(code, median=37.5, suppressed=False, percentile=0.0)
                for code in category_names()
            ],
        }
        # one buyer only in 2025H2: suppressed; B has no scorecard there
        assert earlier["categories"][0] == category_body(
            "planning_forecasting", median=None, suppressed=True, percentile=None
        )
        assert (
            earlier["overall_median"],
            earlier["overall_suppressed"],
            earlier["overall_percentile"],
        ) == (None, True, None)

    def test_the_list_is_paginated_oldest_period_first_and_filtered_by_period(
        self, client: TestClient, world: World
    ) -> None:
        publish(client, bearer(client, world.admin), "2025H2", "2026H1")
        a = bearer(client, world.clients[0])

        first = client.get("/v1/scorecards", params={"limit": 1}, headers=a)
        second = client.get(
            "/v1/scorecards", params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=a
        )
        filtered = client.get("/v1/scorecards", params={"period": "2026H1"}, headers=a)

        assert [s["period"] for s in first.json()["data"]] == ["2025H2"]
        assert first.json()["has_more"] is True
        assert 'rel="next"' in first.headers["Link"]
        assert [s["period"] for s in second.json()["data"]] == ["2026H1"]
        assert second.json()["has_more"] is False
        assert filtered.json()["data"] == [client.get("/v1/scorecards/2026H1", headers=a).json()]

    def test_the_programme_reads_any_buyer_by_org_id(
        self, client: TestClient, world: World
    ) -> None:
        admin = bearer(client, world.admin)
        publish(client, admin, "2026H1")

        one = client.get("/v1/scorecards/2026H1", params={"org_id": world.b.id}, headers=admin)
        listed = client.get("/v1/scorecards", params={"org_id": world.b.id}, headers=admin)
        everyone = client.get("/v1/scorecards", headers=admin)
        unnamed = client.get("/v1/scorecards/2026H1", headers=admin)

        assert (one.json()["org_id"], one.json()["overall"]) == (world.b.id, 0.0)
        assert [s["org_id"] for s in listed.json()["data"]] == [world.b.id]
        assert len(everyone.json()["data"]) == 7  # A's 2025H2, computed, not yet published
        assert unnamed.status_code == 422
        assert unnamed.json()["errors"] == [
            {
                "in": "query",
                "field": "org_id",
                "message": "The programme names the buyer whose scorecard it reads.",
            }
        ]

    def test_a_buyer_whose_subscription_ended_sees_nothing(
        self, client: TestClient, world: World
    ) -> None:
        publish(client, bearer(client, world.admin), "2026H1")
        lapsed = bearer(client, world.lapsed_client)

        assert client.get("/v1/scorecards/2026H1", headers=lapsed).status_code == 404
        assert client.get("/v1/benchmarks/2026H1", headers=lapsed).status_code == 404
        assert client.get("/v1/scorecards", headers=lapsed).json()["data"] == []

    def test_the_scorecards_scope_is_required(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        narrow = make_client(session, world.a, scopes=["factories:read"])
        session.commit()

        response = client.get("/v1/scorecards", headers=bearer(client, narrow))

        assert response.status_code == 403
        assert response.json()["type"] == "https://weft.dev/problems/insufficient-scope"


class TestIsolation:
    def test_buyer_b_can_never_see_buyer_a(self, client: TestClient, world: World) -> None:
        publish(client, bearer(client, world.admin), "2025H2", "2026H1")
        b = bearer(client, world.clients[1])
        other = {"org_id": world.a.id}

        assert {s["org_id"] for s in client.get("/v1/scorecards", headers=b).json()["data"]} == {
            world.b.id
        }
        assert client.get("/v1/scorecards/2026H1", headers=b).json()["org_id"] == world.b.id
        # only A has a 2025H2 scorecard
        assert client.get("/v1/scorecards/2025H2", headers=b).status_code == 404
        for path in ("/v1/scorecards", "/v1/scorecards/2026H1", "/v1/benchmarks/2026H1"):
            response = client.get(path, params=other, headers=b)
            assert response.status_code == 403, path
            assert response.json()["detail"] == "Only the programme may name another organisation."


class TestSuppressedCategoriesRevealNothing:
    """A suppressed category's answers (their ratings, and how many suppliers gave them) change no
    figure that any endpoint answers, for any buyer."""

    def test_changing_a_suppressed_category_changes_no_answer(
        self, client: TestClient, session: Session
    ) -> None:
        pool = [make_factory(session) for _ in range(6)]
        buyers = [make_buyer(session) for _ in range(6)]
        for index, buyer in enumerate(buyers):
            ratings = [1 + (index + n) % 5 for n in range(5)]
            rate_buyer(session, buyer, pool[:5], dict.fromkeys(QUESTIONS, ratings), period="2025H2")
            others = [code for code in QUESTIONS if code not in CN or index > 0]
            rate_buyer(session, buyer, pool[:5], dict.fromkeys(others, ratings[::-1]))
        target = buyers[0]
        # the target's cost category in 2026H1: two suppliers only
        rate_buyer(session, target, pool[:2], dict.fromkeys(CN, 1))
        clients = [make_client(session, buyer) for buyer in buyers]
        admin_client = make_programme_client(session)
        session.commit()
        admin = bearer(client, admin_client)
        publish(client, admin, "2025H2", "2026H1")
        callers = [(bearer(client, c), c.client.org_id) for c in clients]

        def answers() -> list[Any]:
            seen = []
            for headers, org_id in [*callers, *((admin, b.id) for b in buyers)]:
                params = {"org_id": org_id} if headers is admin else {}
                for path in (
                    "/v1/scorecards/2026H1",
                    "/v1/scorecards",
                    "/v1/benchmarks/2026H1",
                    "/v1/scorecards/2025H2",
                    "/v1/benchmarks/2025H2",
                ):
                    response = client.get(path, params=params, headers=headers)
                    seen.append((path, org_id, response.status_code, response.json()))
            return seen

        before = answers()
        assert before[0][3]["categories"][2]["suppressed"] is True

        # other ratings, from four suppliers (one new, one that answered nothing else): still < 5
        newcomer = make_factory(session)
        session.commit()
        lines = ["period,buyer,factory,question,rating\n"] + [
            f"2026H1,{target.id},{factory.id},{question},{rating}\n"
            for factory, rating in [(pool[0], 5), (pool[1], 5), (pool[5], 4), (newcomer, 1)]
            for question in CN
        ]
        result = import_survey(session, lines=lines)
        assert result.errors == []
        session.commit()

        assert answers() == before
