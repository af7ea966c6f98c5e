"""`bench worker`: train queued cells from a shared Optuna storage until none is left."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from bench.cli import options as cli_options
from bench.scale import timing


@click.command("worker", epilog=cli_options.EXIT_CODES_HELP)
@click.option(
    "--queue",
    "queue_url",
    required=True,
    help="Optuna storage holding queued grids (from `bench run --grid NAME --queue URL`): "
    "postgresql+psycopg2://USER@HOST/DB, sqlite:///FILE or journal:FILE.",
)
@cli_options.device_option
@click.option(
    "--tracking-uri",
    help="MLflow store (default: $MLFLOW_TRACKING_URI, else the store the grid was queued with).",
)
@cli_options.data_root_option
@cli_options.torch_threads_option
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=timing.HEARTBEAT_INTERVAL_S,
    show_default=True,
    help="Seconds between this worker's heartbeats.",
)
@click.option(
    "--grace",
    type=click.IntRange(min=1),
    help="A cell whose worker sent no heartbeat for this many seconds is retried "
    "(default: 2 x --heartbeat). Use the same value on every worker.",
)
@click.option(
    "--max-retry",
    type=click.IntRange(min=0),
    default=timing.MAX_RETRY,
    show_default=True,
    help="How often one cell is retried after its worker died.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=timing.POLL_S,
    show_default=True,
    help="Seconds between looks at the queue while other workers still train cells.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="When no cell waits but others are running, wait (to retry any whose worker dies) "
    "instead of exiting.",
)
def worker(
    queue_url: str,
    device: str,
    tracking_uri: str | None,
    data_root: Path | None,
    threads: int,
    heartbeat: int,
    grace: int | None,
    max_retry: int,
    poll: float,
    wait: bool,
) -> None:
    """Take queued cells one at a time until none is left, logging each to MLflow."""
    import optuna

    from bench.cli import inputs
    from bench.data.sources import data_root as default_data_root
    from bench.run import runner
    from bench.scale import queue
    from bench.scale import worker as workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        device = inputs.check_device(device)
        if tracking_uri is not None:
            inputs.check_tracking_uri(tracking_uri)
        inputs.check_writable_folder(default_data_root(data_root), "--data-root")
        inputs.check_storage_url(queue_url, "--queue")
        liveness = timing.Liveness(heartbeat, grace, max_retry)
        storage = queue.open_storage(queue_url, liveness)
    except ValueError as error:  # QueueError and the checks of bench.cli.inputs
        raise cli_options.BadInput(str(error)) from None
    if threads:
        import torch

        torch.set_num_threads(threads)
    grids = queue.queued_grids(storage)
    if not grids:
        click.echo(
            f"no queued grid in {queue.redact(queue_url)}; queue one with "
            f"`bench run --grid NAME --queue {queue.redact(queue_url)}`",
            err=True,
        )
        return
    for grid in grids:
        uri = workers.resolve_tracking_uri(tracking_uri, grid)
        warning = queue.local_tracking_warning(queue_url, uri)
        if warning:
            click.echo(warning, err=True)
    options = workers.WorkerOptions(
        device=device,
        tracking_uri=tracking_uri,
        data_root=data_root,
        liveness=liveness,
        poll_s=poll,
        wait=wait,
        command=shlex.join(["bench", *sys.argv[1:]]),
    )
    click.echo(
        f"worker {workers.worker_name()} on {device}: queue {queue.redact(queue_url)} "
        f"({', '.join(grid.study.study_name for grid in grids)})",
        err=True,
    )
    serving = workers.Worker(storage, options, say=lambda text: click.echo(text, err=True))
    try:
        with cli_options.sigterm_as_interrupt():
            reports = serving.run()
    except KeyboardInterrupt as error:
        click.echo("\ninterrupted: this worker's cell went back to the queue", err=True)
        sys.exit(cli_options.interrupted_exit_code(error))
    if not reports:
        click.echo("no cell was waiting; nothing to do", err=True)
        return
    for task_reports in workers.reports_by_task(reports).values():
        click.echo(runner.summary_table(task_reports, data_root))
    cli_options.exit_if_cells_failed(reports)
