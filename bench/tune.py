"""`bench tune`: an Optuna search over Adaloss's parameters on one task.

Adaloss claims to need no problem-specific parameters; a study checks that claim (flat parameter
importances, a best trial close to the defaults) and finds w and rho where it fails.

- The search space is the grid file's `tune:` section (`read_tune_section`); without one,
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

import dataclasses
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

from bench.cell import CellConfig, cell_key
from bench.progress import Progress
from bench.tracking import GridTracker

TUNE_KEYS = ("method", "space", "pruner")
RANGE_KEYS = ("low", "high", "log", "choices")
PRUNER_KEYS = ("n_startup_trials", "n_warmup_steps")
SCHEDULE_PARAMS = ("window", "rho", "max_step", "sigma0", "sigma_min", "restrict")
TUNABLE = (*SCHEDULE_PARAMS, "lr")
WARMUP_AFTER_WINDOW = 2  # epochs after the window during which no trial is pruned by default
STUDY_ATTRS = ("grid", "task", "method", "profile", "epochs", "objective")

KeyPath = tuple[str, ...]
Fail = Callable[[KeyPath, str], Exception]


@dataclass(frozen=True)
class ParamRange:
    """One tuned parameter: `choices`, or a `low`..`high` range (log-uniform when `log`).

    window is an integer range; the others are floats; restrict takes choices only.
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.name == "window":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


DEFAULT_SPACE = {
    "window": ParamRange("window", 2, 8),
    "rho": ParamRange("rho", 0.05, 5.0, log=True),
}


@dataclass(frozen=True)
class TuneSpec:
    """A grid's `tune:` section.

    method: the grid's method label whose schedule is tuned (an adaloss schedule).
    space: parameter -> range. n_startup_trials: no trial is pruned before this many trials
    finished. n_warmup_steps: epochs 1..n of a trial are never pruned (None: the trial's window
    + 2).
    """

    method: str = "adaloss"
    space: Mapping[str, ParamRange] = field(default_factory=lambda: dict(DEFAULT_SPACE))
    n_startup_trials: int = 4
    n_warmup_steps: int | None = None


def read_tune_section(data: Mapping[str, Any], fail: Fail) -> TuneSpec:
    """The TuneSpec of a grid's `tune:` mapping; `fail(key path, message)` makes the error
    raised for a mistake (key paths start with "tune")."""
    at: KeyPath = ("tune",)
    _check_keys(data, TUNE_KEYS, at, fail)
    method = data.get("method", "adaloss")
    if not isinstance(method, str):
        raise fail((*at, "method"), f"must be a method label of this grid, got {method!r}")
    space = dict(DEFAULT_SPACE)
    if "space" in data:
        space_data = _mapping(data["space"], (*at, "space"), fail)
        if not space_data:
            raise fail((*at, "space"), "lists no parameter (leave it out for the default space)")
        space = {
            str(name): _param_range(str(name), spec, (*at, "space", str(name)), fail)
            for name, spec in space_data.items()
        }
    pruner = _mapping(data.get("pruner") or {}, (*at, "pruner"), fail)
    _check_keys(pruner, PRUNER_KEYS, (*at, "pruner"), fail)
    startup = _count(pruner.get("n_startup_trials", 4), (*at, "pruner", "n_startup_trials"), fail)
    warmup = pruner.get("n_warmup_steps")
    if warmup is not None:
        warmup = _count(warmup, (*at, "pruner", "n_warmup_steps"), fail)
    return TuneSpec(method, space, startup, warmup)


def _param_range(name: str, spec: Any, at: KeyPath, fail: Fail) -> ParamRange:
    if name not in TUNABLE:
        raise fail(at, f"cannot be tuned (tunable: {', '.join(TUNABLE)})")
    spec = _mapping(spec, at, fail)
    _check_keys(spec, RANGE_KEYS, at, fail)
    if "choices" in spec:
        if set(spec) - {"choices"}:
            raise fail(at, "give either choices or low/high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise fail((*at, "choices"), f"must be a non-empty list, got {choices!r}")
        return ParamRange(
            name, choices=tuple(_choice(name, c, (*at, "choices"), fail) for c in choices)
        )
    if name == "restrict":
        raise fail(at, "restrict is true or false: give choices: [true, false]")
    for key in ("low", "high"):
        if key not in spec:
            raise fail(at, f"missing key {key!r} (or give choices: [...])")
    low = _number(spec["low"], (*at, "low"), fail, integer=name == "window")
    high = _number(spec["high"], (*at, "high"), fail, integer=name == "window")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail((*at, "log"), f"must be true or false, got {log!r}")
    if not low < high:
        raise fail(at, f"low ({low:g}) must be below high ({high:g})")
    if name == "window" and low < 2:
        raise fail((*at, "low"), f"must be at least 2 (a variance needs 2 losses), got {low:g}")
    if low <= 0:
        raise fail((*at, "low"), f"must be positive, got {low:g}")
    return ParamRange(name, low, high, log)


def _choice(name: str, value: Any, at: KeyPath, fail: Fail) -> Any:
    if name == "restrict":
        if not isinstance(value, bool):
            raise fail(at, f"restrict choices must be true or false, got {value!r}")
        return value
    number = _number(value, at, fail, integer=name == "window")
    if number <= 0 or (name == "window" and number < 2):
        raise fail(at, f"{name} choice {value!r} must be {'>= 2' if name == 'window' else '> 0'}")
    return int(number) if name == "window" else number


def _number(value: Any, at: KeyPath, fail: Fail, *, integer: bool = False) -> float:
    """A finite number (YAML reads `1e-3` as text, so numeric text is accepted)."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (integer and number != int(number)):
        raise fail(at, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    return number


def _count(value: Any, at: KeyPath, fail: Fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(at, f"must be a whole number >= 0, got {value!r}")
    return value


def _mapping(value: Any, at: KeyPath, fail: Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(at, f"must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], at: KeyPath, fail: Fail) -> None:
    for key in data:
        if key not in allowed:
            raise fail((*at, str(key)), f"unknown key (valid: {', '.join(allowed)})")


def trial_cell(base: CellConfig, params: Mapping[str, Any]) -> CellConfig:
    """`base` with the trial's schedule parameters and learning rate."""
    schedule = dataclasses.replace(
        base.schedule, **{name: value for name, value in params.items() if name in SCHEDULE_PARAMS}
    )
    return dataclasses.replace(base, schedule=schedule, lr=float(params.get("lr", base.lr)))


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
    found = {key: study.user_attrs[key] for key in STUDY_ATTRS if key in study.user_attrs}
    if found and found != wanted:
        differences = ", ".join(
            f"{key} {found.get(key)!r} (now {wanted[key]!r})"
            for key in STUDY_ATTRS
            if found.get(key) != wanted[key]
        )
        raise ValueError(
            f"study {name!r} was created for other settings: {differences}; pass --study NEW_NAME "
            "for a new study"
        )
    from bench.queue import KIND_ATTR

    study.set_user_attr(KIND_ATTR, "tune")
    for key, value in wanted.items():
        study.set_user_attr(key, value)
    return study


@dataclass
class TuneRun:
    """What one `bench tune` invocation needs to run trials.

    train_fn: None means `bench.trainer.train_cell` (tests inject theirs).
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
        cell = trial_cell(self.base, params)
        key = cell_key(cell)
        run_id = self.tracker.start_cell(cell, self.device)
        self.tracker.client.set_tag(run_id, "trial", str(trial.number))
        trial.set_user_attr("cell_key", key)
        trial.set_user_attr("mlflow_run_id", run_id)
        progress = self.progress or Progress(1)
        progress.note(f"trial {trial.number}: {format_params(params)}")
        progress.cell_started(0, cell, self.device)
        started = time.perf_counter()
        logger = _PruningLogger(self, trial, cell, run_id, progress)
        train = self.train_fn or _train_cell()
        try:
            result = train(
                cell,
                device=self.device,
                logger=logger,
                checkpoint_dir=self.checkpoint_root / key,
                data_root=self.data_root,
            )
        except optuna.TrialPruned:
            self.tracker.client.set_tag(run_id, "outcome", "pruned")
            self.tracker.client.log_metric(run_id, "pruned_epoch", logger.epoch, step=logger.epoch)
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


class _PruningLogger:
    """The trainer's EpochLogger for a trial: logs the epoch to MLflow, reports the validation
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

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
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
    from bench.trainer import train_cell

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
