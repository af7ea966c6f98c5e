"""`bench tune` on the smoke profile: pruned trials, nested MLflow runs, re-runs and --show.

The grid below tunes window, rho and lr; the learning rates make the trials' validation curves
differ from the first epoch on, so that with two finished trials the median rule has something
to prune. Training is seeded and TPE is seeded, so the study is the same on every run; the test
does not trust the pruner's word for it but recomputes the median rule from the study.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from optuna.trial import TrialState

from bench.cli import main

TUNE_GRID = """\
task: cathdet
sigma_ref: 256
lrs: [1.0e-3]
methods:
  adaloss: {schedule: adaloss, window: 2, rho: 0.9}
tune:
  space:
    window: {low: 2, high: 3}
    rho: {low: 0.05, high: 5, log: true}
    lr: {choices: [1.0e-3, 1.0e-2]}
  pruner: {n_startup_trials: 2, n_warmup_steps: 1}
"""
WARMUP, STARTUP, EPOCHS = 1, 2, 4


def tune(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["tune", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def best_so_far(trial: Any, step: int) -> float:
    return min(value for at, value in trial.intermediate_values.items() if at <= step)


def finished_before(study: optuna.Study, trial: Any, step: int) -> list[float]:
    """Values at `step` of the trials that had completed when `trial` reported `step` (trials
    run one after another here, so: those completed before it started)."""
    return [
        other.intermediate_values[step]
        for other in study.get_trials(states=(TrialState.COMPLETE,))
        if other.datetime_complete <= trial.datetime_start and step in other.intermediate_values
    ]


def check_median_rule(study: optuna.Study) -> list[Any]:
    """Every pruned trial lagged the median of the finished ones after its warm-up, and no
    finished trial ever did; returns the pruned trials."""
    pruned = []
    for trial in study.trials:
        steps = sorted(trial.intermediate_values)
        lagging = [
            step
            for step in steps
            if step > WARMUP
            and len(earlier := finished_before(study, trial, step)) >= STARTUP
            and best_so_far(trial, step) > statistics.median(earlier)
        ]
        if trial.state == TrialState.PRUNED:
            assert lagging and lagging[0] == steps[-1], f"trial {trial.number} pruned wrongly"
            pruned.append(trial)
        else:
            assert trial.state == TrialState.COMPLETE and not lagging
            assert steps == list(range(1, EPOCHS + 1))
            assert trial.value == trial.intermediate_values[EPOCHS]
    return pruned


@pytest.mark.slow
def test_tune_prunes_lagging_trials_records_them_and_adds_trials_on_rerun(
    tmp_path: Path, tracking_uri: str
) -> None:
    grid = tmp_path / "tunegrid.yaml"
    grid.write_text(TUNE_GRID, encoding="utf-8")
    common = ["--grid", str(grid), "--profile", "smoke", "--epochs", str(EPOCHS)]
    common += ["--device", "cpu", "--tracking-uri", tracking_uri, "--seed", "0"]
    code, out, err = tune([*common, "--trials", "4"])
    assert code == 0, err

    # default storage: optuna.db beside the MLflow store; default study name
    storage = f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    study = optuna.load_study(study_name="tunegrid-adaloss-smoke", storage=storage)
    assert len(study.trials) == 4
    pruned = check_median_rule(study)
    assert pruned, "no trial was pruned: the study shows no pruning"
    assert f"study tunegrid-adaloss-smoke: 4 trials ({4 - len(pruned)} complete" in out

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("tunegrid-tune")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("bench.role") == "parent"]
    trials = {int(r.data.tags["trial"]): r for r in runs if r.data.tags.get("bench.role") == "cell"}
    assert len(parents) == 1 and sorted(trials) == [0, 1, 2, 3]
    for number, run in trials.items():
        trial = study.trials[number]
        assert run.data.tags["study"] == "tunegrid-adaloss-smoke"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.params["schedule.window"] == str(trial.params["window"])
        assert float(run.data.params["lr"]) == trial.params["lr"]
        curve = client.get_metric_history(run.info.run_id, "val_distance")
        assert {m.step: m.value for m in curve} == trial.intermediate_values
        assert run.info.status == "FINISHED"
        expected = "pruned" if trial.state == TrialState.PRUNED else "finished"
        assert run.data.tags["outcome"] == expected
        if trial.state == TrialState.PRUNED:
            assert run.data.metrics["pruned_epoch"] == trial.last_step < EPOCHS

    # a second invocation adds to the same study and --show summarises it
    code, out, err = tune([*common, "--trials", "1", "--show"])
    assert code == 0, err
    study = optuna.load_study(study_name="tunegrid-adaloss-smoke", storage=storage)
    assert len(study.trials) == 5
    check_median_rule(study)
    best = study.best_trial
    assert f"best: trial {best.number}, val_distance {best.value:.4g}" in out
    assert f"  window: {best.params['window']}" in out
    assert "parameter importances (fANOVA):" in out
    for name in ("window", "rho", "lr"):
        assert f"\n  {name}: " in out.split("parameter importances (fANOVA):")[1]
    newest = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`bench.role` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    figures = {item.path for item in client.list_artifacts(newest.info.run_id, "figures")}
    assert figures == {
        "figures/optimization_history.png",
        "figures/intermediate_values.png",
        "figures/param_importances.png",
    }


def test_a_study_made_for_other_settings_is_not_reused(tmp_path: Path, tracking_uri: str) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    base = ["--grid", "cathdet", "--device", "cpu", "--tracking-uri", tracking_uri]
    base += ["--storage", storage, "--study", "mine", "--trials", "0"]
    code, _, err = tune([*base, "--profile", "smoke"])
    assert code == 0 and "study mine is ready" in err
    code, _, err = tune([*base, "--profile", "quick"])
    assert code == 2  # bad input: the study name is taken
    assert "study 'mine' was created for other settings: profile 'smoke' (now 'quick')" in err


def test_a_bad_tune_section_is_one_line_naming_the_key(tmp_path: Path) -> None:
    grid = tmp_path / "bad.yaml"
    grid.write_text(TUNE_GRID.replace("high: 3}", "hgh: 3}"), encoding="utf-8")
    code, _, err = tune(["--grid", str(grid), "--trials", "1", "--profile", "smoke"])
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(f"Error: {grid}")
    assert "tune.space.window.hgh: unknown key" in err
