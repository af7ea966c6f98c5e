"""The pre-registered confirmation of the selected Adaloss reading (docs/RESULTS.md,
"Pre-registration", "Confirmation" and the fourth addendum).

Per task, on its headline test metric over CONFIRMATION_SEEDS, the selected reading is paired
seed by seed with two references, one family each: FIXED, the fixed sigma with the best mean
(chosen after the fact, which favours it), and LITERAL, the paper-literal reading (no such row
when the literal reading is the one selected). Within a family the t-test p-values of the tasks
are Holm-corrected (`comparison.holm`; a task without a test counts as p = 1, so the correction
is always over every task) and the verdict is read from the corrected p; the exact Wilcoxon p
stays beside it, uncorrected, as a check. A seed where the selected reading diverged and the
reference did not makes the task's verdict "worse", whatever the test says: leaving that pair
out would favour the reading that diverged.

The library's default Adaloss takes the selected reading only when, in the LITERAL family, it is
better on at least one task and worse on none (`default_changes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.track.comparison import COLUMNS, best_fixed_method, holm, paired_row, verdict
from bench.track.orphans import SUPERSEDED_TAG
from bench.track.selection import READINGS_PROFILE, readings_grid

if TYPE_CHECKING:
    import pandas as pd

    from bench.run.cell import CellConfig

CONFIRMATION_SEEDS = range(5)
LITERAL = "literal"  # the readings grids' label of the paper's rule as written
FIXED = "fixed"  # the schedule kind of the fixed-sigma references
FAMILIES = (FIXED, LITERAL)
REFERENCES = {FIXED: "the best fixed sigma", LITERAL: "the paper-literal reading"}
TABLE_COLUMNS = ("family", "task", *COLUMNS, "diverged", "p_holm")


@dataclass(frozen=True)
class TaskRuns:
    """One task's confirmation runs: `records` as `report.run_records` builds them (the fixed
    sigmas, the literal and the selected reading, one lr), compared on `metric`."""

    records: pd.DataFrame
    metric: str
    higher_is_better: bool


def confirmation_cells(task: str, selected: str) -> list[CellConfig]:
    """The cells the confirmation reads for `task`: the fixed sigmas of the task's own grid and
    the selected and literal readings of its readings grid, at the readings grid's learning
    rate, profile READINGS_PROFILE, seeds CONFIRMATION_SEEDS."""
    from bench.run.grid import expand_cells, load_grid

    readings, own = load_grid(readings_grid(task)), load_grid(task)
    lrs = readings.lrs[:1]
    fixed = [label for label, spec in own.methods.items() if spec.kind == FIXED]
    compared = [label for label in readings.methods if label in (selected, LITERAL)]
    return expand_cells(own, READINGS_PROFILE, CONFIRMATION_SEEDS, fixed, lrs) + expand_cells(
        readings, READINGS_PROFILE, CONFIRMATION_SEEDS, compared, lrs
    )


def usable_run(runs: Sequence[Any], metric: str) -> Any | None:
    """A cell's result among its MLflow `runs`: the newest FINISHED run that no later run
    superseded, or None when there is none or it finished without diverging but lacks `metric`
    (its pair would silently drop out)."""
    finished = [
        run for run in runs if run.info.status == "FINISHED" and SUPERSEDED_TAG not in run.data.tags
    ]
    if not finished:
        return None
    newest = max(finished, key=lambda run: run.info.start_time)
    diverged = newest.data.tags.get("outcome") == "diverged"
    return newest if diverged or metric in newest.data.metrics else None


def confirmation_table(tasks: Mapping[str, TaskRuns], selected: str) -> pd.DataFrame:
    """One row per (family, task) in FAMILIES then `tasks` order: `selected` against that
    family's reference. Columns TABLE_COLUMNS: those of `comparison.COLUMNS`, where p is the
    task's own t-test p; diverged, the seeds where `selected` diverged and the reference did not;
    p_holm, the Holm-adjusted p within the family; verdict, read from p_holm (or "worse" when
    diverged > 0)."""
    import pandas as pd

    rows = []
    for family in FAMILIES:
        if family == LITERAL and selected == LITERAL:
            continue
        found = [
            {"family": family, "task": task, **_compare(runs, selected, family)}
            for task, runs in tasks.items()
        ]
        adjusted = holm([1.0 if math.isnan(row["p"]) else row["p"] for row in found])
        for row, p_holm in zip(found, adjusted, strict=True):
            higher = tasks[row["task"]].higher_is_better
            row["p_holm"] = p_holm
            row["verdict"] = (
                "worse"
                if row["diverged"]
                else verdict(p_holm, row["difference_mean"], row["pairs"], higher)
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def default_changes(table: pd.DataFrame) -> bool:
    """Whether the library's default takes the selected reading: in the LITERAL family of
    `confirmation_table`, better on at least one task and worse on none."""
    verdicts = set(table[table.family == LITERAL].verdict)
    return "better" in verdicts and "worse" not in verdicts


def confirmation_markdown(table: pd.DataFrame, selected: str) -> list[str]:
    """`confirmation_table` as Markdown lines: one table per family, then the decision."""
    lines: list[str] = []
    for family in FAMILIES:
        rows = table[table.family == family]
        if rows.empty:
            continue
        lines += [
            f"### `{selected}` against {REFERENCES[family]}",
            "",
            "| task | metric | reference | selected mean | reference mean | difference | pairs "
            "| diverged | t | p | p (Holm) | Wilcoxon p | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            "| " + " | ".join(_row_cells(row)) + " |" for row in rows.to_dict(orient="records")
        ]
        lines.append("")
    changes = default_changes(table)
    lines.append(
        f"Decision: the library's default Adaloss {'takes' if changes else 'keeps'} "
        + (f"the `{selected}` reading." if changes else "the paper-literal rule.")
    )
    return lines


def candidates_markdown(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """The `confirmation_table` of every reading in `tables` (reading -> its table), after the
    fact, as one Markdown table per family with the reading in the first column. The Holm
    correction stays within each reading's family across the tasks; nothing is corrected across
    the readings, and no decision is printed: this is a description, not a test of a default."""
    lines: list[str] = []
    for family in FAMILIES:
        rows = [
            (reading, row)
            for reading, table in tables.items()
            for row in table[table.family == family].to_dict(orient="records")
        ]
        if not rows:
            continue
        lines += [
            f"### Every reading against {REFERENCES[family]}",
            "",
            "| reading | task | metric | reference | reading mean | reference mean | difference "
            "| pairs | diverged | t | p | p (Holm) | Wilcoxon p | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [f"| `{reading}` | " + " | ".join(_row_cells(row)) + " |" for reading, row in rows]
        lines.append("")
    return lines


def _row_cells(row: Mapping[str, Any]) -> list[str]:
    """The Markdown cells of one `confirmation_table` row, from task to verdict."""
    spread = "" if math.isnan(row["difference_std"]) else f" ± {row['difference_std']:.4g}"
    return [
        row["task"],
        f"`{row['metric']}`",
        row["reference"],
        _value_text(row["method_mean"], ".4g"),
        _value_text(row["reference_mean"], ".4g"),
        _value_text(row["difference_mean"], ".4g") + spread,
        str(row["pairs"]),
        str(row["diverged"]),
        _value_text(row["t"], ".3g"),
        _value_text(row["p"], ".3g"),
        _value_text(row["p_holm"], ".3g"),
        _value_text(row["wilcoxon_p"], ".3g"),
        row["verdict"],
    ]


def _compare(runs: TaskRuns, selected: str, family: str) -> dict[str, Any]:
    """`comparison.paired_row` of `selected` against the family's reference, plus diverged."""
    records, metric = runs.records, runs.metric
    finished = records[(records.outcome == "finished") & records[metric].notna()]
    reference = (
        best_fixed_method(finished, metric, runs.higher_is_better) if family == FIXED else LITERAL
    ) or "none finished"
    ours = finished[finished.method == selected].set_index("seed")[metric]
    theirs = finished[finished.method == reference].set_index("seed")[metric]
    seeds = sorted(set(ours.index) & set(theirs.index))
    row = paired_row(
        float(records.lr.iloc[0]),
        selected,
        reference,
        metric,
        [float(ours[s]) for s in seeds],
        [float(theirs[s]) for s in seeds],
        runs.higher_is_better,
    )
    selected_diverged = set(
        records[(records.method == selected) & (records.outcome == "diverged")].seed
    )
    row["diverged"] = len(selected_diverged & set(theirs.index))
    return row


def _value_text(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)
