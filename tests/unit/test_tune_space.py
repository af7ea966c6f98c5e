"""`bench tune`'s search space (a grid's `tune:` section) and its window-aware pruner."""

from __future__ import annotations

import statistics
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from bench.run.grid import expand_cells, load_grid
from bench.scale.tune import WindowWarmupPruner, first_sigma_move
from bench.scale.tune_space import (
    DEFAULT_SPACE,
    ParamRange,
    TuneSpec,
    read_tune_section,
    tuned_cell,
)


class SectionError(ValueError):
    pass


def fail(key: tuple[str, ...], message: str) -> SectionError:
    return SectionError(f"{'.'.join(key)}: {message}")


def read(data: dict[str, Any]) -> TuneSpec:
    return read_tune_section(data, fail)


def test_an_empty_section_is_the_default_space() -> None:
    spec = read({})
    assert spec.method == "adaloss"
    assert dict(spec.space) == {
        "window": ParamRange("window", 2, 8),
        "rho": ParamRange("rho", 0.05, 5.0, log=True),
    }
    assert spec.space == DEFAULT_SPACE
    assert (spec.n_startup_trials, spec.n_warmup_steps) == (4, None)


def test_a_full_section_is_read_with_yaml_number_text() -> None:
    spec = read(
        {
            "method": "ada",
            "space": {
                "window": {"low": 3, "high": 6},
                "max_step": {"low": "1e-1", "high": 32, "log": True},
                "lr": {"choices": ["1e-3", 1e-4]},
                "restrict": {"choices": [True, False]},
                "sigma0": {"choices": [None, 40]},
            },
            "pruner": {"n_startup_trials": 2, "n_warmup_steps": 5},
        }
    )
    assert spec.method == "ada"
    assert spec.space["window"] == ParamRange("window", 3, 6)
    assert spec.space["max_step"] == ParamRange("max_step", 0.1, 32.0, log=True)
    assert spec.space["lr"].choices == (1e-3, 1e-4)
    assert spec.space["restrict"].choices == (True, False)
    assert spec.space["sigma0"].choices == (None, 40.0)
    assert "rho" not in spec.space  # a space lists exactly the tuned parameters
    assert (spec.n_startup_trials, spec.n_warmup_steps) == (2, 5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"methd": "adaloss"}, "tune.methd: unknown key (valid: method, space, pruner)"),
        ({"space": {"k": {"low": 1, "high": 2}}}, "tune.space.k: cannot be tuned"),
        ({"space": {"rho": {"low": 2, "high": 1}}}, "tune.space.rho: low (2) must be below high"),
        ({"space": {"rho": {"low": 0, "high": 1}}}, "tune.space.rho.low: must be positive"),
        ({"space": {"window": {"low": 1, "high": 4}}}, "tune.space.window.low: must be at least 2"),
        ({"space": {"window": {"low": 2.5, "high": 4}}}, "tune.space.window.low: must be an int"),
        ({"space": {"rho": {"low": 0.1}}}, "tune.space.rho: missing key 'high'"),
        ({"space": {"rho": {"low": 0.1, "high": 1, "lg": True}}}, "tune.space.rho.lg: unknown"),
        ({"space": {"rho": {"low": 0.1, "high": 1, "log": "yes"}}}, "tune.space.rho.log: must be"),
        ({"space": {"rho": {"low": "x", "high": 1}}}, "tune.space.rho.low: must be a number"),
        ({"space": {"lr": {"choices": []}}}, "tune.space.lr.choices: must be a non-empty list"),
        ({"space": {"lr": {"choices": [1e-3], "low": 1}}}, "tune.space.lr: give either choices"),
        ({"space": {"restrict": {"choices": [1, 0]}}}, "tune.space.restrict.choices: restrict"),
        ({"space": {"rho": {"choices": [None, 1]}}}, "tune.space.rho.choices: must be a number"),
        (
            {"space": {"restrict": {"low": 0, "high": 1}}},
            "tune.space.restrict: restrict takes choices only",
        ),
        ({"space": {}}, "tune.space: lists no parameter"),
        ({"space": [1]}, "tune.space: must be a mapping, got list"),
        ({"pruner": {"n_warmup_steps": -1}}, "tune.pruner.n_warmup_steps: must be a whole number"),
        ({"pruner": {"patience": 3}}, "tune.pruner.patience: unknown key"),
    ],
)
def test_every_mistake_names_its_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SectionError) as error:
        read(data)
    assert str(error.value).startswith(message)


def test_the_shipped_grids_document_a_valid_space() -> None:
    for name in ("cathdet", "face300w", "endovis"):
        grid = load_grid(name)
        assert grid.tune, f"{name} has no tune section"
        spec = read(grid.tune)
        assert spec.method in grid.methods
        assert grid.methods[spec.method].kind == "adaloss"
        assert {"window", "rho"} <= set(spec.space)


def test_trial_cell_replaces_only_the_tuned_values() -> None:
    base = expand_cells(load_grid("cathdet"), "smoke", methods=["adaloss"], lrs=[1e-3])[0]
    cell = tuned_cell(base, {"window": 5, "rho": 0.25, "lr": 1e-4})
    assert (cell.schedule.window, cell.schedule.rho, cell.lr) == (5, 0.25, 1e-4)
    assert cell.schedule.restrict == base.schedule.restrict
    assert (cell.method, cell.epochs, cell.seed) == (base.method, base.epochs, base.seed)
    assert tuned_cell(base, {"window": 2}).lr == base.lr


def test_first_sigma_move_is_the_smallest_window_plus_one() -> None:
    base = expand_cells(load_grid("cathdet"), "smoke", methods=["adaloss"], lrs=[1e-3])[0]
    assert first_sigma_move(read({}), base) == 3  # window 2..8
    assert first_sigma_move(read({"space": {"window": {"choices": [6, 4]}}}), base) == 5
    assert first_sigma_move(read({"space": {"rho": {"low": 0.1, "high": 1}}}), base) == 4  # w=3


def frozen(number: int, window: int, values: list[float], state: TrialState) -> Any:
    return create_trial(
        state=state,
        value=values[-1] if state == TrialState.COMPLETE else None,
        params={"window": window, "rho": 0.9},
        distributions={
            "window": IntDistribution(2, 8),
            "rho": FloatDistribution(0.05, 5.0, log=True),
        },
        intermediate_values=dict(enumerate(values, start=1)),
    )


def study_with(trials: list[Any]) -> optuna.Study:
    study = optuna.create_study(direction="minimize")
    for trial in trials:
        study.add_trial(trial)
    return study


def test_no_trial_is_pruned_before_its_window_plus_two_epochs() -> None:
    # Two finished trials with a median of 10 at every epoch; a running trial (window 3) far
    # worse: by the median rule alone it is prunable from epoch 1, but the default warm-up
    # is its own window + 2 = 5 epochs.
    finished = [
        frozen(0, 2, [9.0] * 8, TrialState.COMPLETE),
        frozen(1, 2, [11.0] * 8, TrialState.COMPLETE),
    ]
    pruner = WindowWarmupPruner(n_startup_trials=2, n_warmup_steps=None, window=3)
    decisions = []
    for epoch in range(1, 9):
        study = study_with(finished)
        running = frozen(2, 3, [50.0] * epoch, TrialState.COMPLETE)
        decisions.append(pruner.prune(study, running))
        assert statistics.median([9.0, 11.0]) < 50.0
    assert decisions == [False] * 5 + [True] * 3
    # a fixed warm-up applies to every trial alike
    fixed = WindowWarmupPruner(n_startup_trials=2, n_warmup_steps=1, window=3)
    assert fixed.prune(study_with(finished), frozen(2, 8, [50.0, 50.0], TrialState.COMPLETE))
    assert not fixed.prune(study_with(finished), frozen(2, 8, [50.0], TrialState.COMPLETE))


def test_after_the_warm_up_the_median_rule_decides() -> None:
    finished = [
        frozen(0, 2, [9.0] * 6, TrialState.COMPLETE),
        frozen(1, 2, [11.0] * 6, TrialState.COMPLETE),
    ]
    pruner = WindowWarmupPruner(n_startup_trials=2, n_warmup_steps=0, window=3)
    study = study_with(finished)
    # best so far 10.0 equals the median 10.0: not worse, kept
    assert not pruner.prune(study, frozen(2, 2, [12.0, 10.0, 10.5], TrialState.COMPLETE))
    assert pruner.prune(study, frozen(2, 2, [12.0, 10.01], TrialState.COMPLETE))
    # with fewer finished trials than n_startup_trials nothing is pruned
    lone = study_with(finished[:1])
    assert not pruner.prune(lone, frozen(2, 2, [99.0] * 4, TrialState.COMPLETE))
