"""Adaptive schedules against the best fixed sigma: a paired test over seeds.

For each learning rate of a report, the reference is the fixed-sigma method with the best mean of
the task's headline metric over its finished seeds. Every adaptive method (Adaloss, linear decay)
is paired with it seed by seed: two cells with the same seed start from the same weights and see
the same batches and augmentations, so their difference isolates the schedule. The test is a
two-sided paired t-test on those differences (`scipy.stats.ttest_rel`).

The reference is chosen on the test metric it is compared on, which favours the fixed baseline:
a significant win of an adaptive schedule survives that bias; a loss may be partly its product.

With a named reference (`bench report --reference literal`, for an ablation) every other method
is paired with that one instead, whatever its schedule.

Beside the t-test, as a check that does not assume normal differences, each row carries the
exact two-sided Wilcoxon signed-rank p; with n pairs it cannot fall below 2 / 2^n (0.0625 for
5), so with few seeds it can contradict the t-test but not confirm it alone. `holm` corrects a
family of p-values (one comparison per task) for multiplicity.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ALPHA = 0.05
TEST_NAME = "two-sided paired t-test over seeds (scipy.stats.ttest_rel)"
COLUMNS = (
    "lr",
    "method",
    "reference",
    "metric",
    "pairs",
    "method_mean",
    "reference_mean",
    "difference_mean",
    "difference_std",
    "t",
    "p",
    "wilcoxon_p",
    "verdict",
)
WILCOXON_NAME = "two-sided Wilcoxon signed-rank test, exact (scipy.stats.wilcoxon)"


def paired_comparison(
    records: pd.DataFrame, metric: str, higher_is_better: bool, reference: str | None = None
) -> pd.DataFrame:
    """One row per (lr, adaptive method): the method against the best fixed sigma at that lr;
    with `reference` (a method label), one row per (lr, other method) against that method.

    records: one row per run with columns method, lr, seed, outcome, schedule and `metric`
    (`bench.track.report.run_records`). Only finished runs with a finite `metric` count; seeds that
    only one side has are left out of the pairs. difference = method - reference, in the
    metric's units. verdict: "better" or "worse" when p < ALPHA, "no significant difference"
    otherwise, and "too few pairs" with fewer than 2 (no test is possible). Columns: COLUMNS.
    Raises ValueError when `reference` is not one of the records' methods.
    """
    import pandas as pd

    if reference is not None and reference not in set(records.method):
        known = ", ".join(sorted(set(records.method)))
        raise ValueError(f"no method {reference!r} to compare against; the methods are {known}")
    usable = records[(records.outcome == "finished") & records[metric].notna()]
    rows: list[dict[str, Any]] = []
    for lr in sorted(usable.lr.unique(), reverse=True):
        at_lr = usable[usable.lr == lr]
        if reference is None:
            best = best_fixed_method(at_lr, metric, higher_is_better)
            if best is None:
                continue
            chosen, others = best, at_lr[at_lr.schedule != "fixed"]
        else:
            if reference not in set(at_lr.method):
                continue
            chosen, others = reference, at_lr[at_lr.method != reference]
        reference_values = at_lr[at_lr.method == chosen].set_index("seed")[metric]
        for method in dict.fromkeys(others.method):
            values = at_lr[at_lr.method == method].set_index("seed")[metric]
            seeds = sorted(set(values.index) & set(reference_values.index))
            rows.append(
                paired_row(
                    float(lr),
                    str(method),
                    chosen,
                    metric,
                    [float(values[s]) for s in seeds],
                    [float(reference_values[s]) for s in seeds],
                    higher_is_better,
                )
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def best_fixed_method(runs: pd.DataFrame, metric: str, higher_is_better: bool) -> str | None:
    """The fixed-sigma method with the best mean `metric` among `runs` (records of one lr, finished
    with a finite metric), or None when none of them is a fixed sigma."""
    fixed = runs[runs.schedule == "fixed"]
    if fixed.empty:
        return None
    means = fixed.groupby("method")[metric].mean()
    return str(means.idxmax() if higher_is_better else means.idxmin())


def paired_row(
    lr: float,
    method: str,
    reference: str,
    metric: str,
    ours: list[float],
    theirs: list[float],
    higher_is_better: bool,
) -> dict[str, Any]:
    """One row of COLUMNS: `method` against `reference` over paired values (`ours[i]` and
    `theirs[i]` share a seed), the verdict from the raw t-test p (`verdict`)."""
    from scipy import stats

    differences = [a - b for a, b in zip(ours, theirs, strict=True)]
    n = len(differences)
    t = p = math.nan
    if n >= 2 and any(d != differences[0] for d in differences):
        result = stats.ttest_rel(ours, theirs)
        t, p = float(result.statistic), float(result.pvalue)
    elif n >= 2 and differences[0] != 0:
        # identical non-zero differences: zero variance, the t statistic is infinite
        t, p = math.copysign(math.inf, differences[0]), 0.0
    wilcoxon_p = math.nan
    if any(d != 0 for d in differences):
        wilcoxon_p = float(stats.wilcoxon(ours, theirs, method="exact").pvalue)
    mean_difference = sum(differences) / n if n else math.nan
    return {
        "lr": lr,
        "method": method,
        "reference": reference,
        "metric": metric,
        "pairs": n,
        "method_mean": sum(ours) / n if n else math.nan,
        "reference_mean": sum(theirs) / n if n else math.nan,
        "difference_mean": mean_difference,
        "difference_std": statistics.stdev(differences) if n >= 2 else math.nan,
        "t": t,
        "p": p,
        "wilcoxon_p": wilcoxon_p,
        "verdict": verdict(p, mean_difference, n, higher_is_better),
    }


def verdict(p: float, difference_mean: float, pairs: int, higher_is_better: bool) -> str:
    """ "better" or "worse" (the sign of `difference_mean`, method - reference) when p < ALPHA,
    "too few pairs" below 2 pairs, else "no significant difference"; NaN p is not significant."""
    if pairs < 2:
        return "too few pairs"
    if p < ALPHA:
        improved = difference_mean > 0 if higher_is_better else difference_mean < 0
        return "better" if improved else "worse"
    return "no significant difference"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: the i-th smallest of m is
    multiplied by m - i (i from 0), made non-decreasing in that order and capped at 1. NaN
    (no test) stays NaN and does not count in m."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted
