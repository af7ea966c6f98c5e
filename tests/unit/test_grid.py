"""Grid files: expansion into cells, overrides, and one clear line per mistake."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli.run_command import run
from bench.run.cell import cell_key
from bench.run.grid import (
    GridError,
    expand_cells,
    load_grid,
    parse_lrs,
    parse_seeds,
    shipped_grids,
)

USER_GRID = """\
task: cathdet
sigma_ref: 256
lrs: [1e-3, 3.0e-4]
seeds: 2
methods:
  narrow: {schedule: fixed, sigma: 5}
  ada: {schedule: adaloss, sigma0: 40, window: 4, rho: 0.5, max_step: 2, restrict: false}
  lin: {schedule: linear, sigma0: 60, k: 0.5, sigma_ref: 512}
profiles:
  quick: {epochs: 7, batch_size: 3}
"""


def write(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_grids_expand_to_the_papers_cells() -> None:
    assert shipped_grids() == [
        "budget_cathdet",
        "budget_endovis",
        "cathdet",
        "cathdet_ablation",
        "clock_cathdet",
        "clock_face300w",
        "endovis",
        "face300w",
        "readings_cathdet",
        "readings_endovis",
        "readings_face300w",
        "resolution_cathdet",
    ]
    cathdet = expand_cells(load_grid("cathdet"), "quick")
    assert len(cathdet) == 10  # sigma 5, 25, 40, 60 and Adaloss at lr 1e-3 and 1e-4
    fixed = sorted({c.schedule.sigma for c in cathdet if c.schedule.kind == "fixed"})
    assert fixed == [5.0, 25.0, 40.0, 60.0]
    assert {c.lr for c in cathdet} == {1e-3, 1e-4}
    assert {c.schedule.sigma_ref for c in cathdet} == {256}
    assert sum(c.schedule.kind == "adaloss" for c in cathdet) == 2
    assert len({cell_key(c) for c in cathdet}) == 10
    assert len(expand_cells(load_grid("cathdet"), "quick", seeds=3)) == 30
    face = expand_cells(load_grid("face300w"), "quick")
    assert {c.lr for c in face} == {1e-4} and "adaloss" in {c.method for c in face}
    endovis = expand_cells(load_grid("endovis"), "quick")
    assert {c.lr for c in endovis} == {1e-3} and "adaloss" in {c.method for c in endovis}
    ablation = {c.method: c.schedule for c in expand_cells(load_grid("cathdet_ablation"), "quick")}
    assert len(expand_cells(load_grid("cathdet_ablation"), "quick")) == 6 * 3  # 3 seeds
    assert ablation["literal"].max_step is None and ablation["max_step4"].max_step == 4
    assert (ablation["iteration"].unit, ablation["iteration"].window) == ("iteration", 125)
    assert ablation["unrestricted"].restrict is False and ablation["literal"].restrict is True
    assert (ablation["linear"].kind, ablation["linear"].k) == ("linear", 3)


def test_the_budget_grids_hold_the_preregistered_cells() -> None:
    # docs/preregistration-budget.md, "Grids"
    budget = expand_cells(load_grid("budget_cathdet"), "quick")
    assert len(budget) == 5 * 2 * 5  # methods x budgets x seeds
    assert {c.epochs for c in budget} == {20, 100}
    assert {c.validation_size for c in budget} == {3200}
    clock = expand_cells(load_grid("clock_cathdet"), "quick")
    assert {(c.method, c.schedule.updates) for c in clock if c.schedule.updates} == {
        ("step_limited_u100", 100),
        ("literal_u100", 100),
    }

    # the clock grid's other cells are budget_cathdet's 20-epoch cells but for the grid's name
    def renamed(cells: list) -> list[str]:
        return sorted(json.dumps({**c.to_dict(), "grid": "x"}, sort_keys=True) for c in cells)

    short = [c for c in budget if c.epochs == 20]
    assert renamed([c for c in clock if not c.schedule.updates]) == renamed(short)
    endovis = expand_cells(load_grid("budget_endovis"), "quick")
    assert {c.epochs for c in endovis} == {30, 150} and len(endovis) == 50
    faces = expand_cells(load_grid("clock_face300w"), "quick")
    assert {c.validation_size for c in faces} == {None}  # the exported cells are its cells
    assert {c.schedule.updates for c in faces} == {None, 150}
    probe = expand_cells(load_grid("resolution_cathdet"), "paper")
    assert len(probe) == 2 * 2 * 2 and {c.epochs for c in probe} == {20}
    assert {c.extra["width"] for c in probe} == {8}


def test_the_readings_grids_hold_the_six_preregistered_candidates() -> None:
    # docs/RESULTS.md, "Pre-registration": the same six readings on every task; max_step is one
    # heatmap pixel at quick (4 px of 256 = 256 / 64; 9 px of 720 = 720 / 80)
    for task, lr, max_step in (
        ("cathdet", 1e-3, 4),
        ("face300w", 1e-4, 4),
        ("endovis", 1e-3, 9),
    ):
        cells = expand_cells(load_grid(f"readings_{task}"), "quick")
        assert len(cells) == 6 * 3 and {c.lr for c in cells} == {lr}
        readings = {c.method: c.schedule for c in cells}
        literal = readings["literal"]
        assert (literal.variance_of, literal.loss_scale) == ("epoch_means", "raw")
        assert (literal.reset_on_change, literal.max_step, literal.restrict) == (False, None, True)
        assert readings["iteration_variance"].variance_of == "iteration_losses"
        assert readings["relative_loss"].loss_scale == "relative"
        assert readings["reset_window"].reset_on_change is True
        assert readings["step_limited"].max_step == max_step
        combined = readings["combined"]
        assert (combined.loss_scale, combined.reset_on_change) == ("relative", True)
        assert (combined.max_step, combined.variance_of) == (max_step, "epoch_means")


def test_user_grid_values_and_profile_overrides(tmp_path: Path) -> None:
    grid = load_grid(str(write(tmp_path, USER_GRID)))
    assert grid.name == "mine" and grid.task == "cathdet"
    cells = expand_cells(grid, "quick")
    assert len(cells) == 3 * 2 * 2
    # seed-major, then lr, then the file's method order
    assert [(c.seed, c.lr, c.method) for c in cells[:4]] == [
        (0, 1e-3, "narrow"),
        (0, 1e-3, "ada"),
        (0, 1e-3, "lin"),
        (0, 3e-4, "narrow"),
    ]
    assert {(c.epochs, c.batch_size, c.profile, c.grid) for c in cells} == {(7, 3, "quick", "mine")}
    ada = cells[1].schedule
    assert (ada.kind, ada.sigma0, ada.window, ada.rho, ada.max_step, ada.restrict) == (
        "adaloss",
        40.0,
        4,
        0.5,
        2.0,
        False,
    )
    assert (ada.sigma_ref, cells[2].schedule.sigma_ref, cells[2].schedule.k) == (256, 512, 0.5)


def test_command_line_narrowing(tmp_path: Path) -> None:
    grid = load_grid(str(write(tmp_path, USER_GRID)))
    cells = expand_cells(grid, "quick", seeds=1, methods=["ada"], lrs=[0.01, 0.02], epochs=11)
    assert [(c.method, c.lr, c.seed, c.epochs) for c in cells] == [
        ("ada", 0.01, 0, 11),
        ("ada", 0.02, 0, 11),
    ]
    with pytest.raises(GridError, match=r"--methods: no method 'adaa'.*did you mean 'ada'"):
        expand_cells(grid, "quick", methods=["adaa"])
    with pytest.raises(GridError, match=r"--methods names no method; give one or more of narrow, "):
        expand_cells(grid, "quick", methods=[])
    with pytest.raises(GridError, match=r"--lrs: learning rate -0.1 must be a positive"):
        expand_cells(grid, "quick", lrs=[-0.1])
    assert parse_lrs("1e-3, 2e-4") == [1e-3, 2e-4]
    with pytest.raises(GridError, match=r"--lrs: 'fast' is not a number"):
        parse_lrs("1e-3,fast")


def test_seeds_as_a_count_or_a_range(tmp_path: Path) -> None:
    grid = load_grid(str(write(tmp_path, USER_GRID)))  # 2 seeds
    assert (parse_seeds("3"), parse_seeds("1-2"), parse_seeds(" 4-4 ")) == (
        range(0, 3),
        range(1, 3),
        range(4, 5),
    )

    def seeds_of(seeds: int | range | None) -> list[int]:
        return sorted({c.seed for c in expand_cells(grid, "quick", seeds=seeds)})

    assert seeds_of(None) == [0, 1]
    assert seeds_of(3) == [0, 1, 2]
    assert seeds_of(range(1, 3)) == [1, 2]
    for text in ("0", "2-1", "-1", "two", "1-x", "", "1_000", "+2", "\uff11\uff12", "1-"):
        with pytest.raises(GridError, match=r"^--seeds: "):
            parse_seeds(text)
    with pytest.raises(GridError, match=r"--seeds: 0 names no seed"):
        expand_cells(grid, "quick", seeds=0)
    for bad in (range(3, 3), range(-1, 2), range(0, 4, 2)):
        with pytest.raises(GridError, match=r"--seeds: .* is not a range A-B"):
            expand_cells(grid, "quick", seeds=bad)


# (what is wrong, file text, line, key, phrase of the message)
MISTAKES = [
    (
        "unknown task",
        "task: cathdett\nlrs: [1e-3]\nmethods: {a: {schedule: adaloss}}\n",
        1,
        "task",
        "unknown task 'cathdett'; did you mean 'cathdet'?",
    ),
    (
        "top-level typo",
        "task: cathdet\nlrs: [1e-3]\nmethds: {a: {schedule: adaloss}}\n",
        3,
        "methds",
        "unknown key; did you mean 'methods'?",
    ),
    (
        "method key typo",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  s5:\n    schedule: fixed\n    sigam: 5\n",
        6,
        "methods.s5.sigam",
        "unknown key; did you mean 'sigma'?",
    ),
    (
        "unknown schedule",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adalos}\n",
        4,
        "methods.a.schedule",
        "unknown schedule 'adalos'; did you mean 'adaloss'?",
    ),
    (
        "zero lr",
        "task: cathdet\nlrs: [1e-3, 0]\nmethods: {a: {schedule: adaloss}}\n",
        2,
        "lrs",
        "must be positive, got 0",
    ),
    (
        "negative lr",
        "task: cathdet\nlrs: -1e-3\nmethods: {a: {schedule: adaloss}}\n",
        2,
        "lrs",
        "must be positive, got '-1e-3'",
    ),
    (
        "zero sigma",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  s: {schedule: fixed, sigma: 0}\n",
        4,
        "methods.s.sigma",
        "must be positive, got 0",
    ),
    (
        "negative sigma0",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a:\n    schedule: adaloss\n    sigma0: -3\n",
        6,
        "methods.a.sigma0",
        "must be positive, got -3",
    ),
    (
        "key of another schedule",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a:\n    schedule: adaloss\n    sigma: 5\n",
        6,
        "methods.a.sigma",
        "does not apply to schedule 'adaloss'",
    ),
    (
        "fixed without sigma",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  s: {schedule: fixed}\n",
        4,
        "methods.s",
        "schedule 'fixed' needs key 'sigma'",
    ),
    (
        "window of one",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adaloss, window: 1}\n",
        4,
        "methods.a.window",
        "must be at least 2",
    ),
    (
        "profile key typo",
        "task: cathdet\nlrs: [1e-3]\nmethods: {a: {schedule: adaloss}}\n"
        "profiles:\n  quick: {epoch: 3}\n",
        5,
        "profiles.quick.epoch",
        "unknown key; did you mean 'epochs'?",
    ),
    (
        "unknown profile",
        "task: cathdet\nlrs: [1e-3]\nmethods: {a: {schedule: adaloss}}\n"
        "profiles:\n  quik: {epochs: 3}\n",
        5,
        "profiles.quik",
        "did you mean 'quick'?",
    ),
    (
        "extra typo",
        "task: cathdet\nlrs: [1e-3]\nmethods: {a: {schedule: adaloss}}\nextra: {widht: 8}\n",
        4,
        "extra.widht",
        "did you mean 'width'?",
    ),
    (
        "repeated key",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adaloss}\n"
        "  a: {schedule: fixed, sigma: 5}\n",
        5,
        "methods.a",
        "repeated key (first on line 4)",
    ),
    ("missing methods", "task: cathdet\nlrs: [1e-3]\n", None, "", "missing required key 'methods'"),
    (
        "restrict not a bool",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adaloss, restrict: maybe}\n",
        4,
        "methods.a.restrict",
        "must be true or false",
    ),
    (
        "unknown reading",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adaloss, variance_of: epoch_mean}\n",
        4,
        "methods.a.variance_of",
        "must be one of epoch_means, iteration_losses, got 'epoch_mean'; did you mean "
        "'epoch_means'?",
    ),
    (
        "reset not a bool",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adaloss, reset_on_change: 1}\n",
        4,
        "methods.a.reset_on_change",
        "must be true or false",
    ),
    (
        "updates on a fixed sigma",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  s: {schedule: fixed, sigma: 5, updates: 40}\n",
        4,
        "methods.s.updates",
        "does not apply to schedule 'fixed'",
    ),
    (
        "zero updates",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  a: {schedule: adaloss, updates: 0}\n",
        4,
        "methods.a.updates",
        "must be positive",
    ),
    (
        "a validation size of zero",
        "task: cathdet\nlrs: [1e-3]\nvalidation_size: 0\nmethods: {a: {schedule: adaloss}}\n",
        3,
        "validation_size",
        "must be positive",
    ),
    (
        "a repeated budget",
        "task: cathdet\nlrs: [1e-3]\nmethods: {a: {schedule: adaloss}}\n"
        "profiles:\n  quick: {epochs: [20, 20]}\n",
        5,
        "profiles.quick.epochs",
        "repeats a budget",
    ),
    (
        "an empty budget list",
        "task: cathdet\nlrs: [1e-3]\nmethods: {a: {schedule: adaloss}}\n"
        "profiles:\n  quick: {epochs: []}\n",
        5,
        "profiles.quick.epochs",
        "lists no budget",
    ),
    (
        "loss scale on a fixed sigma",
        "task: cathdet\nlrs: [1e-3]\nmethods:\n  s: {schedule: fixed, sigma: 5, loss_scale: raw}\n",
        4,
        "methods.s.loss_scale",
        "does not apply to schedule 'fixed'",
    ),
]


@pytest.mark.parametrize(
    ("what", "text", "line", "key", "phrase"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_each_mistake_is_one_line_naming_file_line_and_key(
    tmp_path: Path, what: str, text: str, line: int | None, key: str, phrase: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(GridError) as caught:
        load_grid(str(path))
    message = str(caught.value)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(where + (f"{key}: " if key else "")), message
    assert phrase in message
    assert "\n" not in message


BUDGETS_GRID = """\
task: cathdet
lrs: [1e-3]
methods:
  sigma25: {schedule: fixed, sigma: 25}
  ada100: {schedule: adaloss, max_step: 4, updates: 100}
profiles:
  quick: {epochs: [20, 100]}
"""


def test_a_list_of_budgets_makes_each_its_own_cells(tmp_path: Path) -> None:
    grid = load_grid(str(write(tmp_path, BUDGETS_GRID)))
    cells = expand_cells(grid, "quick", seeds=2)
    assert [(c.seed, c.epochs, c.method) for c in cells] == [
        (seed, epochs, method)
        for seed in (0, 1)
        for epochs in (20, 100)
        for method in ("sigma25", "ada100")
    ]
    assert len({cell_key(c) for c in cells}) == 8
    assert {c.schedule.updates for c in cells if c.method == "ada100"} == {100}
    # --epochs replaces the list with one budget
    assert {c.epochs for c in expand_cells(grid, "quick", epochs=50)} == {50}
    # the profile without a list keeps the task's default budget
    assert {c.epochs for c in expand_cells(grid, "smoke")} == {2}


def test_a_validation_size_reaches_every_cell_and_its_key(tmp_path: Path) -> None:
    plain = load_grid(str(write(tmp_path, BUDGETS_GRID)))
    sized = load_grid(str(write(tmp_path, BUDGETS_GRID + "validation_size: 8000\n", "v.yaml")))
    plain_cells, sized_cells = expand_cells(plain, "quick"), expand_cells(sized, "quick")
    assert {c.validation_size for c in plain_cells} == {None}
    assert {c.validation_size for c in sized_cells} == {8000}
    assert "validation_size" not in plain_cells[0].to_dict()
    assert sized_cells[0].to_dict()["validation_size"] == 8000
    assert (
        dataclasses.replace(sized_cells[0], grid=plain.name, validation_size=None)
        == (plain_cells[0])
    )


def test_updates_must_divide_into_every_budget(tmp_path: Path) -> None:
    grid = load_grid(str(write(tmp_path, BUDGETS_GRID.replace("[20, 100]", "[30, 100]"))))
    with pytest.raises(GridError) as caught:
        expand_cells(grid, "quick")
    assert str(caught.value) == (
        f"{grid.path}: methods.ada100.updates: 100 updates over 30 epochs; give a multiple of "
        "the epochs (at least one update an epoch), e.g. 90"
    )
    with pytest.raises(GridError, match=r"100 updates over 200 epochs; .* e\.g\. 200$"):
        expand_cells(grid, "quick", epochs=200)


def test_a_cell_without_updates_keeps_the_key_it_had_before_the_setting() -> None:
    # The key of this cell, recorded before `updates` existed: sha256 of its sorted JSON with
    # the schedule's fields as they were then (written out here, not derived from the code).
    cell = expand_cells(load_grid("cathdet"), "quick", methods=["sigma25"], lrs=[1e-3])[0]
    schedule = {
        "kind": "fixed", "sigma": 25.0, "sigma0": None, "sigma_min": 1.0, "window": 3,
        "rho": 0.9, "max_step": None, "restrict": True, "unit": "epoch",
        "variance_of": "epoch_means", "loss_scale": "raw", "reset_on_change": False, "k": None,
        "sigma_ref": 256,
    }  # fmt: skip
    payload = {
        "grid": "cathdet", "task": "cathdet", "method": "sigma25", "schedule": schedule,
        "lr": 0.001, "seed": 0, "profile": "quick", "epochs": 20, "batch_size": 16,
        "data_source": "synthetic", "extra": {},
    }  # fmt: skip
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert cell_key(cell) == hashlib.sha256(text.encode()).hexdigest()[:16]
    with_clock = dataclasses.replace(cell, schedule=dataclasses.replace(cell.schedule, updates=20))
    assert cell_key(with_clock) != cell_key(cell)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "task: cathdet\nlrs: [1e-3\nmethods: {}\n")
    with pytest.raises(GridError, match=rf"^{path}:\d+: not valid YAML"):
        load_grid(str(path))


def test_unknown_shipped_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GridError, match=r"unknown grid 'cathdt'; did you mean 'cathdet'\?"):
        load_grid("cathdt")
    with pytest.raises(GridError, match=r"no such grid file"):
        load_grid(str(tmp_path / "absent.yaml"))


def test_tune_section_is_checked_with_file_lines_and_kept(tmp_path: Path) -> None:
    section = "tune:\n  method: ada\n  space:\n    rho: {low: 0.1, high: 1.0, log: true}\n"
    assert load_grid(str(write(tmp_path, USER_GRID + section))).tune == {
        "method": "ada",
        "space": {"rho": {"low": 0.1, "high": 1.0, "log": True}},
    }
    typo = write(
        tmp_path, USER_GRID + "tune:\n  space:\n    rho: {low: 0.1, hihg: 1.0}\n", "t.yaml"
    )
    with pytest.raises(GridError, match=rf"^{typo}:13: tune.space.rho.hihg: unknown key"):
        load_grid(str(typo))
    missing = write(tmp_path, USER_GRID + "tune:\n  method: adaa\n", "m.yaml")
    with pytest.raises(
        GridError, match=rf"^{missing}:12: tune.method: no method 'adaa'.*did you mean 'ada'"
    ):
        load_grid(str(missing))


def test_cli_rejects_a_bad_grid_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(
        tmp_path, "task: cathdet\nlrs: [1e-3]\nmethods:\n  s: {schedule: fixed, sigma: -5}\n"
    )
    result = CliRunner().invoke(run, ["--grid", str(path), "--dry-run", "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {path}:4: methods.s.sigma: must be positive, got -5"


def test_profile_auto_says_what_it_picked(tracking_uri: str) -> None:
    result = CliRunner().invoke(
        run, ["--grid", "cathdet", "--dry-run", "--device", "cpu", "--tracking-uri", tracking_uri]
    )
    assert result.exit_code == 0, result.output
    assert "profile: quick (--profile auto: no CUDA device is in use" in result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["cell_key", "task", "method", "lr", "seed", "status"]
    assert len(lines) == 11 and all(line.split()[-1] == "pending" for line in lines[1:])
