"""Options several `bench` commands share, declared once so their meaning and help stay the same,
and the exit-code convention every command follows.

Exit codes: 0 when everything asked for finished; 1 when cells (or trials) were trained and some
failed; 2 for bad input (an option, a grid file, a data source, a store), found before anything
is written; 130 when interrupted (Ctrl-C); 143 when terminated (SIGTERM, which Slurm, container
runtimes, `timeout` and shutdowns send), handled as Ctrl-C is.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from bench.profiles import PROFILES
from bench.tasks import SYNTHETIC_TASKS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_CODES_HELP = (
    "Exit codes: 0 all finished; 1 some cells failed; 2 bad input (nothing was written); "
    "130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt so that the same code closes the
    open runs KILLED and ends the cell processes; the command then exits 143."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread, as SIGINT raises
    KeyboardInterrupt."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_exit_code(error: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED


class BadInput(click.ClickException):
    """A mistake in what the user gave (option, grid file, data, store): one line, exit 2."""

    exit_code = EXIT_BAD_INPUT


data_root_option = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where datasets are cached (default: $ADALOSS_DATA_ROOT, else ./datasets).",
)


def grid_option(note: str = "") -> Any:
    """The required `--grid` option of the commands that train a grid; `note` ends its help."""
    return click.option(
        "--grid",
        "grid_name",
        required=True,
        help="A shipped grid (cathdet, face300w, endovis, ...; an unknown name lists them all) "
        f"or your grid YAML.{note}",
    )


def grid_experiment(grid_name: str) -> str:
    """The MLflow experiment of `--grid`: a shipped grid's name, or a grid file's stem."""
    return Path(grid_name).stem if grid_name.endswith((".yaml", ".yml")) else grid_name


tracking_uri_option = click.option(
    "--tracking-uri",
    help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).",
)

PROFILE_CHOICES = ("auto", *PROFILES)


def profile_choice(choices: tuple[str, ...], default: str, help_text: str) -> Any:
    """A `--profile` option over `choices`."""
    return click.option(
        "--profile",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help=help_text,
    )


profile_option = profile_choice(
    PROFILE_CHOICES,
    "auto",
    "Dataset/model sizes and epochs; auto: paper on CUDA, quick otherwise.",
)
# the data and benchmark commands work on one concrete profile, so no "auto"
size_profile_option = profile_choice(
    PROFILES,
    "quick",
    "Size profile: smoke (tests), quick (64 px, CPU grids), paper (the paper's sizes).",
)

# the benchmarks that train one task's model on its generated data
synthetic_task_option = click.option(
    "--task",
    "task_name",
    type=click.Choice(SYNTHETIC_TASKS),
    default="cathdet",
    show_default=True,
    help="A task with synthetic data (its model, batch and image size).",
)


def perf_device_option(help_text: str) -> Any:
    """`--device cpu|cuda` of the speed benchmarks (no auto: a timing names its device)."""
    return click.option(
        "--device",
        type=click.Choice(["cpu", "cuda"]),
        default="cpu",
        show_default=True,
        help=help_text,
    )


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of text."
)

device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:K."
)

torch_threads_option = click.option(
    "--threads",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="torch CPU threads; 0 keeps torch's default (on a shared machine, 1 avoids waiting for "
    "a descheduled thread).",
)


def exit_if_cells_failed(reports: Sequence[Any]) -> None:
    """After the summary: exit code 1, with one line saying where the tracebacks are, when any
    cell failed or did not run (`bench.run.runner.FAILED_OUTCOMES`)."""
    from bench.run.runner import FAILED_OUTCOMES

    failed = [report for report in reports if report.outcome in FAILED_OUTCOMES]
    if failed:
        click.echo(
            f"{len(failed)} of {len(reports)} cells failed or did not run; their tracebacks are "
            "the runs' traceback.txt artifacts",
            err=True,
        )
        sys.exit(EXIT_FAILED)
