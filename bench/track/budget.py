"""Does the ranking of methods change with the training budget? A grid that lists several
budgets (`profiles: {quick: {epochs: [20, 100]}}`) is reported per budget, and here across them:
each method's headline test metric against the number of epochs, mean and the seeds' spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from bench.track.report import Report

SPREAD = ("mean", "std", "min", "max")


def budget_table(records: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (method, lr, epochs) of run records (`report.run_records`, any budgets):
    seeds (finished), mean, std, min and max of `metric` over the finished seeds. Rows keep the
    records' method order, then lr descending and epochs ascending."""
    import pandas as pd

    rows = []
    settings = dict.fromkeys((row.method, row.lr) for row in records.itertuples())
    for method, lr in settings:
        same = records[(records.method == method) & (records.lr == lr)]
        for epochs in sorted(same.epochs.unique()):
            finished = same[(same.epochs == epochs) & (same.outcome == "finished")]
            values = finished[metric].dropna().astype(float)
            rows.append(
                {
                    "method": method,
                    "lr": float(lr),
                    "epochs": int(epochs),
                    "seeds": len(values),
                    "mean": values.mean() if len(values) else math.nan,
                    "std": values.std(ddof=1) if len(values) > 1 else math.nan,
                    "min": values.min() if len(values) else math.nan,
                    "max": values.max() if len(values) else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=["method", "lr", "epochs", "seeds", *SPREAD])


def budget_markdown(table: pd.DataFrame, metric: str, higher_is_better: bool) -> list[str]:
    """The table as Markdown: one row per method and lr, one column per budget holding
    `mean +- std (n)`, and the best mean of each budget in bold."""
    budgets = sorted(table.epochs.unique())
    best = {}
    for epochs in budgets:
        means = table[table.epochs == epochs]["mean"].dropna()
        if len(means):
            best[epochs] = means.max() if higher_is_better else means.min()
    direction = "higher" if higher_is_better else "lower"
    lines = [
        f"`{metric}` ({direction} is better) per training budget: mean +- std over the finished "
        "seeds (their number in brackets); the best mean of each budget in bold.",
        "",
        "| method | lr | " + " | ".join(f"{epochs} epochs" for epochs in budgets) + " |",
        "|---|---|" + "---|" * len(budgets),
    ]
    for (method, lr), rows in table.groupby(["method", "lr"], sort=False):
        cells = []
        for epochs in budgets:
            row = rows[rows.epochs == epochs]
            if row.empty or not math.isfinite(row["mean"].iloc[0]):
                cells.append("-")
                continue
            mean, std, seeds = row["mean"].iloc[0], row["std"].iloc[0], row["seeds"].iloc[0]
            text = f"{mean:.2f}" + (f" +- {std:.2f}" if math.isfinite(std) else "")
            if mean == best.get(epochs):
                text = f"**{text}**"
            cells.append(f"{text} ({seeds})")
        lines.append(f"| {method} | {lr:g} | " + " | ".join(cells) + " |")
    return lines


def metric_per_budget(
    table: pd.DataFrame, metric: str, *, title: str, linestyles: Sequence[str] = ("-", "--")
) -> Figure:
    """Each method's mean `metric` against the budget (log x when budgets span a factor 4 or
    more), the seeds' range as a band; one line per (method, lr), a line style per lr."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axis = figure.subplots()
    lrs = sorted(table.lr.unique(), reverse=True)
    for (method, lr), rows in table.groupby(["method", "lr"], sort=False):
        rows = rows.sort_values("epochs")
        style = linestyles[lrs.index(lr) % len(linestyles)]
        label = f"{method} lr={lr:g}" if len(lrs) > 1 else str(method)
        (line,) = axis.plot(rows.epochs, rows["mean"], style, marker="o", label=label)
        axis.fill_between(rows.epochs, rows["min"], rows["max"], color=line.get_color(), alpha=0.15)
    budgets = sorted(table.epochs.unique())
    if budgets and budgets[-1] >= 4 * budgets[0]:
        axis.set_xscale("log")
    axis.set_xticks(budgets, [str(b) for b in budgets])
    axis.set_xlabel("training budget (epochs)")
    axis.set_ylabel(metric)
    axis.set_title(title)
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    return figure


def write_budget_report(reports: Sequence[Report], folder: Path) -> list[Path]:
    """budget.md, budget.csv and figures/metric_per_budget.png under `folder`, from the reports
    of one grid's budgets (each written to `folder/epochs<N>` by `report.write_report`)."""
    import pandas as pd

    from bench.track.figures import save

    first = reports[0]
    records = pd.concat([report.records for report in reports], ignore_index=True)
    table = budget_table(records, first.headline_metric)
    markdown = [
        f"# {first.grid}: the headline metric against the training budget",
        "",
        *budget_markdown(table, first.headline_metric, first.headline_higher_is_better),
        "",
        "Each budget's own report (tables, paired tests, training regime, figures) is in "
        + ", ".join(f"`epochs{report.records.epochs.iloc[0]}/`" for report in reports)
        + ".",
        "",
        "![metric per budget](figures/metric_per_budget.png)",
        "",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "budget.md", folder / "budget.csv"]
    written[0].write_text("\n".join(markdown), encoding="utf-8")
    written[1].write_text(table.to_csv(index=False), encoding="utf-8")
    figure = metric_per_budget(
        table, first.headline_metric, title=f"{first.grid}: {first.headline_metric} per budget"
    )
    written.append(save(figure, folder / "figures" / "metric_per_budget.png"))
    return written
