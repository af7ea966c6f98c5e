"""`bench report`: a grid's runs as tables (mean +- std over seeds, beside the paper) and figures.

Which runs: the cell runs of the grid's experiment for one profile (default: the profile of the
newest cell run). For every (method, lr, seed) the newest FINISHED run counts (a rerun with
`--force` or other `--epochs` replaces the older one); a setting with no FINISHED run is counted
by the outcome of its newest run. Means and standard deviations (sample, ddof=1; none with one
seed) are over the seeds whose run finished without diverging.

Outputs under `reports/<grid>/`: `summary.md`, `summary.csv` (and `summary.json` with --format
json), `figures/` (validation metric and sigma per epoch for every cell; sigma per landmark group
for adaptive schedules when the task has groups, like the paper's Figs 6-7) and `overlays/` (the
cells' prediction overlays). The same folder is logged as the `report/` artifact of the grid's
newest parent run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.data.layout import DataLayout
from bench.track import paper
from bench.track.comparison import ALPHA, TEST_NAME, WILCOXON_NAME, paired_comparison

if TYPE_CHECKING:
    import pandas as pd

    from bench.tasks.base import Task

OUTCOMES = ("finished", "diverged", "failed", "killed", "running")
Curve = tuple[list[float], list[float]]


class ReportError(ValueError):
    """Nothing to report (no store, experiment or runs); the message says what to run."""


@dataclass
class RunCurves:
    """Per-epoch curves of one run: the validation metric, mean sigma, sigma per group, and the
    training loss."""

    validation: Curve
    sigma_mean: Curve
    sigma_groups: dict[str, Curve] = field(default_factory=dict)
    train_loss: Curve = field(default_factory=lambda: ([], []))


@dataclass
class Report:
    """A grid's selected runs (`records`, one row per run) and their summary (`table`)."""

    grid: str
    task: str
    profile: str
    uri: str
    records: pd.DataFrame
    table: pd.DataFrame
    metrics: tuple[str, ...]
    validation_metric: str
    curves: dict[str, RunCurves]
    parent_run_id: str | None
    comparison: pd.DataFrame
    regime: pd.DataFrame
    client: Any = field(repr=False)
    reference: str | None = None  # the named comparison reference; None: the best fixed sigma
    # per landmark: the task's landmark_metric, (method, lr) rows and one column per landmark
    landmark_metric: str | None = None
    landmarks: tuple[str, ...] = ()
    headline_metric: str = ""
    headline_higher_is_better: bool = False


def build_report(
    uri: str,
    grid: str,
    *,
    profile: str | None = None,
    reference: str | None = None,
    grid_file: str | None = None,
    epochs: int | None = None,
) -> Report:
    """Reads the grid's runs from the store at `uri`; raises ReportError when there are none,
    or when `reference` (the method the comparison pairs every other with) is not in the grid.
    grid_file: the grid's YAML (default: the shipped grid `grid`), for the order of methods.
    epochs: only the cells of this budget (a grid that lists several reports each on its own,
    `run_budgets`); None: every cell, which must then share one budget."""
    from bench.track.tracking import ROLE_TAG, cell_runs, open_store

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise ReportError(f"no MLflow store at {uri}; run `bench run --grid {grid}` first")
    client = open_store(uri)
    experiment = client.get_experiment_by_name(grid)
    if experiment is None:
        raise ReportError(f"no experiment {grid!r} in {uri}; run `bench run --grid {grid}` first")
    runs = [run for group in cell_runs(client, experiment.experiment_id).values() for run in group]
    if not runs:
        raise ReportError(f"experiment {grid!r} in {uri} has no cell runs yet")
    runs.sort(key=lambda run: run.info.start_time, reverse=True)
    profile = profile or runs[0].data.tags["profile"]
    runs = [run for run in runs if run.data.tags.get("profile") == profile]
    if not runs:
        raise ReportError(f"experiment {grid!r} has no runs with profile {profile!r}")
    budgets = run_budgets(runs)
    if epochs is not None:
        runs = [run for run in runs if run_epochs(run) == epochs]
        if not runs:
            raise ReportError(
                f"experiment {grid!r} has no {profile} runs of {epochs} epochs (budgets: "
                f"{', '.join(map(str, budgets))})"
            )
    elif len(budgets) > 1:
        raise ReportError(
            f"experiment {grid!r} holds several budgets ({', '.join(map(str, budgets))} "
            "epochs); report each on its own"
        )
    task_name = runs[0].data.tags["task"]
    task, layout = run_task(runs)
    metrics = task.summary_metrics
    landmarks = layout.landmark_names if task.landmark_metric else ()
    per_landmark = [str(task.landmark_metric).format(landmark=name) for name in landmarks]
    selected = select_runs(runs)
    order = method_order(grid_file or grid)
    records = in_method_order(
        run_records(
            selected, tuple(dict.fromkeys([*metrics, task.headline_metric, *per_landmark]))
        ),
        order,
    )
    curves = {run.info.run_id: run_curves(client, run, task.validation_metric) for run in selected}
    try:
        comparison = paired_comparison(
            records, task.headline_metric, task.headline_higher_is_better, reference
        )
    except ValueError as error:
        raise ReportError(f"--reference: {error}") from None
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'parent' and tags.profile = '{profile}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return Report(
        grid=grid,
        task=task_name,
        profile=profile,
        uri=uri,
        records=records,
        table=summarise(records, [*metrics, *per_landmark], task_name, order),
        metrics=metrics,
        validation_metric=task.validation_metric,
        curves=curves,
        parent_run_id=parents[0].info.run_id if parents else None,
        comparison=comparison,
        regime=training_regime(
            records, curves, task.headline_metric, task.headline_higher_is_better
        ),
        client=client,
        reference=reference,
        landmark_metric=task.landmark_metric,
        landmarks=landmarks,
        headline_metric=task.headline_metric,
        headline_higher_is_better=task.headline_higher_is_better,
    )


def run_task(runs: Sequence[Any]) -> tuple[Task, DataLayout]:
    """The Task that scored `runs` (one task) and their data's layout: a data-shaped task
    (keypoints) is rebuilt from the layout and options its runs recorded, so the report needs
    neither the grid nor the data."""
    from bench.tasks import get_task, task_entry
    from bench.track.tracking import LAYOUT_TAG, TASK_OPTIONS_TAG

    recorded = next((run for run in runs if LAYOUT_TAG in run.data.tags), runs[0])
    tags = recorded.data.tags
    layout = (
        DataLayout.from_json(tags[LAYOUT_TAG])
        if LAYOUT_TAG in tags
        else task_entry(tags["task"]).layout
    )
    if layout is None:
        raise ReportError(
            f"no cell of task {tags['task']!r} has finished yet, and its landmarks come from "
            "the data its runs record; report again once one has"
        )
    options = json.loads(tags.get(TASK_OPTIONS_TAG, "{}"))
    return get_task(tags["task"], layout, options), layout


REGIME_COLUMNS = (
    "lr",
    "method",
    "seed",
    "epochs",
    "best",
    "best_epoch",
    "tail_gain",
    "tail_gap",
    "last_gap",
)


def training_regime(
    records: pd.DataFrame, curves: dict[str, RunCurves], metric: str, higher_is_better: bool
) -> pd.DataFrame:
    """Were the best fixed-sigma cells properly trained? One row per seed of the best fixed sigma
    at each lr (by the mean of `metric`), its validation curve judged by `bench.track.regime`:
    columns REGIME_COLUMNS and status ("converged", "still improving", "overfit", "unstable")."""
    import pandas as pd

    from bench.track.comparison import best_fixed_method
    from bench.track.regime import convergence

    usable = records[(records.outcome == "finished") & records[metric].notna()]
    rows = []
    for lr in sorted(usable.lr.unique(), reverse=True):
        at_lr = usable[usable.lr == lr]
        best = best_fixed_method(at_lr, metric, higher_is_better)
        if best is None:
            continue
        for run in at_lr[at_lr.method == best].itertuples():
            run_curve = curves[run.run_id]
            validation = run_curve.validation[1]
            if not validation:
                continue
            train = run_curve.train_loss[1]
            judged = convergence(validation, train if len(train) == len(validation) else None)
            rows.append(
                {
                    "lr": float(lr),
                    "method": best,
                    "seed": int(run.seed),
                    "epochs": len(validation),
                    "best": judged.best,
                    "best_epoch": judged.best_epoch,
                    "tail_gain": judged.tail_gain,
                    "tail_gap": judged.tail_gap,
                    "last_gap": judged.last_gap,
                    "status": judged.status,
                }
            )
    return pd.DataFrame(rows, columns=[*REGIME_COLUMNS, "status"])


def regime_markdown(regime: pd.DataFrame, validation_metric: str) -> list[str]:
    """The training-regime section: a table and a plain warning when a cell did not converge."""
    if regime.empty:
        return []
    lines = [
        "## Training regime of the best fixed sigma",
        "",
        f"Validation curve ({validation_metric}) of each seed of the best fixed sigma at each lr "
        "(bench/track/regime.py): converged when the best lies before the last 10 % of the "
        "epochs, the last quarter gains less than 2 % on the best of the first three quarters "
        "(tail gain) and its best is within 5 % of the best (tail gap); still improving when "
        "the best is late or the tail gains 2 % or more; overfit when the tail is worse while "
        "the training loss kept falling.",
        "",
    ]
    rows = [
        [
            row["method"],
            f"{row['lr']:g}",
            str(row["seed"]),
            f"{row['best']:.4g} ({row['best_epoch']}/{row['epochs']})",
            f"{100 * row['tail_gain']:.1f} %",
            f"{100 * row['tail_gap']:.1f} %",
            row["status"],
        ]
        for row in regime.to_dict(orient="records")
    ]
    header = ["method", "lr", "seed", "best (epoch)", "tail gain", "tail gap", "status"]
    lines += [*_markdown_table(header, rows), ""]
    unfinished = regime[regime.status != "converged"]
    if unfinished.empty:
        lines += ["Every best fixed-sigma cell converged.", ""]
    else:
        statuses = ", ".join(sorted(set(unfinished.status)))
        lines += [
            f"**Warning:** {len(unfinished)} of {len(regime)} best fixed-sigma cells did not "
            f"converge ({statuses}): the comparison may measure this grid's budget (epochs, "
            "training images) rather than the schedules.",
            "",
        ]
    return lines


def store_budgets(uri: str, grid: str, profile: str | None = None) -> list[int]:
    """The budgets (epochs) of the grid's cell runs of `profile` (default: the newest run's)
    in the store at `uri`, ascending; [] when it has none (`build_report` then says why)."""
    from bench.track.tracking import cell_runs, open_store

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        return []
    client = open_store(uri)
    experiment = client.get_experiment_by_name(grid)
    if experiment is None:
        return []
    runs = [run for group in cell_runs(client, experiment.experiment_id).values() for run in group]
    runs.sort(key=lambda run: run.info.start_time, reverse=True)
    profile = profile or (runs[0].data.tags["profile"] if runs else None)
    return run_budgets([run for run in runs if run.data.tags.get("profile") == profile])


def run_epochs(run: Any) -> int | None:
    """The budget (epochs) a cell run was configured with; None for a run that does not say
    (one recorded by hand, without the cell's params)."""
    epochs = run.data.params.get("epochs")
    return None if epochs is None else int(epochs)


def run_budgets(runs: Sequence[Any]) -> list[int]:
    """The distinct budgets the cell runs state, ascending."""
    return sorted({epochs for run in runs if (epochs := run_epochs(run)) is not None})


def select_runs(runs: Sequence[Any]) -> list[Any]:
    """Per (method, lr, seed) tag triple: the newest FINISHED run, else the newest run; runs an
    interrupted invocation left behind and a later one took over (`orphans.SUPERSEDED_TAG`)
    never count.

    runs: MLflow runs, newest first.
    """
    from bench.track.orphans import SUPERSEDED_TAG

    chosen: dict[tuple[str, str, str], Any] = {}
    for run in runs:
        tags = run.data.tags
        if SUPERSEDED_TAG in tags:
            continue
        setting = (tags["method"], tags["lr"], tags["seed"])
        current = chosen.get(setting)
        if current is None or (current.info.status != "FINISHED" and run.info.status == "FINISHED"):
            chosen[setting] = run
    return list(chosen.values())


def in_method_order(records: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """`records` sorted by method as in `order` (others after it, alphabetically), then lr
    descending and seed, so that every table built from them lists methods as the grid does."""
    rank = {method: index for index, method in enumerate(order)}
    ranked = records.assign(rank=[rank.get(method, len(rank)) for method in records.method])
    ranked = ranked.sort_values(["rank", "method", "lr", "seed"], ascending=[1, 1, 0, 1])
    return ranked.drop(columns="rank").reset_index(drop=True)


def run_records(runs: Sequence[Any], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per run: method, lr, seed, epochs, outcome, schedule, sigma, sigma_ref,
    paper_rule (see `paper.follows_paper_rule`), run_id, metrics."""
    import pandas as pd

    rows = []
    for run in runs:
        tags, params = run.data.tags, run.data.params
        rows.append(
            {
                "method": tags["method"],
                "lr": float(tags["lr"]),
                "seed": int(tags["seed"]),
                "epochs": run_epochs(run),
                "outcome": _outcome(run),
                "schedule": params.get("schedule.kind", ""),
                "sigma": _number(params.get("schedule.sigma")),
                "sigma_ref": _number(params.get("schedule.sigma_ref")),
                "paper_rule": paper.follows_paper_rule(params),
                "run_id": run.info.run_id,
                **{metric: run.data.metrics.get(metric, math.nan) for metric in metrics},
            }
        )
    return pd.DataFrame(rows)


def summarise(
    records: pd.DataFrame,
    metrics: Sequence[str],
    task: str,
    order: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per (method, lr): outcome counts, then per metric its mean, std and paper value.

    Columns: method, lr, seeds (finished, not diverged), then the count of each of OUTCOMES,
    then `<metric>`, `<metric> std`, `<metric> paper` for each metric; the paper value is
    NaN for a variant of the paper's rule (records' `paper_rule` False). Methods follow `order`
    (then any others alphabetically); learning rates descend.
    """
    import pandas as pd

    settings = dict.fromkeys(
        (row.method, row.lr) for row in in_method_order(records, order).itertuples()
    )
    rows = []
    for method, lr in settings:
        group = records[(records.method == method) & (records.lr == lr)]
        good = group[group.outcome == "finished"]
        first = group.iloc[0]
        row: dict[str, Any] = {"method": method, "lr": lr, "seeds": len(good)}
        row.update({outcome: int((group.outcome == outcome).sum()) for outcome in OUTCOMES})
        for metric in metrics:
            values = good[metric].dropna().astype(float)
            row[metric] = values.mean() if len(values) else math.nan
            row[f"{metric} std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            value = (
                paper.paper_value(
                    task,
                    first.schedule,
                    _optional(first.sigma),
                    _optional_int(first.sigma_ref),
                    metric,
                )
                if first.paper_rule
                else None
            )
            row[f"{metric} paper"] = math.nan if value is None else value
        rows.append(row)
    return pd.DataFrame(rows)


def run_curves(client: Any, run: Any, validation_metric: str) -> RunCurves:
    """The run's validation metric and mean sigma per epoch, and for adaptive schedules on tasks
    with landmark groups (faces) the mean sigma of each group per epoch."""
    run_id = run.info.run_id
    curves = RunCurves(
        validation=_history(client, run_id, validation_metric),
        sigma_mean=_history(client, run_id, "sigma_mean"),
        train_loss=_history(client, run_id, "train_loss"),
    )
    if run.data.params.get("schedule.kind") not in ("fixed", None):
        curves.sigma_groups = _group_sigma(client, run)
    return curves


def _group_sigma(client: Any, run: Any) -> dict[str, Curve]:
    """Mean of `sigma/<landmark>` over each group of per_landmark.csv, when groups have several
    landmarks; {} otherwise (one landmark per group says nothing beyond sigma per landmark)."""
    import pandas as pd

    names = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    if "per_landmark.csv" not in names:
        return {}
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "per_landmark.csv"))
    if "group" not in table or table.group.nunique() == len(table):
        return {}
    curves: dict[str, Curve] = {}
    for group, members in table.groupby("group", sort=False):
        histories = [
            _history(client, run.info.run_id, f"sigma/{name}") for name in members.landmark
        ]
        epochs = histories[0][0]
        if not epochs or any(h[0] != epochs for h in histories):
            continue
        means = [sum(h[1][i] for h in histories) / len(histories) for i in range(len(epochs))]
        curves[str(group)] = (epochs, means)
    return curves


def _history(client: Any, run_id: str, key: str) -> Curve:
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return [float(m.step) for m in points], [float(m.value) for m in points]


def method_order(grid: str) -> list[str]:
    """The grid file's method order when the grid is a shipped one or a readable path."""
    from bench.run.grid import GridError, load_grid

    try:
        return list(load_grid(grid).methods)
    except (GridError, OSError):
        return []


def render(report: Report, fmt: str) -> str:
    """The summary as Markdown ("md"), CSV ("csv") or JSON ("json") text."""
    if fmt == "csv":
        return str(report.table.to_csv(index=False))
    if fmt == "json":
        return json.dumps(
            {
                "grid": report.grid,
                "task": report.task,
                "profile": report.profile,
                "rows": json.loads(report.table.to_json(orient="records")),
                "comparison": json.loads(report.comparison.to_json(orient="records")),
                "regime": json.loads(report.regime.to_json(orient="records")),
            },
            indent=2,
        )
    return markdown(report)


def markdown(report: Report) -> str:
    """Title, one table per metric family (see `metric_families`), the paper's other methods,
    sources and figure links."""
    table = report.table
    lines = [
        f"# Grid {report.grid} (task {report.task}, profile {report.profile})",
        "",
        f"Store `{report.uri}`, {len(report.records)} cell runs, "
        f"generated {time.strftime('%Y-%m-%d %H:%M')}. Values are mean ± std over the seeds whose "
        "run finished without diverging; *(paper: x)* is the published value.",
        "",
    ]
    for family, metrics in metric_families(report.metrics).items():
        if family:
            lines += [f"## {family}", ""]
        header = ["method", "lr", "seeds", *[_short(metric, family) for metric in metrics]]
        rows = [
            [
                row["method"],
                f"{row['lr']:g}",
                str(row["seeds"]),
                *[_cell_text(row, metric) for metric in metrics],
            ]
            for row in table.to_dict(orient="records")
        ]
        lines += [*_markdown_table(header, rows), ""]
    lines += regime_markdown(report.regime, report.validation_metric)
    lines += comparison_markdown(report.comparison, report.reference)
    lines += landmark_markdown(report)
    lines += ["## Outcomes", ""]
    outcome_rows = [
        [row["method"], f"{row['lr']:g}", *[str(row[o]) for o in OUTCOMES]]
        for row in table.to_dict(orient="records")
    ]
    lines += [*_markdown_table(["method", "lr", *OUTCOMES], outcome_rows), ""]
    others = paper.comparison_methods(report.task)
    if others:
        metrics = [m for m in report.metrics if any(m in values for values in others.values())]
        lines += ["## The paper's comparison methods", ""]
        rows = [
            [name, *[_number_text(values.get(metric)) for metric in metrics]]
            for name, values in others.items()
        ]
        lines += [*_markdown_table(["method", *metrics], rows), ""]
    if report.task in paper.NOTES:
        lines += [paper.NOTES[report.task], ""]
    sources = paper.sources(report.task)
    if sources:
        lines += ["Sources: " + "; ".join(sources) + ".", ""]
    lines += [
        "## Figures",
        "",
        "![validation per epoch](figures/validation_per_epoch.png)",
        "",
        "![sigma per epoch](figures/sigma_per_epoch.png)",
        "",
    ]
    return "\n".join(lines)


def landmark_markdown(report: Report) -> list[str]:
    """The per-landmark table: one row per landmark, one column per (method, lr)."""
    if not report.landmarks or report.landmark_metric is None:
        return []
    rows = report.table.to_dict(orient="records")
    header = ["landmark", *[f"{row['method']} lr {row['lr']:g}" for row in rows]]
    body = []
    for name in report.landmarks:
        metric = report.landmark_metric.format(landmark=name)
        body.append([name, *[_cell_text(row, metric) for row in rows]])
    title = report.landmark_metric.format(landmark="<landmark>")
    return [
        f"## Per landmark ({title})",
        "",
        *_markdown_table(header, body),
        "",
        "![per landmark](figures/per_landmark.png)",
        "",
    ]


def comparison_markdown(comparison: pd.DataFrame, reference: str | None = None) -> list[str]:
    """The paired comparison of adaptive schedules with the best fixed sigma (or of every method
    with the named `reference`), as Markdown lines (none when nothing was paired)."""
    if comparison.empty:
        return []
    metric = comparison.metric.iloc[0]
    pairing = (
        f"On `{metric}`: {TEST_NAME}, pairs sharing a seed (initial weights, batch order, "
        f"augmentation); difference = method - reference; a verdict needs p < {ALPHA:g}. "
        f"Beside it, as a check: the {WILCOXON_NAME}."
    )
    if reference is None:
        title = "## Adaptive schedules against the best fixed sigma"
        pairing += (
            " The reference is the fixed sigma with the best mean on this same test metric, "
            "which favours it."
        )
        header = ["lr", "method", "best fixed", "method mean", "fixed mean", "difference"]
    else:
        title = f"## Every method against `{reference}`"
        header = ["lr", "method", "reference", "method mean", "reference mean", "difference"]
    lines = [title, "", pairing, ""]
    header += ["pairs", "t", "p", "Wilcoxon p", "verdict"]
    rows = [
        [
            f"{row['lr']:g}",
            row["method"],
            row["reference"],
            _number_text(row["method_mean"]),
            _number_text(row["reference_mean"]),
            _number_text(row["difference_mean"])
            + (
                ""
                if math.isnan(row["difference_std"])
                else f" ± {_number_text(row['difference_std'])}"
            ),
            str(row["pairs"]),
            _number_text(row["t"]),
            "-" if math.isnan(row["p"]) else f"{row['p']:.3g}",
            "-" if math.isnan(row["wilcoxon_p"]) else f"{row['wilcoxon_p']:.3g}",
            row["verdict"],
        ]
        for row in comparison.to_dict(orient="records")
    ]
    return [*lines, *_markdown_table(header, rows), ""]


def metric_families(metrics: Sequence[str]) -> dict[str, list[str]]:
    """Metrics grouped for display: `test_x/<family>/<subset>` by family (EndoVis claspers),
    then everything else in one unnamed family; one table of 20 columns would be unreadable."""
    families: dict[str, list[str]] = {}
    rest: list[str] = []
    for metric in metrics:
        parts = metric.split("/")
        if len(parts) >= 3:
            families.setdefault(parts[1], []).append(metric)
        else:
            rest.append(metric)
    if not families:
        return {"": rest}
    return {**families, "other": rest} if rest else families


def write_report(
    report: Report,
    folder: Path,
    fmt: str = "md",
    *,
    overlays: bool = True,
    command: str = "",
    mlflow_url: str | None = None,
) -> list[Path]:
    """Writes summary.md, summary.csv, comparison.csv (and summary.json for fmt json), figures,
    (unless `overlays` is False) overlays and report.html (`bench.track.html_report`: the
    `command` that made it, cells linked to `mlflow_url`) under `folder`, logs the folder to the
    newest parent run, and returns the summary files and the page."""
    from bench.track.html_report import write_html

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "summary.md", folder / "summary.csv", folder / "comparison.csv"]
    summary = markdown(report)
    written[0].write_text(summary, encoding="utf-8")
    written[1].write_text(render(report, "csv"), encoding="utf-8")
    written[2].write_text(report.comparison.to_csv(index=False), encoding="utf-8")
    if fmt == "json":
        written.append(folder / "summary.json")
        written[-1].write_text(render(report, "json"), encoding="utf-8")
    write_figures(report, folder, overlays=overlays)
    written.append(
        write_html(report, folder, command=command, mlflow_url=mlflow_url, summary=summary)
    )
    if report.parent_run_id is not None:
        report.client.log_artifacts(report.parent_run_id, str(folder), "report")
    return written


def write_figures(report: Report, folder: Path, *, overlays: bool = True) -> list[Path]:
    """figures/validation_per_epoch.png, figures/sigma_per_epoch.png, one
    figures/sigma_per_group_<method>_lr<lr>_s<seed>.png per run with group curves, and the runs'
    prediction overlays as overlays/<method>_lr<lr>_s<seed>.png."""
    from bench.track import figures

    rank = {method: index for index, method in enumerate(dict.fromkeys(report.table.method))}
    records = report.records.assign(rank=report.records.method.map(rank)).sort_values(
        ["rank", "lr", "seed"], ascending=[True, False, True]
    )
    validation: dict[tuple[str, str], list[figures.Curve]] = {}
    sigma: dict[tuple[str, str], list[figures.Curve]] = {}
    paths = []
    for row in records.itertuples():
        label = f"{row.lr:g}"
        curves = report.curves[row.run_id]
        if curves.validation[0]:
            validation.setdefault((row.method, label), []).append(curves.validation)
        if curves.sigma_mean[0]:
            sigma.setdefault((row.method, label), []).append(curves.sigma_mean)
        stem = f"{row.method}_lr{row.lr:g}_s{row.seed}"
        if curves.sigma_groups:
            title = f"{report.grid}: sigma per landmark group, {row.method} lr={row.lr:g}"
            paths.append(
                figures.save(
                    figures.region_sigma(curves.sigma_groups, title=title),
                    folder / "figures" / f"sigma_per_group_{stem}.png",
                )
            )
        if overlays:
            paths += _copy_overlay(report, row.run_id, folder / "overlays" / f"{stem}.png")
    if validation:
        figure = figures.grid_curves(
            validation,
            ylabel=report.validation_metric,
            title=f"{report.grid}: {report.validation_metric} per epoch (profile {report.profile})",
        )
        paths.append(figures.save(figure, folder / "figures" / "validation_per_epoch.png"))
    if sigma:
        figure = figures.grid_curves(
            sigma,
            ylabel="mean sigma (px of the sigma_ref frame)",
            title=f"{report.grid}: mean sigma per epoch (profile {report.profile})",
        )
        paths.append(figures.save(figure, folder / "figures" / "sigma_per_epoch.png"))
    if report.landmarks and report.landmark_metric is not None:
        values = {
            f"{row['method']} lr {row['lr']:g}": [
                float(row[report.landmark_metric.format(landmark=name)])
                for name in report.landmarks
            ]
            for row in report.table.to_dict(orient="records")
        }
        figure = figures.landmark_bars(
            report.landmarks,
            values,
            ylabel=report.landmark_metric.format(landmark="<landmark>"),
            title=f"{report.grid}: per landmark, mean over seeds (profile {report.profile})",
        )
        paths.append(figures.save(figure, folder / "figures" / "per_landmark.png"))
    return paths


def _copy_overlay(report: Report, run_id: str, target: Path) -> list[Path]:
    import shutil

    artifact = "figures/prediction_overlay.png"
    listed = {a.path for a in report.client.list_artifacts(run_id, "figures")}
    if artifact not in listed:
        return []
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report.client.download_artifacts(run_id, artifact), target)
    return [target]


def _outcome(run: Any) -> str:
    """finished/diverged from the outcome tag of a FINISHED run; else from the run status."""
    if run.info.status == "FINISHED":
        return "diverged" if run.data.tags.get("outcome") == "diverged" else "finished"
    if run.info.status == "RUNNING":  # a cell still training (or a process that died silently)
        return "running"
    return "failed" if run.info.status == "FAILED" else "killed"


def _cell_text(row: dict[str, Any], metric: str) -> str:
    mean, std, reference = row[metric], row[f"{metric} std"], row[f"{metric} paper"]
    if math.isnan(mean):
        text = "diverged" if row["diverged"] and not row["seeds"] else "-"
    else:
        text = _number_text(mean) + ("" if math.isnan(std) else f" ± {_number_text(std)}")
    if not math.isnan(reference):
        text += f" *(paper: {_number_text(reference)})*"
    return text


def _number_text(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


def _short(metric: str, family: str) -> str:
    """`test_recall/left_clasper/full` -> `recall full` inside the left_clasper table."""
    parts = metric.split("/")
    if len(parts) >= 3 and parts[1] == family:
        return f"{parts[0].removeprefix('test_')} {'/'.join(parts[2:])}"
    return metric


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "null") else math.nan
    except ValueError:
        return math.nan


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _optional_int(value: float) -> int | None:
    return None if math.isnan(value) else int(value)
