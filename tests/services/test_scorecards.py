"""Scoring, the anonymity thresholds, the benchmark and the change, against hand-computed figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from src.config import Settings
from src.models import Event, Factory, Organization, Scorecard, ScorecardPeriod, SurveyResponse
from src.services.demo_surveys import SURVEY_BUYERS, seed_demo_surveys
from src.services.scorecards import recompute_periods, scorecard_read
from tests.builders import make_buyer, make_factory, rate_buyer

PF = "planning_forecasting"
DD = "design_development"
CN = "cost_negotiation"
PERIOD = "2026H1"


def factories(session: Session, count: int) -> list[Factory]:
    return [make_factory(session) for _ in range(count)]


def compute(session: Session, settings: Settings, *periods: str) -> None:
    recompute_periods(session, periods=periods or (PERIOD,), settings=settings)


def card(session: Session, buyer: Organization, period: str = PERIOD) -> dict[str, Any]:
    scorecard = session.exec(
        select(Scorecard).where(col(Scorecard.org_id) == buyer.id, col(Scorecard.period) == period)
    ).one()
    return scorecard_read(scorecard, None).model_dump()


def category(body: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in body["categories"] if c["category"] == code)
    return found


def suppressed(code: str, name: str, benchmark_median: float | None = None) -> dict[str, Any]:
    return {
        "category": code,
        "name": name,
        "score": None,
        "suppressed": True,
        "respondents": None,
        "change": None,
        "benchmark_median": benchmark_median,
        "percentile": None,
    }


class TestArithmetic:
    def test_scores_means_and_overall_match_the_hand_computed_figures(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        five = factories(session, 5)
        # PF: (0 + 25 + 50 + 75 + 100) + 5 x 100 over 10 answers = 75.0
        # DD: 25 + 25 + 50 + 50 + 75 over 5 answers = 45.0
        # CN: 0 + 0 + 0 + 0 + 25 over 5 answers = 5.0
        # overall: (75 + 45 + 5) / 3 = 41.666... -> 41.7
        rate_buyer(
            session,
            buyer,
            five,
            {
                "PF-01": [1, 2, 3, 4, 5],
                "PF-02": 5,
                "DD-01": [2, 2, 3, 3, 4],
                "CN-01": [1, 1, 1, 1, 2],
            },
        )
        compute(session, settings)

        body = card(session, buyer)
        assert body["overall"] == 41.7
        assert body["respondents"] == 5
        assert body["published_at"] is None
        assert [c["category"] for c in body["categories"]] == [
            PF, DD, CN, "sourcing_order_placement", "payment_terms",
            "management_purchasing_process", "win_win_partnership",
        ]  # fmt: skip
        shown = {
            "suppressed": False,
            "respondents": 5,
            "change": None,
            "benchmark_median": None,
            "percentile": None,
        }
        assert body["categories"][:4] == [
            {"category": PF, "name": "Planning and Forecasting", "score": 75.0} | shown,
            {"category": DD, "name": "Design and Development", "score": 45.0} | shown,
            {"category": CN, "name": "Cost and Cost Negotiation", "score": 5.0} | shown,
            suppressed("sourcing_order_placement", "Sourcing and Order Placement"),
        ]

    def test_halves_round_up_only_on_output(self, session: Session, settings: Settings) -> None:
        buyer = make_buyer(session)
        five = factories(session, 5)
        # PF: 5 x 0 + 5 x 25 over 10 = 12.5; DD: 0; overall 6.25 -> 6.3 (not banker's 6.2)
        rate_buyer(session, buyer, five, {"PF-01": 1, "PF-02": 2, "DD-01": 1})
        compute(session, settings)

        body = card(session, buyer)
        assert (category(body, PF)["score"], category(body, DD)["score"]) == (12.5, 0.0)
        assert body["overall"] == 6.3
        stored = session.exec(select(Scorecard)).one()
        assert stored.overall == 6.25


class TestAnonymityThreshold:
    def test_four_suppliers_are_suppressed_and_five_are_shown(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        pool = factories(session, 5)
        rate_buyer(session, buyer, pool[:4], {"PF-01": 4})
        rate_buyer(session, buyer, pool, {"DD-01": 2})
        compute(session, settings)

        body = card(session, buyer)
        assert category(body, PF) == suppressed(PF, "Planning and Forecasting")
        assert category(body, DD)["score"] == 25.0
        assert category(body, DD)["respondents"] == 5

    def test_a_supplier_answering_many_questions_counts_once(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        # 4 suppliers x 4 questions = 16 answers, still 4 suppliers
        rate_buyer(
            session,
            buyer,
            factories(session, 4),
            {"PF-01": 5, "PF-02": 5, "PF-03": 5, "PF-04": 5},
        )
        compute(session, settings)

        body = card(session, buyer)
        assert category(body, PF)["suppressed"] is True
        assert body["overall"] is None
        assert body["respondents"] is None

    def test_overall_and_respondents_come_from_shown_categories_only(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        pool = factories(session, 9)
        rate_buyer(session, buyer, pool[:5], {"PF-01": 5})  # 100, shown
        rate_buyer(session, buyer, pool[5:], {"DD-01": 1})  # 0, four other suppliers: suppressed
        compute(session, settings)

        body = card(session, buyer)
        assert body["overall"] == 100.0
        assert body["respondents"] == 5

    def test_a_configured_threshold_is_honoured(self, session: Session, settings: Settings) -> None:
        buyer = make_buyer(session)
        rate_buyer(session, buyer, factories(session, 3), {"PF-01": 3})
        compute(session, settings.model_copy(update={"scorecard_min_suppliers": 3}))

        assert category(card(session, buyer), PF)["score"] == 50.0


def buyers_rating(
    session: Session, pool: Sequence[Factory], ratings: Sequence[int], question: str = "PF-01"
) -> list[Organization]:
    """One buyer per rating, each rated by every factory of the pool with that rating."""
    buyers = []
    for rating in ratings:
        buyer = make_buyer(session)
        rate_buyer(session, buyer, pool, {question: rating})
        buyers.append(buyer)
    return buyers


class TestBenchmark:
    def test_four_qualifying_buyers_are_too_few(self, session: Session, settings: Settings) -> None:
        pool = factories(session, 5)
        buyers = buyers_rating(session, pool, [1, 2, 3, 4])
        # a fifth buyer below the supplier threshold does not qualify
        fifth = make_buyer(session)
        rate_buyer(session, fifth, pool[:4], {"PF-01": 5})
        compute(session, settings)

        assert session.get(ScorecardPeriod, PERIOD).benchmark[PF] == {  # type: ignore[union-attr]
            "median": None,
            "suppressed": True,
        }
        first = category(card(session, buyers[0]), PF)
        assert (first["score"], first["benchmark_median"], first["percentile"]) == (0.0, None, None)

    def test_five_buyers_show_median_and_percentiles(
        self, session: Session, settings: Settings
    ) -> None:
        buyers = buyers_rating(session, factories(session, 5), [1, 2, 3, 4, 5])
        compute(session, settings)

        assert [
            (
                category(card(session, b), PF)["benchmark_median"],
                category(card(session, b), PF)["percentile"],
            )
            for b in buyers
        ] == [(50.0, 0.0), (50.0, 25.0), (50.0, 50.0), (50.0, 75.0), (50.0, 100.0)]
        benchmark = session.get(ScorecardPeriod, PERIOD).benchmark  # type: ignore[union-attr]
        assert benchmark[DD] == {"median": None, "suppressed": True}

    def test_tied_buyers_share_the_lower_percentile(
        self, session: Session, settings: Settings
    ) -> None:
        # scores 0, 25, 50, 50, 75, 100: for each 50, 2 of the 5 others are strictly lower
        buyers = buyers_rating(session, factories(session, 5), [1, 2, 3, 3, 4, 5])
        compute(session, settings)

        assert [category(card(session, b), PF)["percentile"] for b in buyers] == [
            0.0, 20.0, 40.0, 40.0, 80.0, 100.0,
        ]  # fmt: skip
        assert category(card(session, buyers[0]), PF)["benchmark_median"] == 50.0

    def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two(
        self, session: Session, settings: Settings
    ) -> None:
        buyers = buyers_rating(session, factories(session, 5), [1, 2, 3, 4, 5, 5])
        compute(session, settings)

        assert category(card(session, buyers[0]), PF)["benchmark_median"] == 62.5

    def test_the_overall_benchmark_is_over_the_buyers_overall_scores(
        self, session: Session, settings: Settings
    ) -> None:
        pool = factories(session, 5)
        buyers = buyers_rating(session, pool, [1, 2, 3, 4, 5])
        rate_buyer(session, buyers[0], pool, {"DD-01": 5})
        compute(session, settings)

        # overall scores 50 (0 and 100), 25, 50, 75, 100: median 50
        assert session.get(ScorecardPeriod, PERIOD).benchmark["overall"] == {  # type: ignore[union-attr]
            "median": 50.0,
            "suppressed": False,
        }
        assert [
            (card(session, b)["overall_benchmark_median"], card(session, b)["overall_percentile"])
            for b in buyers
        ] == [(50.0, 25.0), (50.0, 0.0), (50.0, 25.0), (50.0, 75.0), (50.0, 100.0)]


class TestChange:
    def test_change_is_against_the_latest_earlier_period_with_a_scorecard(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        five = factories(session, 5)
        rate_buyer(session, buyer, five, {"PF-01": 1, "DD-01": 1}, period="2024H2")
        rate_buyer(session, buyer, five, {"PF-01": 3}, period="2025H1")
        # no 2025H2 for this buyer
        rate_buyer(session, buyer, five, {"PF-01": 4, "DD-01": 5, "CN-01": 2}, period="2026H1")
        compute(session, settings, "2024H2", "2025H1", "2026H1")

        body = card(session, buyer)
        assert category(body, PF)["change"] == 25.0  # 75 - 50 (2025H1)
        assert category(body, DD)["change"] is None  # not shown in 2025H1
        assert category(body, CN)["change"] is None  # missing before
        assert category(card(session, buyer, "2025H1"), PF)["change"] == 50.0
        # the overall's: the mean of the shown categories', against the same period
        assert (body["overall"], body["overall_change"]) == (66.7, 16.7)  # 200/3 - 50
        assert card(session, buyer, "2025H1")["overall_change"] == 50.0  # 50 - 0
        assert card(session, buyer, "2024H2")["overall_change"] is None

    def test_change_is_null_when_the_current_category_is_suppressed(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        pool = factories(session, 5)
        rate_buyer(session, buyer, pool, {"PF-01": 2, "DD-01": 2}, period="2025H2")
        rate_buyer(session, buyer, pool[:4], {"PF-01": 5}, period="2026H1")
        rate_buyer(session, buyer, pool, {"DD-01": 1}, period="2026H1")
        compute(session, settings, "2025H2", "2026H1")

        body = card(session, buyer)
        assert category(body, PF)["change"] is None
        assert category(body, DD)["change"] == -25.0


class TestDemoSurveys:
    def test_nine_buyers_two_published_periods_one_thin_category_and_idempotent(
        self, session: Session
    ) -> None:
        orgs = {key: make_buyer(session, name=key) for key in SURVEY_BUYERS}
        pool = factories(session, 20)

        seed_demo_surveys(session, orgs, pool)
        ratings = session.exec(select(SurveyResponse.id, SurveyResponse.rating)).all()
        seed_demo_surveys(session, orgs, pool)

        assert session.exec(select(SurveyResponse.id, SurveyResponse.rating)).all() == ratings
        assert session.scalar(select(func.count()).select_from(Event)) == 18
        for period in ("2025H2", "2026H1"):
            row = session.get(ScorecardPeriod, period)
            assert row is not None
            assert row.published_at is not None
            assert not any(item["suppressed"] for item in row.benchmark.values())
            for key, buyer in orgs.items():
                body = card(session, buyer, period)
                assert 6 <= body["respondents"] <= 15
                hidden = [c["category"] for c in body["categories"] if c["suppressed"]]
                assert hidden == ([CN] if (key, period) == ("northwind", "2026H1") else [])
