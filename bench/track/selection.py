"""The pre-registered selection of an Adaloss reading (docs/RESULTS.md, "Pre-registration"):
rank the candidates within every (task, seed) by a lower-is-better validation value, then take
the lowest mean rank; ties go to the candidate listed first.

The cells take several sessions to train and a session's MLflow store does not outlive it, so
their values are also kept in a JSON record committed with the results (`load_record`,
`save_record`, `keep_first`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

READINGS_TASKS = ("cathdet", "face300w", "endovis")
READINGS_PROFILE = "quick"
SELECTION_SEEDS = (0, 1, 2)
Ranking = tuple[str, int]  # (task, seed)
# task -> seed -> candidate -> last-epoch validation value (inf: the cell diverged)
CellValues = dict[str, dict[int, dict[str, float]]]
DIVERGED = "diverged"  # how a record writes an infinite value: JSON has no infinity


def readings_grid(task: str) -> str:
    """The shipped grid (and MLflow experiment) of `task`'s readings cells."""
    return f"readings_{task}"


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


def score_table(
    values: CellValues, tasks: Sequence[str], seeds: Sequence[int], order: Sequence[str]
) -> dict[Ranking, dict[str, float | None]]:
    """The rankings `select` takes: every (task, seed) of `tasks` x `seeds`, every candidate of
    `order`, None where `values` has no result yet."""
    return {
        (task, seed): {name: values.get(task, {}).get(seed, {}).get(name) for name in order}
        for task in tasks
        for seed in seeds
    }


def keep_first(
    recorded: CellValues, found: CellValues, disagree: Callable[[str], object] = print
) -> CellValues:
    """`recorded` with the cells only `found` has added. A cell in both keeps its recorded value
    (a cell trained again later cannot replace its first result); `disagree` is told when the
    two differ."""
    kept = {task: {seed: dict(v) for seed, v in seeds.items()} for task, seeds in recorded.items()}
    for task, seeds in found.items():
        for seed, values in seeds.items():
            for name, value in values.items():
                first = kept.setdefault(task, {}).setdefault(seed, {}).setdefault(name, value)
                if first != value:
                    disagree(f"{task} seed {seed} {name}: recorded {first} kept, found {value}")
    return kept


def save_record(path: Path, values: CellValues) -> None:
    """Write `values` as JSON (seeds as strings, infinity as DIVERGED), sorted for clean diffs."""
    raw = {
        task: {
            str(seed): {n: DIVERGED if math.isinf(v) else v for n, v in sorted(cells.items())}
            for seed, cells in sorted(seeds.items())
        }
        for task, seeds in values.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")


def load_record(path: Path) -> CellValues:
    """What `save_record` wrote; an absent file is an empty record. ValueError, naming the file,
    for one that is not such a record."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {
            task: {
                int(seed): {n: math.inf if v == DIVERGED else float(v) for n, v in cells.items()}
                for seed, cells in seeds.items()
            }
            for task, seeds in raw.items()
        }
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path}: not a record of readings values ({error}); restore it from git or pass "
            "another --record file"
        ) from None
