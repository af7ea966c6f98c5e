"""A grid of several budgets and a schedule clock through `bench run` and `bench report`: each
budget trains its own cells, `updates:` steps the rule mid-epoch, and the report compares the
methods at each budget and draws the headline metric against the budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from bench.cli import main
from bench.track.tracking import ROLE_TAG

pytestmark = pytest.mark.slow

GRID = """\
task: cathdet
lrs: [1.0e-3]
methods:
  sigma40: {schedule: fixed, sigma: 40}
  adaloss: {schedule: adaloss, max_step: 4}
  adaloss_clock: {schedule: adaloss, max_step: 4, updates: 6}
profiles:
  smoke: {epochs: [2, 3]}
"""


def test_budgets_and_a_clock_run_and_report_end_to_end(tmp_path: Path, tracking_uri: str) -> None:
    grid = tmp_path / "budgets.yaml"
    grid.write_text(GRID, encoding="utf-8")
    common = ["--grid", str(grid), "--tracking-uri", tracking_uri]
    trained = CliRunner().invoke(main, ["run", *common, "--profile", "smoke", "--device", "cpu"])
    assert trained.exit_code == 0, (trained.stderr, trained.exception)
    assert "sigma40 lr=0.001 seed=0 epochs=3" in trained.stdout  # the summary names the budget

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("budgets")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'cell'")
    assert sorted((r.data.tags["method"], r.data.params["epochs"]) for r in runs) == sorted(
        (method, epochs)
        for method in ("sigma40", "adaloss", "adaloss_clock")
        for epochs in ("2", "3")
    )
    assert all(run.info.status == "FINISHED" for run in runs)
    clock = [r for r in runs if r.data.tags["method"] == "adaloss_clock"]
    assert {r.data.params["schedule.updates"] for r in clock} == {"6"}
    assert all("schedule.updates" not in r.data.params for r in runs if r not in clock)

    dry = CliRunner().invoke(main, ["run", *common, "--profile", "smoke", "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
    header, *rows = dry.stdout.strip().splitlines()
    assert header.split() == ["cell_key", "task", "method", "lr", "seed", "epochs", "status"]
    assert sorted(row.split()[5] for row in rows) == ["2", "2", "2", "3", "3", "3"]
    assert {row.split()[6] for row in rows} == {"done"}

    out = tmp_path / "report"
    reported = CliRunner().invoke(main, ["report", *common, "--out", str(out), "--no-overlays"])
    assert reported.exit_code == 0, (reported.stderr, reported.exception)
    for epochs in (2, 3):
        summary = (out / f"epochs{epochs}" / "summary.md").read_text()
        assert "adaloss_clock" in summary
    budget = (out / "budget.md").read_text()
    assert "| method | lr | 2 epochs | 3 epochs |" in budget
    assert "| adaloss_clock | 0.001 |" in budget
    assert (out / "figures" / "metric_per_budget.png").stat().st_size > 0


def test_a_clock_that_does_not_fit_the_batches_stops_before_training(
    tmp_path: Path, tracking_uri: str
) -> None:
    # smoke CathDet: 24 images in batches of 8 = 3 an epoch; 10 updates in 2 epochs is 5 an epoch
    grid = tmp_path / "clock.yaml"
    grid.write_text(GRID.replace("updates: 6", "updates: 10").replace("[2, 3]", "2"))
    result = CliRunner().invoke(
        main, ["run", "--grid", str(grid), "--tracking-uri", tracking_uri, "--profile", "smoke"]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "Error: grid clock: methods.adaloss_clock: schedule.updates: 10 updates over 2 epochs is "
        "5 an epoch, more than its 3 batches; give at most 6"
    )
    assert MlflowClient(tracking_uri).get_experiment_by_name("clock") is None
