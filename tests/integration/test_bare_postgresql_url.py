"""The PostgreSQL URL users type, `postgresql://USER@HOST/DB`, works for every store option with
the driver the `bench` extra installs (psycopg2), against the local server."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from bench.cli import main
from bench.track.tracking import database_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

GRID = "task: cathdet\nlrs: [1.0e-3]\nmethods:\n  sigma40: {schedule: fixed, sigma: 40}\n"


def bare(url: str) -> str:
    """The fixture's `postgresql+psycopg2://` URL as a user types it."""
    assert url.startswith("postgresql+psycopg2://")
    return "postgresql://" + url[len("postgresql+psycopg2://") :]


def test_a_bare_url_is_a_tracking_store_and_a_queue(
    tmp_path: Path, mlflow_postgres_uri: str, postgres_url: str
) -> None:
    grid = tmp_path / "bare.yaml"
    grid.write_text(GRID)
    tracking, queue = bare(mlflow_postgres_uri), bare(postgres_url)
    common = ["--grid", str(grid), "--profile", "smoke", "--tracking-uri", tracking]
    trained = CliRunner().invoke(main, ["run", *common, "--device", "cpu"])
    assert trained.exit_code == 0, (trained.stderr, trained.exception)
    assert database_url(tracking) == mlflow_postgres_uri
    client = MlflowClient(mlflow_postgres_uri)
    experiment = client.get_experiment_by_name("bare")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`bench.role` = 'cell'")
    assert run.info.status == "FINISHED"
    reported = CliRunner().invoke(main, ["report", *common, "--out", str(tmp_path / "r")])
    assert reported.exit_code == 0, (reported.stderr, reported.exception)

    queued = CliRunner().invoke(main, ["run", *common, "--device", "cpu", "--queue", queue])
    assert queued.exit_code == 0, (queued.stderr, queued.exception)
    # the cell is done in the store, so nothing new is queued; the storage opened and answered
    assert "1 already done" in queued.stderr
    assert f"bench worker --queue {queue}" in queued.stderr
