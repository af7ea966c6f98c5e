"""The pre-registered selection of an Adaloss reading (docs/RESULTS.md, "Pre-registration"):
rank the candidates within every (task, seed) by a lower-is-better validation value, then take
the lowest mean rank; ties go to the candidate listed first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Ranking = tuple[str, int]  # (task, seed)


@dataclass(frozen=True)
class Selection:
    """mean_rank: candidate -> mean of its ranks, in `order`. ranks: (task, seed) -> candidate
    -> rank (1 best; ties share the mean of their places). selected: the winner."""

    mean_rank: dict[str, float]
    ranks: dict[Ranking, dict[str, float]]
    selected: str


def rank(values: Mapping[str, float | None]) -> dict[str, float]:
    """Ranks 1..n of lower-is-better `values`; None or NaN (a diverged or missing cell) ranks
    after every finite value; equal values share the mean of the places they occupy."""

    def key(name: str) -> float:
        value = values[name]
        return math.inf if value is None or math.isnan(value) else value

    ordered = sorted(values, key=key)
    ranks: dict[str, float] = {}
    start = 0
    while start < len(ordered):
        stop = start
        while stop + 1 < len(ordered) and key(ordered[stop + 1]) == key(ordered[start]):
            stop += 1
        shared = (start + stop) / 2 + 1  # places start+1 .. stop+1
        for name in ordered[start : stop + 1]:
            ranks[name] = shared
        start = stop + 1
    return ranks


def select(scores: Mapping[Ranking, Mapping[str, float | None]], order: Sequence[str]) -> Selection:
    """The candidate of `order` with the lowest mean rank over the rankings in `scores`; every
    ranking must hold every candidate (a missing value is passed as None). ValueError otherwise."""
    if not scores:
        raise ValueError("no ranking to select from")
    ranks = {}
    for ranking, values in scores.items():
        missing = [name for name in order if name not in values]
        if missing or set(values) - set(order):
            raise ValueError(f"ranking {ranking} lacks {missing} or has unknown candidates")
        ranks[ranking] = rank(values)
    mean_rank = {name: sum(r[name] for r in ranks.values()) / len(ranks) for name in order}
    best = min(mean_rank.values())
    selected = next(name for name in order if mean_rank[name] == best)
    return Selection(mean_rank, ranks, selected)
