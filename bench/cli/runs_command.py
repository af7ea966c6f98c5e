"""`bench runs`: a grid's finished cell runs as files, and back into a store."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from bench.cli.options import EXIT_CODES_HELP, BadInput, grid_experiment, tracking_uri_option


@click.group(epilog=EXIT_CODES_HELP)
def runs() -> None:
    """Move finished cell runs between stores as JSON files (one per cell), e.g. to train a grid
    in pieces on machines that do not share a store, or to keep its results in git."""


@runs.command("export", epilog=EXIT_CODES_HELP)
@click.option("--grid", "grid_name", required=True, help="The grid (MLflow experiment) to export.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the files, one <cell_key>.json per finished cell (rewritten if present).",
)
@tracking_uri_option
def export_command(grid_name: str, out: Path, tracking_uri: str | None) -> None:
    """Write every cell of a grid that has a FINISHED run as one JSON file: tags, params, every
    metric's history, dataset and the text artifacts (not the images)."""
    from bench.cli import inputs
    from bench.track import archive, tracking

    # MLflow's per-download progress bars would be noise, one per artifact of every cell
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    name = grid_experiment(grid_name)
    try:
        uri = inputs.check_tracking_uri(tracking.tracking_uri(tracking_uri))
        inputs.check_writable_folder(out, "--out")
        if not tracking.store_exists(uri):
            raise BadInput(f"--tracking-uri {uri}: no store there; give the store the grid ran in")
        written = archive.export_runs(tracking.open_store(uri), name, out)
    except ValueError as error:  # ArchiveError and the checks of bench.cli.inputs
        raise BadInput(str(error)) from None
    click.echo(f"exported {len(written)} finished cell run(s) of {name} to {out}")


@runs.command("import", epilog=EXIT_CODES_HELP)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--into",
    "into_grid",
    help="Import the runs as cells of this grid (a shipped name or a YAML file): a run trained "
    "with the config of one of its cells, but for the grid and method names (e.g. a readings "
    "grid's `step_limited` as the main grid's `adaloss`), becomes that cell; the rest are left "
    "out.",
)
@tracking_uri_option
def import_command(folder: Path, into_grid: str | None, tracking_uri: str | None) -> None:
    """Re-create the runs `bench runs export` wrote in FOLDER as FINISHED cell runs of their grid
    (or, with --into, of that grid); a cell whose store already holds that run or a newer
    FINISHED one is skipped. Every file is checked before anything is written."""
    from bench.cli import inputs
    from bench.run.grid import load_grid
    from bench.track import archive, tracking

    command = shlex.join(["bench", *sys.argv[1:]])
    try:
        uri = inputs.check_tracking_uri(tracking.tracking_uri(tracking_uri))
        archived = archive.read_archive(folder)
        if into_grid is not None:
            grid = load_grid(into_grid)
            archived, left_out = archive.adopt_runs(archived, grid)
            if not archived:
                raise BadInput(
                    f"{folder}: no run trains the config of a cell of grid {grid.name} (its "
                    "task, data, a method's schedule, a learning rate, the profile's epochs); "
                    "nothing was imported"
                )
            tags = [run.record["tags"] for run in archived]
            renamed = {
                f"{t[archive.ADOPTED_FROM_TAG]} as {t['method']}"
                for t in tags
                if archive.ADOPTED_FROM_TAG in t
            }
            click.echo(
                f"{grid.name}: {len(archived)} run(s) of {folder} are cells of it"
                + (f" ({', '.join(sorted(renamed))})" if renamed else "")
                + f"; {len(left_out)} are not and were left out"
            )
        summary = archive.import_runs(tracking.open_store(uri), uri, archived, command)
    except ValueError as error:  # ArchiveError, GridError and the checks of bench.cli.inputs
        raise BadInput(str(error)) from None
    for experiment, keys in summary.imported.items():
        skipped = len(summary.skipped[experiment])
        click.echo(
            f"{experiment}: imported {len(keys)} cell run(s), skipped {skipped} already finished"
        )
