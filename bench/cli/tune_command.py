"""`bench tune`: an Optuna study of Adaloss's parameters on a grid's task."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from bench.cli import options as cli_options


@click.command("tune", epilog=cli_options.EXIT_CODES_HELP)
@cli_options.grid_option(" Its `tune:` section is the search space.")
@click.option("--method", help="The grid's method to tune (default: the tune section's, adaloss).")
@click.option(
    "--trials",
    type=click.IntRange(min=0),
    help="Trials this process adds to the study (several processes may share one study; "
    "0 only creates it).",
)
@cli_options.profile_option
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per trial (default: profile's).")
@click.option(
    "--lr",
    type=float,
    help="Learning rate when the space does not tune it (default: the grid's first).",
)
@click.option(
    "--storage",
    help="Optuna storage: an RDB URL (postgresql+psycopg2://USER@HOST/DB) or journal:FILE "
    "(default: sqlite:///<MLflow store folder>/optuna.db, i.e. mlruns/optuna.db).",
)
@click.option("--study", "study_name", help="Study name (default: <grid>-<method>-<profile>).")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="TPE sampler seed (give each process sharing a study its own).",
)
@cli_options.device_option
@cli_options.tracking_uri_option
@cli_options.data_root_option
@click.option(
    "--show",
    is_flag=True,
    help="Print the best parameters and parameter importances, and log Optuna's figures to MLflow.",
)
def tune(
    grid_name: str,
    method: str | None,
    trials: int | None,
    profile: str,
    epochs: int | None,
    lr: float | None,
    storage: str | None,
    study_name: str | None,
    seed: int,
    device: str,
    tracking_uri: str | None,
    data_root: Path | None,
    show: bool,
) -> None:
    """Tune Adaloss (window, rho, ...) with Optuna; each trial is a nested MLflow run."""
    import optuna

    from bench.cli import inputs
    from bench.data.sources import cell_task
    from bench.data.sources import data_root as default_data_root
    from bench.run.grid import GridError, expand_cells, load_grid
    from bench.run.progress import Progress
    from bench.run.schedule import KEYS_BY_KIND
    from bench.scale import queue
    from bench.scale import tune as tuning
    from bench.scale.tune_space import read_tune_section
    from bench.track import tracking

    if trials is None and not show:
        raise click.UsageError(
            "give --trials N (--trials 0 only creates the study), and/or --show to print it"
        )
    try:
        grid = load_grid(grid_name)

        def fail(key: tuple[str, ...], message: str) -> GridError:
            return GridError(f"{grid.path}: {'.'.join(key)}: {message}")

        spec = read_tune_section(grid.tune, fail)
        label = method or spec.method
        if label not in grid.methods:
            raise GridError(
                f"{grid.path}: no method {label!r} to tune (methods: {', '.join(grid.methods)}); "
                "pass --method or set tune.method"
            )
        kind = grid.methods[label].kind
        wrong = [n for n in spec.space if n != "lr" and n not in KEYS_BY_KIND[kind]]
        if wrong:
            raise GridError(
                f"{grid.path}: tune.space: {', '.join(wrong)} do(es) not apply to method "
                f"{label!r} (schedule {kind}); tune an adaloss method (--method)"
            )
        device = inputs.check_device(device)
        chosen = inputs.resolve_profile(profile, device)
        [base] = expand_cells(
            grid, chosen, seeds=1, methods=[label], lrs=[lr or grid.lrs[0]], epochs=epochs
        )
        uri = inputs.check_tracking_uri(tracking.tracking_uri(tracking_uri))
        storage_url = storage or f"sqlite:///{tracking.store_folder(uri) / 'optuna.db'}"
        inputs.check_storage_url(storage_url, "--storage")
        inputs.check_writable_folder(default_data_root(data_root), "--data-root")
        data_lines = inputs.check_data([base], data_root)
    except ValueError as error:  # GridError and the checks of bench.cli.inputs
        raise cli_options.BadInput(str(error)) from None
    if profile == "auto":
        click.echo(inputs.auto_profile_note(chosen), err=True)
    profile = chosen
    for line in data_lines:
        click.echo(line, err=True)

    first_move = tuning.first_sigma_move(spec, base)
    if base.epochs <= first_move:
        click.echo(
            f"note: Adaloss moves sigma first after epoch {first_move} (window + 1) and trials "
            f"run {base.epochs} epoch(s): sigma stays at its start in every trial; raise "
            "--epochs to see the schedule's parameters matter",
            err=True,
        )
    name = study_name or f"{grid.name}-{label}-{profile}"
    warning = queue.local_tracking_warning(storage_url, uri)
    if warning:
        click.echo(warning, err=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    validation_metric = cell_task(base, data_root).validation_metric
    try:
        study = tuning.open_study(
            queue.open_storage(storage_url), name, base, spec, validation_metric, seed
        )
    except ValueError as error:  # QueueError and a study made for other settings
        raise cli_options.BadInput(str(error)) from None

    client = tracking.open_store(uri)
    experiment = f"{grid.name}-tune"
    experiment_id = tracking.ensure_experiment(client, uri, experiment)
    if not trials and not show:
        click.echo(
            f"study {name} is ready in {queue.redact(storage_url)} "
            f"({len(study.get_trials(deepcopy=False))} trials so far) and MLflow experiment "
            f"{experiment} in {uri}; tuning processes join it with the same --storage and "
            "--study and their own --seed",
            err=True,
        )
        return
    tracker = tracking.GridTracker.start(
        client,
        experiment_id,
        grid=grid.name,
        profile=profile,
        shared_tags={**tracking.environment_tags(), "study": name},
        command=shlex.join(["bench", *sys.argv[1:]]),
        cells_total=trials or 0,
    )
    if trials:
        click.echo(
            f"study {name} in {queue.redact(storage_url)}: {trials} trial(s) of {label} "
            f"({grid.task}, profile {profile}, {base.epochs} epochs, device {device}); "
            f"objective {validation_metric}; runs in MLflow experiment {experiment} at {uri}",
            err=True,
        )
    run = tuning.TuneRun(
        base,
        spec,
        tracker,
        validation_metric,
        device,
        checkpoint_root=tracking.store_folder(uri) / "checkpoints",
        data_root=data_root,
        progress=Progress(trials) if trials else None,
    )
    try:
        if trials:
            with cli_options.sigterm_as_interrupt():
                study.optimize(run, n_trials=trials, catch=(Exception,))
    except KeyboardInterrupt as error:
        tracker.finish("KILLED", _counts(run.outcomes))
        click.echo("\ninterrupted: the open trial is marked KILLED and FAIL", err=True)
        sys.exit(cli_options.interrupted_exit_code(error))
    if run.progress is not None:
        run.progress.close()
    click.echo(tuning.summary_text(study, validation_metric, with_importances=show))
    if show:
        logged = tuning.log_study_figures(study, client, tracker.parent_run_id)
        click.echo(f"logged {', '.join(logged)} to MLflow run {tracker.parent_run_id}", err=True)
    failed = [number for number, outcome in run.outcomes.items() if outcome == "failed"]
    tracker.finish("FAILED" if failed else "FINISHED", _counts(run.outcomes))
    if failed:
        click.echo(
            f"{len(failed)} trial(s) failed ({', '.join(map(str, failed))}); their tracebacks "
            "are the runs' traceback.txt artifacts",
            err=True,
        )
        sys.exit(1)


def _counts(outcomes: dict[int, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
