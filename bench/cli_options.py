"""Options several `bench` commands share, declared once so their meaning and help stay the same."""

from __future__ import annotations

from pathlib import Path

import click

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
