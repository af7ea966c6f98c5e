"""The pre-registered confirmation of the selected Adaloss reading (docs/RESULTS.md,
"Pre-registration", "Confirmation").

Per task, on its headline test metric and the seeds both sides finished, the selected reading is
paired seed by seed (`comparison.paired_comparison`) with two references, one family each:
"fixed", the fixed sigma with the best mean (chosen after the fact, which favours it), and
"literal", the paper-literal reading (no such row when the literal reading is the one selected).
Within a family the t-test p-values of the tasks are Holm-corrected (`comparison.holm`) and the
verdict is read from the corrected p; the exact Wilcoxon p stays beside it, uncorrected, as a
check.

The library's default Adaloss takes the selected reading only when, in the "literal" family, it
is better on at least one task and worse on none (`default_changes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.track.comparison import COLUMNS, holm, paired_comparison, verdict

if TYPE_CHECKING:
    import pandas as pd

LITERAL = "literal"  # the readings grids' label of the paper's rule as written
FAMILIES = ("fixed", "literal")
TABLE_COLUMNS = ("family", "task", *COLUMNS, "p_holm")


@dataclass(frozen=True)
class TaskRuns:
    """One task's confirmation runs: `records` as `report.run_records` builds them (the fixed
    sigmas, the literal and the selected reading, one lr), compared on `metric`."""

    records: pd.DataFrame
    metric: str
    higher_is_better: bool


def confirmation_table(tasks: Mapping[str, TaskRuns], selected: str) -> pd.DataFrame:
    """One row per (family, task) in FAMILIES then `tasks` order: `selected` against that
    family's reference. Columns TABLE_COLUMNS: those of `comparison.COLUMNS`, where p is the
    task's own t-test p, plus p_holm, the Holm-adjusted p within the family; verdict is read from
    p_holm. A task where `selected` has no run, or (family "fixed") no fixed sigma ran, has no row.
    """
    import pandas as pd

    rows = []
    for family in FAMILIES:
        if family == LITERAL and selected == LITERAL:
            continue
        found = []
        for task, runs in tasks.items():
            reference = LITERAL if family == LITERAL else None
            if reference is not None and reference not in set(runs.records.method):
                continue
            paired = paired_comparison(runs.records, runs.metric, runs.higher_is_better, reference)
            for row in paired[paired.method == selected].to_dict(orient="records"):
                found.append({"family": family, "task": task, **row})
        adjusted = holm([row["p"] for row in found])
        for row, p_holm in zip(found, adjusted, strict=True):
            higher = tasks[row["task"]].higher_is_better
            row["p_holm"] = p_holm
            row["verdict"] = verdict(p_holm, row["difference_mean"], row["pairs"], higher)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def default_changes(table: pd.DataFrame) -> bool:
    """Whether the library's default takes the selected reading: in the "literal" family of
    `confirmation_table`, better on at least one task and worse on none."""
    verdicts = set(table[table.family == LITERAL].verdict)
    return "better" in verdicts and "worse" not in verdicts


def confirmation_markdown(table: pd.DataFrame, selected: str) -> list[str]:
    """`confirmation_table` as Markdown lines: one table per family, then the decision."""
    references = {"fixed": "the best fixed sigma", LITERAL: "the paper-literal reading"}
    lines: list[str] = []
    for family in FAMILIES:
        rows = table[table.family == family]
        if rows.empty:
            continue
        lines += [
            f"### `{selected}` against {references[family]}",
            "",
            "| task | metric | reference | selected mean | reference mean | difference | pairs "
            "| t | p | p (Holm) | Wilcoxon p | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows.to_dict(orient="records"):
            spread = "" if math.isnan(row["difference_std"]) else f" ± {row['difference_std']:.4g}"
            cells = [
                row["task"],
                f"`{row['metric']}`",
                row["reference"],
                f"{row['method_mean']:.4g}",
                f"{row['reference_mean']:.4g}",
                f"{row['difference_mean']:.4g}{spread}",
                str(row["pairs"]),
                _value_text(row["t"], ".3g"),
                _value_text(row["p"], ".3g"),
                _value_text(row["p_holm"], ".3g"),
                _value_text(row["wilcoxon_p"], ".3g"),
                row["verdict"],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    changes = default_changes(table)
    lines.append(
        f"Decision: the library's default Adaloss {'takes' if changes else 'keeps'} "
        + (f"the `{selected}` reading." if changes else "the paper-literal rule.")
    )
    return lines


def _value_text(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)
