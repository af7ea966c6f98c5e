"""Regression: small fixed grids, trained through `bench run`, must reproduce recorded results.

Each grid in grids/ is run at the quick profile (7 epochs) with seed 0. `tox -e regression --
--update` trains RECORD_SEEDS seeds and records, per method, seed 0's values, the seeds' mean and
the seed-to-seed standard deviation s. Three kinds of check, each told by s:

- TRAJECTORIES (per epoch: the mean sigma and the training loss): a new seed-0 run against the
  recorded one. The difference of two runs has a standard deviation of s * sqrt(2), so the
  tolerance is TRAJECTORY_STDS of that, per epoch: a change that moves a curve further than the
  seeds move it fails (a stale or never-stepped sigma, a broken loss), while the noise of another
  CPU or library build (which perturbs a run as a new seed does) does not. A curve with no spread
  over seeds (a fixed sigma) must match to FLOOR.
- TWO-SIDED finals (NTV): the same tolerance on the last value.
- FLOORS on test metrics, one-sided: a trained model is a draw from the seeds' distribution, so a
  new run must not be worse than the recorded mean by more than FLOOR_STDS of s * sqrt(1 + 1/n)
  (its own spread and the mean's). A broken model (F1 0, every point missed) fails; a better one
  never does.
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
TRAJECTORY_STDS = 3.5  # of the difference between two runs, per epoch (7 epochs, two curves)
FLOOR_STDS = 2.33  # one-sided 1 % of a normal draw
FLOOR = 1e-6  # absolute slack for values with no spread over seeds (a fixed sigma)
TRAJECTORIES = ("sigma_mean", "train_loss")
TWO_SIDED = {"cathdet": ("ntv_all",), "endovis": ("ntv_all",)}
# test metric -> +1 when higher is better, -1 when lower is
FLOORS = {
    "cathdet": {"test_distance": -1, "test_within_5px": +1},
    "endovis": {"test_f1/left_clasper/full": +1, "test_f1/right_clasper/full": +1},
}

Run = dict[str, Any]  # metric -> final value, TRAJECTORIES -> per-epoch values


def run_grid(grid: Path, seeds: int, workdir: Path) -> tuple[str, dict[str, dict[int, Run]]]:
    """Train `grid` with `bench run` in a fresh store; (task, method -> seed -> run values)."""
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
    finals = (*TWO_SIDED[report.task], *FLOORS[report.task])
    values: dict[str, dict[int, Run]] = {}
    for row in report.records.to_dict(orient="records"):
        assert row["outcome"] == "finished", f"{grid.stem} {row['method']}: {row['outcome']}"
        run_id = row["run_id"]
        # read from the run itself: a checked metric need not be one of the report's columns
        logged = report.client.get_run(run_id).data.metrics
        run: Run = {metric: float(logged.get(metric, math.nan)) for metric in finals}
        for curve in TRAJECTORIES:
            history = sorted(report.client.get_metric_history(run_id, curve), key=lambda m: m.step)
            run[curve] = [float(point.value) for point in history]
        values.setdefault(row["method"], {})[int(row["seed"])] = run
    return report.task, values


def spread(values: list[float]) -> dict[str, float]:
    return {
        "seed0": values[0],
        "mean": statistics.fmean(values),
        "seed_std": statistics.stdev(values),
    }


def record(grid: Path, workdir: Path) -> dict[str, Any]:
    """expected.json's entry for one grid: per method, each checked value's seed-0 value, mean
    and spread over RECORD_SEEDS seeds (per epoch for the trajectories)."""
    task, methods = run_grid(grid, RECORD_SEEDS, workdir)
    entry: dict[str, Any] = {"task": task, "seeds": RECORD_SEEDS, "methods": {}}
    for method, seeds in methods.items():
        runs = [seeds[seed] for seed in sorted(seeds)]
        entry["methods"][method] = {
            "trajectories": {
                curve: [
                    spread(list(epoch)) for epoch in zip(*(run[curve] for run in runs), strict=True)
                ]
                for curve in TRAJECTORIES
            },
            "finals": {
                metric: spread([run[metric] for run in runs])
                for metric in (*TWO_SIDED[task], *FLOORS[task])
            },
        }
    return entry


def two_sided_tolerance(recorded: dict[str, float]) -> float:
    return TRAJECTORY_STDS * math.sqrt(2) * recorded["seed_std"] + FLOOR


def floor_of(recorded: dict[str, float], seeds: int, direction: int) -> float:
    """The worst value a new run may take: the mean, FLOOR_STDS spreads towards worse."""
    margin = FLOOR_STDS * recorded["seed_std"] * math.sqrt(1 + 1 / seeds)
    return recorded["mean"] - direction * margin


def failures_of(expected: dict[str, Any], measured: dict[str, dict[int, Run]]) -> list[str]:
    """Every check of one grid that `measured` (seed 0's run per method) fails, as a line."""
    task, seeds = expected["task"], expected["seeds"]
    failures = []
    for method, recorded in expected["methods"].items():
        run = measured[method][0]
        for curve, epochs in recorded["trajectories"].items():
            if len(run[curve]) != len(epochs):
                failures.append(
                    f"{method} {curve}: {len(run[curve])} epochs, recorded {len(epochs)}"
                )
                continue
            for epoch, (value, point) in enumerate(zip(run[curve], epochs, strict=True), 1):
                if not abs(value - point["seed0"]) <= two_sided_tolerance(point):
                    failures.append(
                        f"{method} {curve} epoch {epoch}: {value:.4g}, recorded "
                        f"{point['seed0']:.4g} +- {two_sided_tolerance(point):.3g}"
                    )
        for metric in TWO_SIDED[task]:
            point, value = recorded["finals"][metric], run[metric]
            if not abs(value - point["seed0"]) <= two_sided_tolerance(point):
                failures.append(
                    f"{method} {metric}: {value:.4g}, recorded {point['seed0']:.4g} "
                    f"+- {two_sided_tolerance(point):.3g}"
                )
        for metric, direction in FLOORS[task].items():
            point, value = recorded["finals"][metric], run[metric]
            worst = floor_of(point, seeds, direction)
            if not direction * (value - worst) >= 0:
                bound = "at least" if direction > 0 else "at most"
                failures.append(
                    f"{method} {metric}: {value:.4g}, must be {bound} {worst:.4g} (mean "
                    f"{point['mean']:.4g} of {seeds} seeds, {FLOOR_STDS:g} spreads)"
                )
    return failures


@pytest.mark.parametrize("grid", GRIDS, ids=[grid.stem for grid in GRIDS])
def test_grid_reproduces_recorded_results(
    grid: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if request.config.getoption("--update"):
        expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
        expected[grid.stem] = record(grid, tmp_path)
        EXPECTED.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        return
    if not EXPECTED.exists() or "methods" not in json.loads(EXPECTED.read_text()).get(
        grid.stem, {}
    ):
        pytest.fail(
            f"{EXPECTED}: no values for {grid.stem}; "
            "record them with `tox -e regression -- --update`"
        )
    expected = json.loads(EXPECTED.read_text())[grid.stem]
    _, measured = run_grid(grid, 1, tmp_path)
    failures = failures_of(expected, measured)
    assert not failures, (
        f"{grid.stem}: results moved beyond the seed-to-seed spread; if the change is intended, "
        "re-record with `tox -e regression -- --update`:\n" + "\n".join(failures)
    )


def recorded_seed0(expected: dict[str, Any]) -> dict[str, dict[int, Run]]:
    """The recorded seed-0 runs of one grid, as `run_grid` returns measured ones."""
    return {
        method: {
            0: {
                **{
                    curve: [p["seed0"] for p in points]
                    for curve, points in recorded["trajectories"].items()
                },
                **{metric: point["seed0"] for metric, point in recorded["finals"].items()},
            }
        }
        for method, recorded in expected["methods"].items()
    }


def test_the_recorded_runs_pass_and_a_broken_model_fails() -> None:
    """The recorded seed-0 runs pass their own checks; a model that learnt nothing (every test
    metric at its worst: F1 and hit rates 0, distances of 10^6 px) fails a floor in every
    method of every grid; and an EndoVis Adaloss F1 of 0 on the left clasper fails on its own."""
    expected = json.loads(EXPECTED.read_text())
    for grid, entry in expected.items():
        assert failures_of(entry, recorded_seed0(entry)) == [], grid
        for method in entry["methods"]:
            broken = recorded_seed0(entry)
            for metric, direction in FLOORS[entry["task"]].items():
                broken[method][0][metric] = 0.0 if direction > 0 else 1e6
            assert any(line.startswith(f"{method} test_") for line in failures_of(entry, broken)), (
                grid, method,
            )  # fmt: skip
    endovis = expected["regression_endovis"]
    no_detection = recorded_seed0(endovis)
    no_detection["adaloss"][0]["test_f1/left_clasper/full"] = 0.0
    lines = failures_of(endovis, no_detection)
    assert len(lines) == 1 and lines[0].startswith("adaloss test_f1/left_clasper/full: 0,"), lines
