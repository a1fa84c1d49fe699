"""The arithmetic of purchasing-practice scorecards, with no database: a category's score, the
anonymity threshold, the benchmark's median and percentiles, and rounding for answers.

Scores are kept exact (fractions) while computing and stored unrounded; they are rounded to one
decimal only when answered."""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from src.services.catalogue import SURVEY_FILE

ONE_DECIMAL = Decimal("0.1")


@lru_cache
def category_names() -> dict[str, str]:
    """Category code -> name, in the question bank's order (the order of every answer)."""
    document = json.loads(SURVEY_FILE.read_text())
    return {category["code"]: category["name"] for category in document["categories"]}


@dataclass
class Tally:
    """One buyer's answers in one category: sum of (rating - 1), answer count, suppliers."""

    points: int = 0
    answers: int = 0
    suppliers: set[str] = field(default_factory=set)

    @property
    def score(self) -> Fraction:
        """Mean of (r - 1) / 4 x 100 over the answers."""
        return Fraction(25 * self.points, self.answers)


Tallies = dict[str, Tally]  # category -> tally


def shown_tallies(tallies: Tallies, min_suppliers: int) -> Tallies:
    """The categories enough distinct suppliers answered to be shown."""
    return {code: t for code, t in tallies.items() if len(t.suppliers) >= min_suppliers}


def median(values: list[Fraction]) -> Fraction:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(own: Fraction, ordered: list[Fraction]) -> Fraction:
    """Share (0-100) of the other qualifying buyers scoring strictly lower (`ordered`: every
    qualifying score, ascending): tied buyers share the lower percentile; the lowest is 0 and a
    sole highest 100."""
    return Fraction(100 * bisect_left(ordered, own), len(ordered) - 1)


def exact_number(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def rounded(value: float | None) -> float | None:
    """One decimal, halves away from zero, from the shortest decimal that is the stored float."""
    if value is None:
        return None
    return float(Decimal(repr(value)).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)) + 0.0


@dataclass(frozen=True)
class Benchmark:
    median: Fraction | None
    percentiles: dict[str, Fraction]

    def stored(self) -> dict[str, Any]:
        return {"median": exact_number(self.median), "suppressed": self.median is None}


def benchmark_of(scores: dict[str, Fraction], min_buyers: int) -> Benchmark:
    """Over the buyers' scores given (buyer -> score); suppressed below `min_buyers`."""
    if len(scores) < min_buyers:
        return Benchmark(None, {})
    ordered = sorted(scores.values())
    return Benchmark(
        median(ordered), {buyer: percentile(own, ordered) for buyer, own in scores.items()}
    )


def category_benchmarks(
    shown: dict[str, dict[str, Fraction]], min_buyers: int
) -> dict[str, Benchmark]:
    """Per category, over the buyers whose category is shown; suppressed below `min_buyers`."""
    return {
        code: benchmark_of({buyer: s[code] for buyer, s in shown.items() if code in s}, min_buyers)
        for code in category_names()
    }


def overall_of(shown: dict[str, Fraction]) -> Fraction | None:
    """The mean of the shown categories' scores; None when every category is suppressed."""
    return sum(shown.values(), Fraction(0)) / len(shown) if shown else None
