"""`bench run`: train every cell of a grid (or queue them for `bench worker`), tracked in MLflow."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bench.cli import options as cli_options

if TYPE_CHECKING:
    from bench.run.cell import CellConfig


def _split_list(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


@click.command("run", epilog=cli_options.EXIT_CODES_HELP)
@cli_options.grid_option()
@cli_options.profile_option
@click.option(
    "--seeds",
    help="Seeds to train: N for seeds 0 to N-1, or A-B for seeds A to B inclusive, e.g. a "
    "second machine's share (default: the grid's count, from 0).",
)
@click.option("--methods", help="Comma-separated method labels to run (default: all).")
@click.option("--lrs", help="Comma-separated learning rates replacing the grid's, e.g. 1e-3,1e-4.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per cell (default: profile's).")
@cli_options.device_option
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Cells trained at once in separate processes (default: one per GPU with several "
    "GPUs; on a CPU 2 when it has at least 2 cores, else 1). A cell's numbers depend on its "
    "threads, which are the cores divided by the processes.",
)
@click.option("--force", is_flag=True, help="Rerun cells that already have a FINISHED run.")
@click.option("--fail-fast", is_flag=True, help="Start no new cell after the first failure.")
@click.option("--dry-run", is_flag=True, help="List the cells and their status; train nothing.")
@cli_options.tracking_uri_option
@cli_options.data_root_option
@click.option(
    "--queue",
    "queue_url",
    help="Queue the cells in this Optuna storage for `bench worker` processes instead of training "
    "them here: postgresql+psycopg2://USER@HOST/DB, sqlite:///FILE or journal:FILE.",
)
def run(
    grid_name: str,
    profile: str,
    seeds: str | None,
    methods: str | None,
    lrs: str | None,
    epochs: int | None,
    device: str,
    jobs: int | None,
    force: bool,
    fail_fast: bool,
    dry_run: bool,
    tracking_uri: str | None,
    data_root: Path | None,
    queue_url: str | None,
) -> None:
    """Train every cell of a grid, tracked in MLflow; finished cells are skipped."""
    from bench.cli import inputs
    from bench.data.sources import data_root as default_data_root
    from bench.run import grid as grids
    from bench.run import runner
    from bench.run.progress import duration_text
    from bench.track import claims, tracking

    if queue_url is not None and (force or fail_fast or jobs):
        raise click.UsageError(
            "--queue hands the cells to `bench worker`; --force, --fail-fast and --jobs only "
            "apply to training here"
        )
    try:
        grid = grids.load_grid(grid_name)
        lr_values = None if lrs is None else grids.parse_lrs(lrs)
        seed_values = None if seeds is None else grids.parse_seeds(seeds)
        device = inputs.check_device(device)
        chosen = inputs.resolve_profile(profile, device)
        cells = grids.expand_cells(
            grid,
            chosen,
            seeds=seed_values,
            methods=_split_list(methods),
            lrs=lr_values,
            epochs=epochs,
        )
        uri = inputs.check_tracking_uri(tracking.tracking_uri(tracking_uri))
        inputs.check_writable_folder(default_data_root(data_root), "--data-root")
        if queue_url is not None:
            inputs.check_storage_url(queue_url, "--queue")
    except ValueError as error:  # GridError and the checks of bench.cli.inputs
        raise cli_options.BadInput(str(error)) from None
    if profile == "auto":
        click.echo(inputs.auto_profile_note(chosen), err=True)
    profile = chosen

    if dry_run:
        click.echo(_dry_run_table(cells, uri, queue_url))
        return
    try:
        for line in inputs.check_data(cells, data_root):
            click.echo(line, err=True)
    except ValueError as error:  # the data or the grid's task options
        raise cli_options.BadInput(str(error)) from None
    if queue_url is not None:
        _enqueue(queue_url, grid.name, cells, uri, data_root)
        return
    client = tracking.open_store(uri)
    experiment_id = tracking.ensure_experiment(client, uri, grid.name)
    tracking.describe_experiment(client, experiment_id, grid.name, grid.task)
    options = runner.RunOptions(
        checkpoint_root=tracking.store_folder(uri) / "checkpoints",
        device=device,
        jobs=jobs or runner.default_jobs(device),
        fail_fast=fail_fast,
        force=force,
        data_root=data_root,
    )
    click.echo(
        f"grid {grid.name}: {len(cells)} cells ({grid.task}, profile {profile}, "
        f"{_seeds_label(cells)}, device {device}, up to {options.jobs} at once); tracking in {uri}",
        err=True,
    )
    started = time.monotonic()
    try:
        with cli_options.sigterm_as_interrupt():
            reports = runner.run_grid(
                cells,
                client=client,
                experiment_id=experiment_id,
                grid=grid.name,
                profile=profile,
                options=options,
                command=shlex.join(["bench", *sys.argv[1:]]),
                claims=claims.open_claims(uri),
            )
    except KeyboardInterrupt as error:
        click.echo(
            "\ninterrupted: the open runs are marked KILLED; run the same command to resume",
            err=True,
        )
        sys.exit(cli_options.interrupted_exit_code(error))
    if all(report.outcome == "skipped" for report in reports):
        click.echo(
            f"all {len(reports)} cells already have a FINISHED run; nothing to do "
            "(--force reruns them)",
            err=True,
        )
    click.echo(runner.summary_table(reports, data_root))
    trained = sum(report.outcome not in ("skipped", "running elsewhere") for report in reports)
    wall = duration_text(time.monotonic() - started)
    click.echo(f"grid {grid.name}: {trained} cell(s) trained in {wall} of wall time", err=True)
    click.echo(
        f"compare the cells in the MLflow UI (README, 'mlflow ui'): "
        f"{tracking.comparison_url('http://127.0.0.1:5000', experiment_id)}",
        err=True,
    )
    cli_options.exit_if_cells_failed(reports)


def _seeds_label(cells: list[CellConfig]) -> str:
    """`seed 2` or `seeds 0-4`: `--seeds 2` means seeds 0 and 1, and the first line says so."""
    seeds = sorted({cell.seed for cell in cells})
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


def _enqueue(
    queue_url: str, grid_name: str, cells: list[CellConfig], uri: str, data_root: Path | None
) -> None:
    """Queue the cells for `bench worker` processes and say how to start them."""
    import optuna

    from bench.scale import queue

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warning = queue.local_tracking_warning(queue_url, uri)
    if warning:
        click.echo(warning, err=True)
    try:
        summary = queue.enqueue_grid(queue_url, grid_name, cells, uri, data_root)
    except ValueError as error:  # QueueError
        raise cli_options.BadInput(str(error)) from None
    shown = queue.redact(queue_url)
    click.echo(
        f"queued {summary.added} new cells of grid {grid_name} in study {summary.study} at "
        f"{shown} ({summary.already_queued} already queued or running, "
        f"{summary.already_complete} already done); tracking in {uri}",
        err=True,
    )
    secret = " (the same URL, with its password)" if shown != queue_url else ""
    click.echo(
        f"start workers (one per GPU or machine) with: bench worker --queue {shown}{secret}",
        err=True,
    )


def _dry_run_table(cells: list[CellConfig], uri: str, queue_url: str | None) -> str:
    """key, task, method, lr, seed (and the epochs, for a grid of several budgets) and MLflow
    status of every cell (and its state in the queue); reads the store, creates nothing."""
    from bench.run.cell import cell_key
    from bench.track import tracking

    runs_by_key = tracking.existing_cell_runs(uri, cells[0].grid) if cells else {}
    checkpoint_root = tracking.store_folder(uri) / "checkpoints"
    budgets = len({cell.epochs for cell in cells}) > 1
    header: tuple[str, ...] = (
        "cell_key", "task", "method", "lr", "seed", *(("epochs",) if budgets else ()), "status",
    )  # fmt: skip
    queued: dict[str, str] | None = None
    if queue_url is not None and cells:
        from bench.scale import queue

        try:
            queued = queue.queue_states(queue.open_storage(queue_url), cells[0].grid)
        except ValueError as error:  # QueueError
            raise cli_options.BadInput(str(error)) from None
        header = (*header, "queue")
    rows: list[tuple[str, ...]] = [header]
    for cell in cells:
        key = cell_key(cell)
        row: tuple[str, ...] = (
            key,
            cell.task,
            cell.method,
            f"{cell.lr:g}",
            str(cell.seed),
            *((str(cell.epochs),) if budgets else ()),
            tracking.cell_state_text(
                runs_by_key.get(key, []), _checkpoint_epoch(checkpoint_root, key)
            ),
        )
        rows.append(row if queued is None else (*row, queued.get(key, "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _checkpoint_epoch(root: Path, key: str) -> int | None:
    from bench.run.checkpoint import checkpoints

    found = checkpoints(root / key, key)
    return found[-1][0] if found else None
