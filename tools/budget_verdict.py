"""The pre-registered families of issue #32 (docs/preregistration-budget.md), from a store.

Family 1, the verdict at the paper's length: at CathDet's 100 epochs and EndoVis's 150, each
reading of the rule against that budget's best fixed sigma. Family 2, the paper's number of
updates at today's budget: the clocked readings against the best fixed sigma at CathDet's 20
epochs and the faces' 30. Each row is `bench report`'s paired comparison of its grid and budget
(two-sided paired t-test over seeds, exact Wilcoxon beside it); Holm adjusts the t-test p over
the rows of a family, and the verdict reads the adjusted p. Then, described and not corrected:
the family-1 comparisons at the short budgets, and each clocked reading against its
once-an-epoch counterpart.

Until every row has its 5 pairs it names what is missing and prints no test value (exit 1): the
families are read once, complete.

    python tools/budget_verdict.py [--tracking-uri sqlite:///mlruns/mlflow.db]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.track.comparison import holm, verdict
from bench.track.report import build_report
from bench.track.tracking import tracking_uri

PAIRS = 5


@dataclass(frozen=True)
class Comparison:
    """Rows of `grid`'s report at `epochs`: each of `methods` against the best fixed sigma, or
    against `reference` when it is given."""

    grid: str
    epochs: int
    methods: tuple[str, ...]
    reference: str | None = None


FAMILIES: dict[str, tuple[Comparison, ...]] = {
    "Family 1: the verdict at the paper's length": (
        Comparison("budget_cathdet", 100, ("step_limited", "literal")),
        Comparison("budget_endovis", 150, ("step_limited", "literal")),
    ),
    "Family 2: the paper's number of updates at today's budget": (
        Comparison("clock_cathdet", 20, ("step_limited_u100", "literal_u100")),
        Comparison("clock_face300w", 30, ("step_limited_u150", "literal_u150")),
    ),
}
DESCRIBED: dict[str, tuple[Comparison, ...]] = {
    "Described: the same readings at today's budgets": (
        Comparison("budget_cathdet", 20, ("step_limited", "literal")),
        Comparison("budget_endovis", 30, ("step_limited", "literal")),
    ),
    "Described: the clock alone (each clocked reading against its once-an-epoch counterpart)": (
        Comparison("clock_cathdet", 20, ("step_limited_u100",), reference="step_limited"),
        Comparison("clock_cathdet", 20, ("literal_u100",), reference="literal"),
        Comparison("clock_face300w", 30, ("step_limited_u150",), reference="step_limited"),
        Comparison("clock_face300w", 30, ("literal_u150",), reference="literal"),
    ),
}
COLUMNS = ("grid", "epochs", "method", "reference", "pairs", "method_mean", "reference_mean")


def comparison_rows(uri: str, comparison: Comparison) -> pd.DataFrame:
    """The report's paired rows of `comparison` (COLUMNS and the test columns)."""
    report = build_report(
        uri,
        comparison.grid,
        profile="quick",
        epochs=comparison.epochs,
        reference=comparison.reference,
    )
    rows = report.comparison[report.comparison.method.isin(comparison.methods)]
    return rows.assign(
        grid=comparison.grid, epochs=comparison.epochs, higher=report.headline_higher_is_better
    )


def family_table(rows: pd.DataFrame, *, adjust: bool) -> pd.DataFrame:
    """`rows` (one per comparison, with p, difference_mean, pairs and higher) with the Holm-
    adjusted p over all of them and the verdict it gives; without `adjust` the raw p decides."""
    adjusted = holm(list(rows.p)) if adjust else list(rows.p)
    verdicts = [
        verdict(p, difference, pairs, bool(higher))
        for p, difference, pairs, higher in zip(
            adjusted, rows.difference_mean, rows.pairs, rows.higher, strict=True
        )
    ]
    return rows.assign(p_holm=adjusted, verdict=verdicts).reset_index(drop=True)


def missing(rows: pd.DataFrame, comparisons: Sequence[Comparison]) -> list[str]:
    """What a complete family lacks: comparisons with no row or fewer than PAIRS pairs."""
    gaps = []
    for comparison in comparisons:
        for method in comparison.methods:
            row = rows[
                (rows.grid == comparison.grid)
                & (rows.epochs == comparison.epochs)
                & (rows.method == method)
            ]
            pairs = int(row.pairs.iloc[0]) if len(row) else 0
            if pairs < PAIRS:
                gaps.append(f"{comparison.grid} {comparison.epochs} epochs {method}: {pairs} pairs")
    return gaps


def markdown(title: str, table: pd.DataFrame, adjusted: bool) -> list[str]:
    header = [
        "grid",
        "epochs",
        "method",
        "reference",
        "method mean",
        "reference mean",
        "difference",
        "p",
    ]
    header += ["Holm p"] if adjusted else []
    header += ["Wilcoxon p", "verdict"]
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.to_dict(orient="records"):
        cells = [
            row["grid"],
            str(row["epochs"]),
            row["method"],
            row["reference"],
            f"{row['method_mean']:.2f}",
            f"{row['reference_mean']:.2f}",
            f"{row['difference_mean']:+.2f} +- {row['difference_std']:.2f}",
            f"{row['p']:.3g}",
        ]
        cells += [f"{row['p_holm']:.3g}"] if adjusted else []
        cells += [f"{row['wilcoxon_p']:.3g}", row["verdict"]]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    uri = tracking_uri(args.tracking_uri)
    sections: list[tuple[str, pd.DataFrame, bool]] = []
    gaps: list[str] = []
    for groups, adjusted in ((FAMILIES, True), (DESCRIBED, False)):
        for title, comparisons in groups.items():
            parts: list[Any] = []
            for comparison in comparisons:
                try:
                    parts.append(comparison_rows(uri, comparison))
                except ValueError as error:  # no runs of that grid or budget yet
                    gaps.append(f"{comparison.grid} {comparison.epochs} epochs: {error}")
            rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
            gaps += missing(rows, comparisons)
            if not gaps:
                sections.append((title, family_table(rows, adjust=adjusted), adjusted))
    if gaps:
        print("not complete, no test is printed:\n" + "\n".join(gaps), file=sys.stderr)
        return 1
    for title, table, adjusted in sections:
        print("\n".join(markdown(title, table, adjusted)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
