"""`bench tune`: an Optuna search over Adaloss's parameters on one task.

Adaloss claims to need no problem-specific parameters; a study checks that claim (flat parameter
importances, a best trial close to the defaults) and finds w and rho where it fails.

- The search space is the grid file's `tune:` section (`bench.scale.tune_space`); without one,
  window w in 2..8 and rho in 0.05..5 (log-uniform).
- Each trial trains one cell (the grid's method with the trial's parameters) with the shared
  trainer; the objective is the task's validation metric at the last epoch (lower is better; a
  diverged trial scores +inf), reported every epoch so that a MedianPruner can stop trials that
  lag the median of the finished ones.
- Adaloss does not move sigma before epoch w + 1, so no trial is pruned during its first
  `n_warmup_steps` epochs (default: its own w + 2).
- Each trial is a nested MLflow run (in experiment `<grid>-tune`, under the invocation's parent
  run) with its per-epoch curves and tags `study` and `trial`.
- The study lives in an Optuna storage (default `mlruns/optuna.db` next to the MLflow store);
  running `bench tune` again adds trials to it, and several processes or machines pointed at one
  shared storage tune the same study together.
"""

from __future__ import annotations

import math
import shutil
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner, MedianPruner
from optuna.trial import FrozenTrial, TrialState

from bench.run.cell import CellConfig, cell_key
from bench.run.progress import Progress
from bench.scale.tune_space import TuneSpec, tuned_cell
from bench.track.tracking import GridTracker

WARMUP_AFTER_WINDOW = 2  # epochs after the window during which no trial is pruned by default
STUDY_ATTRS = ("grid", "task", "method", "profile", "epochs", "objective")


class WindowWarmupPruner(BasePruner):
    """Optuna's MedianPruner that leaves every trial alone during its warm-up epochs.

    warm-up: `n_warmup_steps` epochs, or (None) the trial's own window + 2: Adaloss moves sigma
    first after epoch w + 1, and the validation metric shows the move an epoch later.
    """

    def __init__(self, n_startup_trials: int, n_warmup_steps: int | None, window: int) -> None:
        self.median = MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0)
        self.n_warmup_steps = n_warmup_steps
        self.window = window

    def warmup(self, trial: FrozenTrial) -> int:
        if self.n_warmup_steps is not None:
            return self.n_warmup_steps
        return int(trial.params.get("window", self.window)) + WARMUP_AFTER_WINDOW

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step <= self.warmup(trial):
            return False
        return bool(self.median.prune(study, trial))


def first_sigma_move(spec: TuneSpec, base: CellConfig) -> int:
    """The earliest epoch after which any trial's Adaloss can move sigma: smallest window + 1."""
    window = spec.space.get("window")
    if window is None:
        return base.schedule.window + 1
    smallest = min(window.choices) if window.choices is not None else window.low
    assert smallest is not None  # a range always has its low end
    return int(smallest) + 1


def study_attrs(base: CellConfig, objective: str) -> dict[str, Any]:
    """What a study is about; a later `bench tune` on the same study must match it."""
    return {
        "grid": base.grid,
        "task": base.task,
        "method": base.method,
        "profile": base.profile,
        "epochs": base.epochs,
        "objective": objective,
    }


def open_study(
    storage: Any, name: str, base: CellConfig, spec: TuneSpec, objective: str, seed: int | None
) -> optuna.Study:
    """The study `name` (created, or loaded to add trials); ValueError when an existing study of
    that name tunes something else."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=WindowWarmupPruner(spec.n_startup_trials, spec.n_warmup_steps, base.schedule.window),
        load_if_exists=True,
    )
    wanted = study_attrs(base, objective)
    # Compare only what is recorded: a process joining at this moment may see a study whose
    # creator has set some of its attributes yet.
    found = {key: study.user_attrs[key] for key in STUDY_ATTRS if key in study.user_attrs}
    differences = ", ".join(
        f"{key} {value!r} (now {wanted[key]!r})"
        for key, value in found.items()
        if value != wanted[key]
    )
    if differences:
        raise ValueError(
            f"study {name!r} was created for other settings: {differences}; pass --study NEW_NAME "
            "for a new study"
        )
    from bench.scale.queue import KIND_ATTR

    study.set_user_attr(KIND_ATTR, "tune")
    for key, value in wanted.items():
        study.set_user_attr(key, value)
    return study


@dataclass
class TuneRun:
    """What one `bench tune` invocation needs to run trials.

    train_fn: None means `bench.run.trainer.train_cell` (tests inject theirs).
    outcomes: trial number -> finished | diverged | pruned | failed | killed, of this invocation.
    """

    base: CellConfig
    spec: TuneSpec
    tracker: GridTracker
    validation_metric: str
    device: str
    checkpoint_root: Path
    data_root: Path | None = None
    train_fn: Callable[..., Any] | None = None
    progress: Progress | None = None
    outcomes: dict[int, str] = field(default_factory=dict)

    def __call__(self, trial: optuna.Trial) -> float:
        """The objective: trains the trial's cell, returns its last validation metric."""
        params = {name: space.suggest(trial) for name, space in self.spec.space.items()}
        cell = tuned_cell(self.base, params)
        key = cell_key(cell)
        run_id = self.tracker.start_cell(cell, self.device)
        self.tracker.client.set_tag(run_id, "trial", str(trial.number))
        trial.set_user_attr("cell_key", key)
        trial.set_user_attr("mlflow_run_id", run_id)
        progress = self.progress or Progress(1)
        progress.note(f"trial {trial.number}: {format_params(params)}")
        progress.cell_started(0, cell, self.device)
        started = time.perf_counter()
        pruning = _PruningEpochs(self, trial, cell, run_id, progress)
        train = self.train_fn or _train_cell()
        try:
            result = train(
                cell,
                device=self.device,
                on_epoch=pruning,
                checkpoint_dir=self.checkpoint_root / key,
                data_root=self.data_root,
            )
        except optuna.TrialPruned:
            self.tracker.client.set_tag(run_id, "outcome", "pruned")
            self.tracker.client.log_metric(
                run_id, "pruned_epoch", pruning.epoch, step=pruning.epoch
            )
            self.tracker.client.set_terminated(run_id, "FINISHED")
            self._end(trial, cell, "pruned", progress, started)
            raise
        except KeyboardInterrupt:
            self.tracker.kill_cell(run_id)
            self._end(trial, cell, "killed", progress, started)
            raise
        except Exception:
            self.tracker.fail_cell(run_id, traceback.format_exc())
            self._end(trial, cell, "failed", progress, started)
            raise
        self.tracker.finish_cell(run_id, cell, result, self.validation_metric)
        self._end(trial, cell, result.outcome, progress, started)
        if result.outcome == "diverged" or not result.history:
            return math.inf
        return float(result.history[-1][self.validation_metric])

    def _end(
        self,
        trial: optuna.Trial,
        cell: CellConfig,
        outcome: str,
        progress: Progress,
        started: float,
    ) -> None:
        self.outcomes[trial.number] = outcome
        progress.cell_ended(0, cell, outcome, time.perf_counter() - started)
        if outcome != "killed":  # a killed trial is retried and resumes from its checkpoint
            shutil.rmtree(self.checkpoint_root / cell_key(cell), ignore_errors=True)


class _PruningEpochs:
    """`on_epoch` for a trial: logs the epoch to MLflow, reports the validation
    metric to Optuna and raises TrialPruned when the pruner says so."""

    def __init__(
        self, run: TuneRun, trial: optuna.Trial, cell: CellConfig, run_id: str, progress: Progress
    ) -> None:
        self.run = run
        self.trial = trial
        self.cell = cell
        self.run_id = run_id
        self.progress = progress
        self.epoch = 0

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch = epoch
        metric = self.run.validation_metric
        self.run.tracker.log_epoch(self.run_id, epoch, metrics)
        self.progress.epoch(0, self.cell, epoch, metrics, metric)
        value = metrics.get(metric)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{metric} {value:.4g} at epoch {epoch} lags the median")


def _train_cell() -> Callable[..., Any]:
    from bench.run.trainer import train_cell

    return train_cell


def format_params(params: Mapping[str, Any]) -> str:
    return " ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in params.items()
    )


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Trial state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING) -> count."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def importances(study: optuna.Study) -> dict[str, float] | str:
    """Parameter importances (fANOVA) of the finished trials, or why there are none."""
    finished = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.value is not None and math.isfinite(trial.value)
    ]
    if len({trial.value for trial in finished}) < 2:
        return "parameter importances need at least two finished trials with different values"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return dict(optuna.importance.get_param_importances(study))


def summary_text(study: optuna.Study, objective: str, *, with_importances: bool = True) -> str:
    """Trial counts, the best trial and (with_importances) the parameter importances."""
    counts = state_counts(study)
    lines = [
        f"study {study.study_name}: {sum(counts.values())} trials ("
        + ", ".join(f"{count} {state.lower()}" for state, count in sorted(counts.items()))
        + ")"
    ]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        lines.append("no finished trial yet")
        return "\n".join(lines)
    best = study.best_trial
    lines.append(f"best: trial {best.number}, {objective} {best.value:.4g}")
    lines.extend(f"  {name}: {_shown(value)}" for name, value in best.params.items())
    if not with_importances:
        return "\n".join(lines)
    found = importances(study)
    if isinstance(found, str):
        lines.append(found)
    else:
        lines.append("parameter importances (fANOVA):")
        lines.extend(f"  {name}: {value:.3f}" for name, value in found.items())
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def log_study_figures(study: optuna.Study, client: Any, run_id: str) -> list[str]:
    """Optuna's optimisation history, intermediate values (pruning shows there) and parameter
    importances, as matplotlib figures logged to the run; returns the artifact paths."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    wanted: list[tuple[str, Callable[[optuna.Study], Any]]] = [
        ("figures/optimization_history.png", plots.plot_optimization_history),
        ("figures/intermediate_values.png", plots.plot_intermediate_values),
    ]
    if not isinstance(importances(study), str):
        wanted.append(("figures/param_importances.png", plots.plot_param_importances))
    logged = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for path, plot in wanted:
            axes = plot(study)
            figure = axes.figure
            figure.set_size_inches(8, 5)
            client.log_figure(run_id, figure, path)
            plt.close(figure)
            logged.append(path)
    return logged
