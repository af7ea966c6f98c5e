"""`bench report`: tables and figures of a grid's runs, read back from MLflow."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from bench.cli.options import EXIT_CODES_HELP, BadInput, grid_experiment, tracking_uri_option


@click.command("report", epilog=EXIT_CODES_HELP)
@click.option("--grid", "grid_name", required=True, help="The grid (MLflow experiment) to report.")
@click.option("--profile", help="Report the runs of this profile (default: the newest run's).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("md", "csv", "json")),
    default="md",
    show_default=True,
    help="What to print; summary.md and summary.csv are always "
    "written (and summary.json for json).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: reports/<grid>).",
)
@click.option(
    "--overlays/--no-overlays",
    default=True,
    show_default=True,
    help="Copy every cell's prediction overlay into overlays/ (about 85 kB each).",
)
@click.option(
    "--reference",
    help="Pair every other method with this method label (an ablation's baseline) instead of "
    "pairing the adaptive schedules with the best fixed sigma.",
)
@click.option(
    "--mlflow-url",
    help="The MLflow UI's address (e.g. http://127.0.0.1:5000): report.html links each cell to "
    "its run there.",
)
@tracking_uri_option
def report(
    grid_name: str,
    profile: str | None,
    fmt: str,
    out: Path | None,
    overlays: bool,
    reference: str | None,
    mlflow_url: str | None,
    tracking_uri: str | None,
) -> None:
    """Tables (mean +- std over seeds, beside the paper's numbers) and figures of a grid's runs."""
    from bench.cli import inputs
    from bench.track import report as reports
    from bench.track import tracking

    # the report downloads small artifacts; MLflow's per-download progress bars are noise here
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    name = grid_experiment(grid_name)
    folder = out or Path("reports") / name
    try:
        uri = inputs.check_tracking_uri(tracking.tracking_uri(tracking_uri))
        inputs.check_writable_folder(out or Path("reports"), "--out")
        # a grid of several budgets: one report per budget, then the budgets side by side
        budgets = reports.store_budgets(uri, name, profile)
        results = [
            reports.build_report(
                uri, name, profile=profile, reference=reference, grid_file=grid_name, epochs=epochs
            )
            for epochs in (budgets if len(budgets) > 1 else [None])
        ]
    except ValueError as error:  # ReportError and the checks of bench.cli.inputs
        raise BadInput(str(error)) from None
    command = shlex.join(["bench", *sys.argv[1:]])
    if len(results) == 1:
        written = reports.write_report(
            results[0], folder, fmt, overlays=overlays, command=command, mlflow_url=mlflow_url
        )
        click.echo(reports.render(results[0], fmt))
    else:
        from bench.track.budget import write_budget_report

        written = []
        for epochs, result in zip(budgets, results, strict=True):
            written += reports.write_report(
                result, folder / f"epochs{epochs}", fmt, overlays=overlays
            )
            click.echo(f"# {epochs} epochs\n\n" + reports.render(result, fmt))
        written += write_budget_report(results, folder)
        click.echo(written[-3].read_text(encoding="utf-8"))
    click.echo(f"wrote {', '.join(str(path) for path in written)} and figures", err=True)
