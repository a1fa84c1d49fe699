"""Demo survey responses: nine buyers rated over two published periods, so the benchmark shows,
with one category of Northwind's 2026H1 scorecard below the anonymity threshold.

Ratings come from generators seeded by stable keys, so every run writes the same ratings; a
second run rewrites them unchanged and leaves published periods (and their events) alone."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from sqlmodel import Session, col, select

from src.config import get_settings
from src.models import Factory, Organization, ScorecardPeriod, SurveyQuestion
from src.services.scorecards import publish_period, recompute_periods
from src.services.surveys import ResponseRow, write_responses

DEMO_PERIODS = ("2025H2", "2026H1")
SURVEY_BUYERS = (
    "northwind", "harbour", "lumen", "alder", "corvid", "dunmore", "estuary", "fennel", "heron",
)  # fmt: skip
# (buyer, period, category) answered by only THIN_SUPPLIERS suppliers: shown as suppressed.
THIN = ("northwind", "2026H1", "cost_negotiation")
THIN_SUPPLIERS = 3


def _panel(buyer: str, factories: Sequence[Factory]) -> list[Factory]:
    """The 6-15 factories that rate this buyer, the same in both periods."""
    rng = random.Random(f"weft-demo-survey-panel:{buyer}")
    size = rng.randint(6, 15)
    return sorted(rng.sample(list(factories), size), key=lambda factory: factory.id)


def _ratings(
    buyer: str, buyer_id: str, panel: list[Factory], questions: list[SurveyQuestion]
) -> Iterator[ResponseRow]:
    for period in DEMO_PERIODS:
        rng = random.Random(f"weft-demo-survey:{buyer}:{period}")
        mean = rng.uniform(2.2, 4.2)
        leaning = {question.category: rng.uniform(-0.6, 0.6) for question in questions}
        for position, factory in enumerate(panel):
            for question in questions:
                if (buyer, period, question.category) == THIN and position >= THIN_SUPPLIERS:
                    continue
                rating = round(rng.gauss(mean + leaning[question.category], 0.9))
                yield period, buyer_id, factory.id, question.code, min(5, max(1, rating))


def seed_demo_surveys(
    session: Session, orgs: dict[str, Organization], factories: Sequence[Factory]
) -> None:
    settings = get_settings()
    questions = list(
        session.exec(select(SurveyQuestion).order_by(col(SurveyQuestion.position))).all()
    )
    write_responses(
        session,
        (
            row
            for buyer in SURVEY_BUYERS
            for row in _ratings(buyer, orgs[buyer].id, _panel(buyer, factories), questions)
        ),
    )
    recompute_periods(session, periods=DEMO_PERIODS, settings=settings)
    for period in DEMO_PERIODS:
        row = session.get(ScorecardPeriod, period)
        if row is None or row.published_at is None:
            publish_period(session, period=period, settings=settings)
