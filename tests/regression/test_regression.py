"""Regression: small fixed grids, trained through `bench run`, must reproduce recorded metrics.

Each grid in grids/ is run at the quick profile (7 epochs) with seed 0, and every metric of
`CHECKED` must lie within its tolerance of the value recorded in expected.json.
`tox -e regression -- --update` trains RECORD_SEEDS seeds and records seed 0's value and the
seed-to-seed standard deviation s of each method and metric. A new run is compared with one
recorded run, and the difference of two runs has a standard deviation of s * sqrt(2), so the
tolerance is TOLERANCE_STDS of that: a change that moves a result by more than seeds move it
fails, while the noise of a different CPU or library build (which perturbs a run as a new seed
does) does not. A value with no spread over seeds (a fixed sigma) must match to FLOOR.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
GRIDS = sorted((HERE / "grids").glob("*.yaml"))
EXPECTED = HERE / "expected.json"
RECORD_SEEDS = 5
TOLERANCE_STDS = 3.0  # of the difference between two runs
FLOOR = 1e-6  # absolute slack for values with no spread over seeds (a fixed sigma)
# train_loss is the last epoch's: continuous, so it moves with any change to data, model, targets
# or schedule even where a test metric is stuck (EndoVis Adaloss detects nothing this early: F1 0).
CHECKED = {
    "cathdet": ("test_distance", "test_within_5px", "sigma_final_mean", "ntv_all", "train_loss"),
    "endovis": (
        "test_f1/left_clasper/full",
        "test_f1/right_clasper/full",
        "sigma_final_mean",
        "ntv_all",
        "train_loss",
    ),
}


def run_grid(grid: Path, seeds: int, workdir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """Train `grid` with `bench run` in a fresh store; method -> seed -> checked metrics."""
    from bench.track.report import build_report

    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    command = [
        str(Path(sys.executable).parent / "bench"), "run", "--grid", str(grid),
        "--profile", "quick", "--seeds", str(seeds), "--jobs", "2", "--device", "cpu",
        "--tracking-uri", uri, "--data-root", str(workdir / "datasets"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}"
    report = build_report(uri, grid.stem, profile="quick")
    metrics = CHECKED[report.task]
    values: dict[str, dict[int, dict[str, float]]] = {}
    for row in report.records.to_dict(orient="records"):
        assert row["outcome"] == "finished", f"{grid.stem} {row['method']}: {row['outcome']}"
        # read from the run itself: a checked metric need not be one of the report's columns
        logged = report.client.get_run(row["run_id"]).data.metrics
        values.setdefault(row["method"], {})[int(row["seed"])] = {
            metric: float(logged.get(metric, math.nan)) for metric in metrics
        }
    return values


def record(grid: Path, workdir: Path) -> dict[str, Any]:
    """expected.json's entry for one grid: per method and metric, seed 0's value, the spread
    over RECORD_SEEDS seeds and the tolerance."""
    entry: dict[str, Any] = {}
    for method, seeds in run_grid(grid, RECORD_SEEDS, workdir).items():
        entry[method] = {}
        for metric in seeds[0]:
            spread = statistics.stdev(seeds[seed][metric] for seed in seeds)
            entry[method][metric] = {
                "value": seeds[0][metric],
                "seed_std": spread,
                "tolerance": TOLERANCE_STDS * math.sqrt(2) * spread + FLOOR,
            }
    return entry


@pytest.mark.parametrize("grid", GRIDS, ids=[grid.stem for grid in GRIDS])
def test_grid_reproduces_recorded_metrics(
    grid: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if request.config.getoption("--update"):
        expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
        expected[grid.stem] = record(grid, tmp_path)
        EXPECTED.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        return
    if not EXPECTED.exists() or grid.stem not in json.loads(EXPECTED.read_text()):
        pytest.fail(
            f"{EXPECTED}: no values for {grid.stem}; "
            "record them with `tox -e regression -- --update`"
        )
    expected = json.loads(EXPECTED.read_text())[grid.stem]
    measured = run_grid(grid, 1, tmp_path)
    failures = []
    for method, metrics in expected.items():
        for metric, recorded in metrics.items():
            value = measured[method][0][metric]
            if not math.isfinite(value) or abs(value - recorded["value"]) > recorded["tolerance"]:
                failures.append(
                    f"{grid.stem} {method} {metric}: {value:.4g}, recorded {recorded['value']:.4g}"
                    f" +- {recorded['tolerance']:.3g} ({TOLERANCE_STDS:g} stds of a difference)"
                )
    assert not failures, (
        "results moved beyond the seed-to-seed spread; if the change is intended, re-record "
        "with `tox -e regression -- --update`:\n" + "\n".join(failures)
    )
