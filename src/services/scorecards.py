"""Purchasing-practice scorecards: computing a period (its arithmetic is in
`src.services.scorecard_figures`), publication, and what a buyer may read.

Nothing about a suppressed category (its score, its answers, how many suppliers gave them) enters
any stored figure, so no answer can reveal it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, true
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from src.config import Settings
from src.db import utcnow
from src.models import Scorecard, ScorecardPeriod, SurveyQuestion, SurveyResponse
from src.models.scorecards import (
    BenchmarkCategoryRead,
    BenchmarkRead,
    CategoryScoreRead,
    ScorecardPeriodRead,
    ScorecardRead,
)
from src.services.access import Principal, subscription_active
from src.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from src.services.events import EventType, emit
from src.services.pagination import Page, paginate
from src.services.scorecard_figures import (
    Tallies,
    Tally,
    benchmark_of,
    category_benchmarks,
    category_names,
    exact_number,
    overall_of,
    rounded,
    shown_tallies,
)

# The key of the overall score's benchmark among a period's category benchmarks.
OVERALL = "overall"

LIST_KIND = "scorecards"


def tally_responses(
    session: Session, *, periods: Collection[str], buyers: Collection[str] | None = None
) -> dict[tuple[str, str], Tallies]:
    """(period, buyer) -> category -> tally, from one grouped query."""
    statement = (
        sa_select(
            col(SurveyResponse.period),
            col(SurveyResponse.buyer_org_id),
            col(SurveyQuestion.category),
            col(SurveyResponse.factory_id),
            func.count(),
            func.sum(col(SurveyResponse.rating)),
        )
        .join(SurveyQuestion, col(SurveyQuestion.code) == col(SurveyResponse.question_code))
        .where(col(SurveyResponse.period).in_(periods))
        .group_by(
            col(SurveyResponse.period),
            col(SurveyResponse.buyer_org_id),
            col(SurveyQuestion.category),
            col(SurveyResponse.factory_id),
        )
    )
    if buyers is not None:
        statement = statement.where(col(SurveyResponse.buyer_org_id).in_(buyers))
    result: dict[tuple[str, str], Tallies] = defaultdict(lambda: defaultdict(Tally))
    for period, buyer, category, factory, answers, total in session.execute(statement):
        tally = result[(period, buyer)][category]
        tally.points += int(total) - int(answers)
        tally.answers += int(answers)
        tally.suppliers.add(factory)
    return result


def _previous_scores(
    session: Session, *, period: str, buyers: Collection[str], min_suppliers: int
) -> dict[str, dict[str, Fraction]]:
    """Buyer -> shown category scores of its latest earlier period with a scorecard."""
    previous = dict(
        session.exec(
            select(Scorecard.org_id, func.max(Scorecard.period))
            .where(col(Scorecard.period) < period, col(Scorecard.org_id).in_(buyers))
            .group_by(col(Scorecard.org_id))
        ).all()
    )
    if not previous:
        return {}
    tallies = tally_responses(session, periods=set(previous.values()), buyers=previous.keys())
    return {
        buyer: {
            code: tally.score
            for code, tally in shown_tallies(tallies.get((prior, buyer), {}), min_suppliers).items()
        }
        for buyer, prior in previous.items()
    }


def _locked_period(session: Session, period: str) -> ScorecardPeriod:
    """The period's row, created when new and locked until the transaction ends, so that two
    computations of one period (two imports at once, an import and a publish) run one after the
    other, the second reading what the first committed. SQLite has one writer at a time anyway."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(ScorecardPeriod)
        .values(period=period, benchmark={}, computed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["period"])
    )
    return session.exec(
        select(ScorecardPeriod)
        .where(col(ScorecardPeriod.period) == period)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def compute_period(session: Session, *, period: str, settings: Settings) -> ScorecardPeriod:
    """Computes every buyer's scorecard of the period and the period's benchmark; a published
    period stays published."""
    period_row = _locked_period(session, period)
    min_suppliers = settings.scorecard_min_suppliers
    tallies = {
        buyer: shown_tallies(by_category, min_suppliers)
        for (_period, buyer), by_category in tally_responses(session, periods=[period]).items()
    }
    scores = {
        buyer: {code: tally.score for code, tally in shown.items()}
        for buyer, shown in tallies.items()
    }
    previous = _previous_scores(
        session, period=period, buyers=tallies.keys(), min_suppliers=min_suppliers
    )
    benchmarks = category_benchmarks(scores, settings.scorecard_min_buyers)
    overall = {
        buyer: value for buyer, own in scores.items() if (value := overall_of(own)) is not None
    }
    overall_benchmark = benchmark_of(overall, settings.scorecard_min_buyers)
    now = utcnow()
    period_row.benchmark = {code: benchmark.stored() for code, benchmark in benchmarks.items()}
    period_row.benchmark[OVERALL] = overall_benchmark.stored()
    period_row.computed_at = now
    session.flush()

    existing = {
        scorecard.org_id: scorecard
        for scorecard in session.exec(select(Scorecard).where(col(Scorecard.period) == period))
    }
    for buyer, shown in tallies.items():
        own, before = scores[buyer], previous.get(buyer, {})
        scorecard = existing.get(buyer) or Scorecard(org_id=buyer, period=period)
        scorecard.overall = exact_number(overall.get(buyer))
        overall_before = overall_of(before)
        scorecard.overall_change = exact_number(
            overall[buyer] - overall_before
            if buyer in overall and overall_before is not None
            else None
        )
        scorecard.overall_benchmark_median = exact_number(overall_benchmark.median)
        scorecard.overall_percentile = exact_number(overall_benchmark.percentiles.get(buyer))
        scorecard.respondents = len(set().union(*(t.suppliers for t in shown.values())))
        scorecard.categories = [
            {
                "category": code,
                "score": exact_number(own.get(code)),
                "suppressed": code not in own,
                "respondents": len(shown[code].suppliers) if code in shown else None,
                "change": (
                    exact_number(own[code] - before[code])
                    if code in own and code in before
                    else None
                ),
                "benchmark_median": exact_number(benchmarks[code].median),
                "percentile": exact_number(benchmarks[code].percentiles.get(buyer)),
            }
            for code in category_names()
        ]
        scorecard.computed_at = now
        session.add(scorecard)
    session.flush()
    return period_row


def recompute_periods(session: Session, *, periods: Iterable[str], settings: Settings) -> None:
    """Recomputes the given periods and every later one, since a later period's change depends
    on the periods before it."""
    earliest = min(periods, default=None)
    if earliest is None:
        return
    later = session.exec(
        select(SurveyResponse.period).where(col(SurveyResponse.period) >= earliest).distinct()
    ).all()
    for period in sorted({*periods, *later}):
        compute_period(session, period=period, settings=settings)


def publish_period(session: Session, *, period: str, settings: Settings) -> ScorecardPeriodRead:
    """Computes and publishes the period; each buyer with a scorecard gets its event."""
    current = session.exec(
        select(ScorecardPeriod).where(col(ScorecardPeriod.period) == period).with_for_update()
    ).first()
    if current is not None and current.published_at is not None:
        raise Conflict(f"Period {period} was published at {current.published_at.isoformat()}.")
    answered = session.scalar(sa_select(exists().where(col(SurveyResponse.period) == period)))
    if not answered:
        raise NotFound(f"No survey responses for period {period}.")
    period_row = compute_period(session, period=period, settings=settings)
    period_row.published_at = utcnow()
    scorecards = session.exec(
        select(Scorecard.id, Scorecard.org_id)
        .where(col(Scorecard.period) == period)
        .order_by(col(Scorecard.org_id))
    ).all()
    for scorecard_id, org_id in scorecards:
        emit(
            session,
            EventType.scorecard_published,
            {"period": period, "scorecard_id": scorecard_id},
            org_id=org_id,
        )
    session.flush()
    return ScorecardPeriodRead(
        period=period,
        scorecards=len(scorecards),
        computed_at=period_row.computed_at,
        published_at=period_row.published_at,
    )


# Reads ------------------------------------------------------------------------------------------


def _readable(principal: Principal) -> ColumnElement[bool]:
    """Buyers read published periods only, and only while subscribed; the programme reads all."""
    if principal.is_admin:
        return true()
    return and_(
        col(ScorecardPeriod.published_at).is_not(None),
        subscription_active(literal(principal.org_id), utcnow().date()),
    )


def _target_org(principal: Principal, org_id: str | None) -> str | None:
    """Whose scorecards the caller reads: always its own; the programme may name a buyer."""
    if principal.is_admin:
        return org_id
    if org_id is not None and org_id != principal.org_id:
        raise Forbidden("Only the programme may name another organisation.")
    return principal.org_id


def scorecard_read(scorecard: Scorecard, published_at: Any) -> ScorecardRead:
    names = category_names()
    return ScorecardRead(
        id=scorecard.id,
        org_id=scorecard.org_id,
        period=scorecard.period,
        overall=rounded(scorecard.overall),
        overall_change=rounded(scorecard.overall_change),
        overall_benchmark_median=rounded(scorecard.overall_benchmark_median),
        overall_percentile=rounded(scorecard.overall_percentile),
        respondents=scorecard.respondents if scorecard.overall is not None else None,
        categories=[
            CategoryScoreRead(
                category=item["category"],
                name=names[item["category"]],
                score=rounded(item["score"]),
                suppressed=item["suppressed"],
                respondents=item["respondents"],
                change=rounded(item["change"]),
                benchmark_median=rounded(item["benchmark_median"]),
                percentile=rounded(item["percentile"]),
            )
            for item in scorecard.categories
        ],
        published_at=published_at,
    )


def list_scorecards(
    session: Session,
    *,
    principal: Principal,
    org_id: str | None,
    period: str | None,
    cursor: str | None,
    limit: int,
) -> Page[ScorecardRead]:
    """The caller's scorecards (the programme: every buyer's, or `org_id`'s), oldest period first."""
    target = _target_org(principal, org_id)
    statement = (
        sa_select(Scorecard, col(ScorecardPeriod.published_at))
        .join(ScorecardPeriod, col(ScorecardPeriod.period) == col(Scorecard.period))
        .where(_readable(principal))
    )
    if target is not None:
        statement = statement.where(col(Scorecard.org_id) == target)
    if period is not None:
        statement = statement.where(col(Scorecard.period) == period)
    page = paginate(
        session,
        statement,
        kind=LIST_KIND,
        order_by=[col(Scorecard.period), col(Scorecard.id)],
        types=[str, str],
        cursor=cursor,
        limit=limit,
        scalars=False,
        key_of=lambda row: (row[0].period, row[0].id),
    )
    return Page(
        items=[scorecard_read(scorecard, published) for scorecard, published in page.items],
        next_cursor=page.next_cursor,
    )


def _find_scorecard(
    session: Session, *, principal: Principal, period: str, org_id: str
) -> tuple[Scorecard, Any] | None:
    row = session.execute(
        sa_select(Scorecard, col(ScorecardPeriod.published_at))
        .join(ScorecardPeriod, col(ScorecardPeriod.period) == col(Scorecard.period))
        .where(
            col(Scorecard.period) == period, col(Scorecard.org_id) == org_id, _readable(principal)
        )
    ).first()
    return None if row is None else (row[0], row[1])


def get_scorecard(
    session: Session, *, principal: Principal, period: str, org_id: str | None
) -> ScorecardRead:
    target = _target_org(principal, org_id)
    if target is None:
        raise InvalidInput.at(
            "org_id", "The programme names the buyer whose scorecard it reads.", "query"
        )
    found = _find_scorecard(session, principal=principal, period=period, org_id=target)
    if found is None:
        raise NotFound(f"No scorecard for period {period}.")
    return scorecard_read(*found)


def get_benchmark(
    session: Session, *, principal: Principal, period: str, org_id: str | None
) -> BenchmarkRead:
    """The period's benchmark per category, with the percentile of the caller (the programme:
    of `org_id`, when given)."""
    period_row = session.execute(
        sa_select(ScorecardPeriod).where(
            col(ScorecardPeriod.period) == period, _readable(principal)
        )
    ).scalar_one_or_none()
    if period_row is None:
        raise NotFound(f"No benchmark for period {period}.")
    target = _target_org(principal, org_id)
    own: dict[str, Any] = {}
    if target is not None:
        found = _find_scorecard(session, principal=principal, period=period, org_id=target)
        if found is not None:
            own = {item["category"]: item["percentile"] for item in found[0].categories}
            own[OVERALL] = found[0].overall_percentile
    missing = {"median": None, "suppressed": True}
    overall = period_row.benchmark.get(OVERALL, missing)
    return BenchmarkRead(
        period=period,
        overall_median=rounded(overall["median"]),
        overall_suppressed=overall["suppressed"],
        overall_percentile=rounded(own.get(OVERALL)),
        categories=[
            BenchmarkCategoryRead(
                category=code,
                name=name,
                median=rounded(period_row.benchmark.get(code, missing)["median"]),
                suppressed=period_row.benchmark.get(code, missing)["suppressed"],
                percentile=rounded(own.get(code)),
            )
            for code, name in category_names().items()
        ],
        published_at=period_row.published_at,
    )
