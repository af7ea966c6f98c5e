"""Options several `bench` commands share, declared once so their meaning and help stay the same,
and the exit-code convention every command follows.

Exit codes: 0 when everything asked for finished; 1 when cells (or trials) were trained and some
failed; 2 for bad input (an option, a grid file, a data source, a store), found before anything
is written; 130 when interrupted (Ctrl-C).
"""

from __future__ import annotations

from pathlib import Path

import click

from bench.profiles import PROFILES

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = (
    "Exit codes: 0 all finished; 1 some cells failed; 2 bad input (nothing was written); "
    "130 interrupted."
)


class BadInput(click.ClickException):
    """A mistake in what the user gave (option, grid file, data, store): one line, exit 2."""

    exit_code = EXIT_BAD_INPUT


data_root_option = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where datasets are cached (default: $ADALOSS_DATA_ROOT, else ./datasets).",
)

tracking_uri_option = click.option(
    "--tracking-uri",
    help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).",
)

PROFILE_CHOICES = ("auto", *PROFILES)

profile_option = click.option(
    "--profile",
    type=click.Choice(PROFILE_CHOICES),
    default="auto",
    show_default=True,
    help="Dataset/model sizes and epochs; auto: paper on CUDA, quick otherwise.",
)

device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:K."
)
