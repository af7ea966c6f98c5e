"""The search space of `bench tune`: a grid file's `tune:` section, validated.

    tune:
      method: adaloss                        # the grid's method whose schedule is tuned
      space:                                 # parameter -> range; default: window and rho below
        window: {low: 2, high: 8}            # integers
        rho: {low: 0.05, high: 5, log: true} # log-uniform
        max_step: {choices: [null, 4, 16]}  # null: unbounded steps (paper-literal)
        lr: {choices: [1.0e-3, 1.0e-4]}      # or a low/high range
      pruner: {n_startup_trials: 4, n_warmup_steps: null}

Tunable: every key of the adaloss schedule (bench/run/schedule.py: lengths in pixels of the grid's
sigma_ref frame; restrict, reset_on_change, unit, variance_of and loss_scale as choices) and the
learning rate lr. `n_warmup_steps`: epochs 1..n of a trial are never
pruned (null: the trial's own window + 2, since Adaloss first moves sigma after epoch w + 1).
Only the standard library is imported here: grid loading validates the section without Optuna.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.run.cell import CellConfig
from bench.run.schedule import BOOLEAN_KEYS, CHOICE_KEYS, INTEGER_KEYS, KEYS_BY_KIND, NULLABLE_KEYS

if TYPE_CHECKING:
    import optuna

TUNE_KEYS = ("method", "space", "pruner")
RANGE_KEYS = ("low", "high", "log", "choices")
PRUNER_KEYS = ("n_startup_trials", "n_warmup_steps")
TUNABLE = (*KEYS_BY_KIND["adaloss"], "lr")

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
        if self.name in INTEGER_KEYS:
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
    if name in BOOLEAN_KEYS or name in CHOICE_KEYS:
        raise fail(at, f"{name} takes choices only, e.g. choices: [{', '.join(_options(name))}]")
    for key in ("low", "high"):
        if key not in spec:
            raise fail(at, f"missing key {key!r} (or give choices: [...])")
    low = _number(spec["low"], (*at, "low"), fail, integer=name in INTEGER_KEYS)
    high = _number(spec["high"], (*at, "high"), fail, integer=name in INTEGER_KEYS)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail((*at, "log"), f"must be true or false, got {log!r}")
    if not low < high:
        raise fail(at, f"low ({low:g}) must be below high ({high:g})")
    if name in INTEGER_KEYS and low < 2:
        raise fail((*at, "low"), f"must be at least 2 (a variance needs 2 losses), got {low:g}")
    if low <= 0:
        raise fail((*at, "low"), f"must be positive, got {low:g}")
    return ParamRange(name, low, high, log)


def _options(name: str) -> tuple[str, ...]:
    return ("true", "false") if name in BOOLEAN_KEYS else CHOICE_KEYS[name]


def _choice(name: str, value: Any, at: KeyPath, fail: Fail) -> Any:
    if value is None and name in NULLABLE_KEYS:
        return None
    if name in BOOLEAN_KEYS:
        if not isinstance(value, bool):
            raise fail(at, f"{name} choices must be true or false, got {value!r}")
        return value
    if name in CHOICE_KEYS:
        if value not in CHOICE_KEYS[name]:
            raise fail(at, f"{name} choice {value!r} is not one of {', '.join(_options(name))}")
        return value
    integer = name in INTEGER_KEYS
    number = _number(value, at, fail, integer=integer)
    if number <= 0 or (integer and number < 2):
        raise fail(at, f"{name} choice {value!r} must be {'>= 2' if integer else '> 0'}")
    return int(number) if integer else number


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


def tuned_cell(base: CellConfig, params: Mapping[str, Any]) -> CellConfig:
    """`base` with the trial's schedule parameters and learning rate."""
    schedule = dataclasses.replace(
        base.schedule,
        **{name: value for name, value in params.items() if name in KEYS_BY_KIND["adaloss"]},
    )
    return dataclasses.replace(base, schedule=schedule, lr=float(params.get("lr", base.lr)))
