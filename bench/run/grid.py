"""Grid files: which task x method x learning-rate x seed cells a `bench run` trains.

A grid is a YAML mapping (shipped ones live in `bench/grids/`; users pass their own path):

    task: cathdet            # a task of bench.tasks (cathdet, face300w, endovis, keypoints)
    sigma_ref: 256           # sigmas below are pixels of a frame this wide; null = heatmap pixels
    lrs: [1.0e-3, 1.0e-4]    # Adam learning rates, each > 0 (1e-3 works too; YAML reads it as text)
    seeds: 1                 # how many seeds (0 .. seeds-1); `--seeds N` or `A-B` overrides
    data_source: synthetic   # optional: "synthetic" (default) or a path to real data
                             # (required for keypoints: a COCO export or a .pts folder)
    validation_size: 8000    # synthetic only, optional: validation images (default: the
                             # profile's); docs/data.md, "Validation noise"
    image_size: [64, 64]     # keypoints only, optional: (H, W) the images are resized to
    metric: {pck_radius: 10} # keypoints only, optional: pck_radius and match_radius (pixels
                             # of the original images), normalizer: [i, j] (NME between two
                             # landmarks, 0-based)
    extra: {width: 16}       # optional model/augmentation overrides of the task's profile
                             # (bench.tasks.base.OVERRIDABLE: width, depth, kernel_size, ...)
    methods:                 # label -> schedule; the label names the method in MLflow and reports
      sigma5:  {schedule: fixed, sigma: 5}
      adaloss: {schedule: adaloss, window: 3, rho: 0.9}
      linear:  {schedule: linear, sigma0: 60, k: 0.5}
    profiles:                # optional overrides of the task's per-profile defaults
      paper: {epochs: 100, batch_size: 8}
      quick: {epochs: [20, 100]}   # a list of budgets: every cell at each, its own cell
    tune:                    # optional: `bench tune`'s search space (bench/scale/tune_space.py)
      method: adaloss
      space: {window: {low: 2, high: 8}, rho: {low: 0.05, high: 5, log: true}}

Method keys by schedule (bench/run/schedule.py; the rule in docs/design.md). Lengths (sigma, sigma0,
sigma_min, rho, max_step, k) are pixels of the sigma_ref frame, scaled to heatmap pixels:
    fixed:   sigma (required, > 0)
    adaloss: sigma0 (> 0; default a quarter of the heatmap side), sigma_min (> 0, default 1),
             window (>= 2), rho (> 0), max_step (> 0 or null), restrict (bool),
             unit (epoch | iteration), variance_of (epoch_means | iteration_losses),
             loss_scale (raw | relative), reset_on_change (bool),
             updates (steps per run, a multiple of the epochs; default: `unit`'s clock)
    linear:  sigma0, k (required, > 0), sigma_min, updates
    any:     sigma_ref (overrides the top-level one for this method)

Every mistake found while loading is a `GridError` whose message is one line naming the file, the
line and the key, e.g. `grids/mine.yaml:7: methods.sigma5.sigam: unknown key; did you mean
'sigma'?`, so that a typo stops the run before any cell trains.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bench.profiles import PROFILES
from bench.run.cell import CellConfig
from bench.run.schedule import (
    BOOLEAN_KEYS,
    CHOICE_KEYS,
    INTEGER_KEYS,
    KEYS_BY_KIND,
    NULLABLE_KEYS,
    SCHEDULE_KINDS,
    ScheduleConfig,
)

TOP_LEVEL_KEYS = (
    "task",
    "sigma_ref",
    "lrs",
    "seeds",
    "data_source",
    "validation_size",
    "image_size",
    "metric",
    "extra",
    "methods",
    "profiles",
    "tune",
)
PROFILE_KEYS = ("epochs", "batch_size")
METRIC_KEYS = ("pck_radius", "normalizer", "match_radius")
METHOD_KEYS = (
    "schedule",
    "sigma_ref",
    *sorted({k for keys in KEYS_BY_KIND.values() for k in keys}),
)

KeyPath = tuple[str, ...]


class GridError(ValueError):
    """A grid file or a command-line narrowing of it is wrong; the message is one line."""


@dataclass(frozen=True)
class Grid:
    """A validated grid file.

    methods: label -> schedule, in file order. profiles: profile -> {"epochs", "batch_size"}
    overrides from the file (the task's defaults fill the rest in `expand_cells`); "epochs" is
    a tuple of budgets, each trained as its own cells.
    """

    name: str
    path: Path
    task: str
    lrs: tuple[float, ...]
    seeds: int
    methods: dict[str, ScheduleConfig]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_source: str = "synthetic"
    extra: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    validation_size: int | None = None


def shipped_grids() -> list[str]:
    """Names of the grids shipped in `bench/grids/`."""
    folder = resources.files("bench") / "grids"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_grid_path(name_or_path: str) -> Path:
    """A shipped grid's file for a bare name, else the user's file (which must exist)."""
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path
    if not looks_like_path:
        shipped = shipped_grids()
        if name_or_path in shipped:
            return Path(str(resources.files("bench") / "grids" / f"{name_or_path}.yaml"))
        raise GridError(
            f"unknown grid {name_or_path!r}{_suggest(name_or_path, shipped)}; shipped grids: "
            f"{', '.join(shipped)} (or pass the path of a YAML file)"
        )
    path = Path(name_or_path)
    if path.is_dir():
        raise GridError(f"{path}: is a folder, not a grid file; pass the YAML file inside it")
    if not path.is_file():
        raise GridError(f"{path}: no such grid file")
    return path


def load_grid(name_or_path: str) -> Grid:
    """Read and validate a grid (a shipped name such as "cathdet", or a YAML path)."""
    path = resolve_grid_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise GridError(
            f"{path}:{line}: not UTF-8 text (byte {error.object[error.start]:#x}); save the grid "
            "as UTF-8"
        ) from None
    except OSError as error:
        raise GridError(
            f"{path}: cannot be read ({error.strerror}); check its permissions"
        ) from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise GridError(f"{where}: not valid YAML: {problem}") from None
    lines = _key_lines(root, path)
    data = yaml.safe_load(text)
    return _GridReader(path, lines).read(data)


def expand_cells(
    grid: Grid,
    profile: str,
    seeds: int | range | None = None,
    methods: Sequence[str] | None = None,
    lrs: Sequence[float] | None = None,
    epochs: int | None = None,
) -> list[CellConfig]:
    """The grid's cells for `profile`, seed-major (every budget, lr and method of the first seed
    first).

    seeds: how many seeds from 0, or a range of seeds (None: the grid's count, from 0).
    methods: labels to keep (None: all). lrs, epochs: replace the grid's learning rates and the
    profile's epochs (its budgets). Raises GridError on an unknown profile or method label, on
    non-positive overrides, on a seed range that is empty, negative or stepped, and on a clock
    (`updates`) that is not a multiple of a budget.
    """
    from bench.tasks import task_profiles

    where = f"{grid.path}"
    if profile not in PROFILES:
        raise GridError(f"{where}: unknown profile {profile!r}{_suggest(profile, PROFILES)}")
    labels = list(grid.methods) if methods is None else list(methods)
    if not labels:
        raise GridError(
            f"{where}: --methods names no method; give one or more of {', '.join(grid.methods)}"
        )
    for label in labels:
        if label not in grid.methods:
            raise GridError(
                f"{where}: --methods: no method {label!r} in this grid (methods: "
                f"{', '.join(grid.methods)}){_suggest(label, grid.methods)}"
            )
    chosen_lrs = grid.lrs if lrs is None else tuple(lrs)
    for lr in chosen_lrs:
        if not (math.isfinite(lr) and lr > 0):
            raise GridError(f"{where}: --lrs: learning rate {lr} must be a positive number")
    if isinstance(seeds, range):
        if not seeds or seeds.start < 0 or seeds.step != 1:
            raise GridError(f"{where}: --seeds: {seeds} is not a range A-B with 0 <= A <= B")
        chosen_seeds = seeds
    else:
        chosen_seeds = range(grid.seeds if seeds is None else seeds)
        if not chosen_seeds:
            raise GridError(f"{where}: --seeds: {seeds} names no seed; give a count of at least 1")
    if epochs is not None and epochs < 1:
        raise GridError(f"{where}: --epochs: {epochs} must be at least 1")

    defaults = task_profiles(grid.task)[profile]
    settings: dict[str, Any] = {"epochs": (defaults.epochs,), "batch_size": defaults.batch_size}
    settings.update(grid.profiles.get(profile, {}))
    if epochs is not None:
        settings["epochs"] = (epochs,)
    for label in labels:
        updates = grid.methods[label].updates
        for budget in settings["epochs"]:
            if updates is not None and updates % budget:
                fit = max(1, updates // budget) * budget
                raise GridError(
                    f"{where}: methods.{label}.updates: {updates} updates over {budget} epochs; "
                    f"give a multiple of the epochs (at least one update an epoch), e.g. {fit}"
                )
    return [
        CellConfig(
            grid=grid.name,
            task=grid.task,
            method=label,
            schedule=grid.methods[label],
            lr=lr,
            seed=seed,
            profile=profile,
            epochs=budget,
            batch_size=settings["batch_size"],
            data_source=grid.data_source,
            extra=dict(grid.extra),
            task_options=dict(grid.task_options),
            validation_size=grid.validation_size,
        )
        for seed in chosen_seeds
        for budget in settings["epochs"]
        for lr in chosen_lrs
        for label in labels
    ]


# a count "N" or a range "A-B" of ASCII digits (int() alone would take "1_000", "+2" or "１２")
_SEEDS = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


def parse_seeds(text: str) -> range:
    """`--seeds 3` -> seeds 0, 1, 2; `--seeds 1-2` -> seeds 1 and 2 (the share of a grid's seeds
    that one machine or session trains); GridError naming the value otherwise."""
    match = _SEEDS.fullmatch(text)
    if match is None:
        raise GridError(
            f"--seeds: {text!r} is neither a count nor a range of seeds from 0 "
            "(e.g. --seeds 3 or --seeds 1-2)"
        )
    first, last = match.groups()
    start, stop = (int(first), int(last) + 1) if last is not None else (0, int(first))
    if stop <= start:
        raise GridError(
            f"--seeds: {text!r} names no seed; give a count of at least 1 or a range A-B with "
            "A <= B"
        )
    return range(start, stop)


def parse_lrs(text: str) -> list[float]:
    """`--lrs 1e-3,1e-4` -> [0.001, 0.0001]; GridError naming the bad item."""
    values = []
    for item in text.split(","):
        try:
            values.append(float(item))
        except ValueError:
            raise GridError(
                f"--lrs: {item.strip()!r} is not a number (e.g. --lrs 1e-3,1e-4)"
            ) from None
    return values


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _key_lines(node: yaml.Node | None, path: Path, prefix: KeyPath = ()) -> dict[KeyPath, int]:
    """1-based line of every mapping key, by key path; a repeated key is a GridError."""
    lines: dict[KeyPath, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            if key in lines:
                raise GridError(
                    f"{path}:{key_node.start_mark.line + 1}: {'.'.join(key)}: repeated key "
                    f"(first on line {lines[key]})"
                )
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, path, key))
    return lines


class _GridReader:
    """Validates the parsed YAML of one file, raising GridError with file:line: key."""

    def __init__(self, path: Path, lines: dict[KeyPath, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, key: KeyPath, message: str) -> GridError:
        line = self._line(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        name = ".".join(key)
        return GridError(f"{where}: {name}: {message}" if name else f"{where}: {message}")

    def _line(self, key: KeyPath) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def check_keys(self, mapping: dict[str, Any], allowed: Sequence[str], at: KeyPath) -> None:
        for key in mapping:
            if str(key) not in allowed:
                raise self.fail(
                    (*at, str(key)),
                    f"unknown key{_suggest(str(key), allowed)} (valid: {', '.join(allowed)})",
                )

    def mapping(self, value: Any, at: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(at, f"must be a mapping of keys to values, got {_kind(value)}")
        return value

    def positive(self, value: Any, at: KeyPath, *, integer: bool = False) -> Any:
        """A number > 0 (YAML reads `1e-3` as text, so numeric text is accepted)."""
        number = _as_number(value)
        if number is None or (integer and number != int(number)):
            wanted = "an integer" if integer else "a number"
            raise self.fail(at, f"must be {wanted}, got {value!r}")
        if not (math.isfinite(number) and number > 0):
            raise self.fail(at, f"must be positive, got {value!r}")
        return int(number) if integer else float(number)

    def read(self, data: Any) -> Grid:
        top = self.mapping(data, ())
        self.check_keys(top, TOP_LEVEL_KEYS, ())
        for required in ("task", "lrs", "methods"):
            if required not in top:
                raise self.fail((), f"missing required key {required!r}")
        task = self.task(top["task"])
        sigma_ref = self.sigma_ref(top.get("sigma_ref", 256), ("sigma_ref",))
        lrs = self.lrs(top["lrs"])
        seeds = self.positive(top.get("seeds", 1), ("seeds",), integer=True)
        methods_data = self.mapping(top["methods"], ("methods",))
        if not methods_data:
            raise self.fail(("methods",), "lists no method")
        methods = {
            str(label): self.method(spec, ("methods", str(label)), sigma_ref)
            for label, spec in methods_data.items()
        }
        profiles = self.profiles(top.get("profiles") or {})
        data_source = self.data_source(top.get("data_source", "synthetic"))
        extra = self.extra(top.get("extra") or {})
        task_options = self.task_options(task, top, data_source)
        tune = self.tune(top["tune"], methods) if "tune" in top else {}
        validation_size = None
        if "validation_size" in top:
            if data_source != "synthetic":
                raise self.fail(
                    ("validation_size",),
                    "applies to synthetic data; real data keep the validation images of their "
                    "export",
                )
            validation_size = self.positive(
                top["validation_size"], ("validation_size",), integer=True
            )
        return Grid(
            name=self.path.stem,
            path=self.path,
            task=task,
            lrs=lrs,
            seeds=seeds,
            methods=methods,
            profiles=profiles,
            data_source=data_source,
            extra=extra,
            tune=tune,
            task_options=task_options,
            validation_size=validation_size,
        )

    def task(self, value: Any) -> str:
        from bench.tasks import TASK_NAMES

        if value not in TASK_NAMES:
            raise self.fail(
                ("task",),
                f"unknown task {value!r}{_suggest(str(value), TASK_NAMES)}"
                f" (tasks: {', '.join(TASK_NAMES)})",
            )
        return str(value)

    def sigma_ref(self, value: Any, at: KeyPath) -> int | None:
        return None if value is None else self.positive(value, at, integer=True)

    def lrs(self, value: Any) -> tuple[float, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(("lrs",), "lists no learning rate")
        return tuple(self.positive(item, ("lrs",)) for item in items)

    def method(self, spec: Any, at: KeyPath, sigma_ref: int | None) -> ScheduleConfig:
        spec = self.mapping(spec, at)
        self.check_keys(spec, METHOD_KEYS, at)
        kind = spec.get("schedule")
        if kind is None:
            raise self.fail(at, f"missing key 'schedule' (one of: {', '.join(SCHEDULE_KINDS)})")
        if kind not in SCHEDULE_KINDS:
            raise self.fail(
                (*at, "schedule"),
                f"unknown schedule {kind!r}{_suggest(str(kind), SCHEDULE_KINDS)}"
                f" (schedules: {', '.join(SCHEDULE_KINDS)})",
            )
        allowed = KEYS_BY_KIND[kind]
        values: dict[str, Any] = {"kind": kind, "sigma_ref": sigma_ref}
        for key, value in spec.items():
            where = (*at, key)
            if key == "schedule":
                continue
            if key == "sigma_ref":
                values["sigma_ref"] = self.sigma_ref(value, where)
            elif key not in allowed:
                raise self.fail(
                    where, f"does not apply to schedule {kind!r} (it takes: {', '.join(allowed)})"
                )
            elif key in INTEGER_KEYS:
                values[key] = self.positive(value, where, integer=True)
                if key == "window" and values[key] < 2:
                    raise self.fail(where, f"must be at least 2 (a variance needs 2), got {value}")
            elif key in BOOLEAN_KEYS:
                if not isinstance(value, bool):
                    raise self.fail(where, f"must be true or false, got {value!r}")
                values[key] = value
            elif key in CHOICE_KEYS:
                if value not in CHOICE_KEYS[key]:
                    raise self.fail(
                        where,
                        f"must be one of {', '.join(CHOICE_KEYS[key])}, got {value!r}"
                        f"{_suggest(str(value), CHOICE_KEYS[key])}",
                    )
                values[key] = value
            elif key in NULLABLE_KEYS and value is None:
                values[key] = None
            else:
                values[key] = self.positive(value, where)
        required = {"fixed": "sigma", "linear": "k"}.get(kind)
        if required is not None and required not in values:
            raise self.fail(at, f"schedule {kind!r} needs key {required!r}")
        return ScheduleConfig(**values)

    def profiles(self, value: Any) -> dict[str, dict[str, Any]]:
        profiles = self.mapping(value, ("profiles",))
        self.check_keys(profiles, PROFILES, ("profiles",))
        result = {}
        for name, overrides in profiles.items():
            at = ("profiles", str(name))
            overrides = self.mapping(overrides or {}, at)
            self.check_keys(overrides, PROFILE_KEYS, at)
            result[str(name)] = {
                key: self.budgets(number, (*at, key))
                if key == "epochs"
                else self.positive(number, (*at, key), integer=True)
                for key, number in overrides.items()
            }
        return result

    def budgets(self, value: Any, at: KeyPath) -> tuple[int, ...]:
        """`epochs: 100` or a list of budgets `[20, 100]`, each its own cells; no repeats."""
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(at, "lists no budget; give a number of epochs or a list of them")
        budgets = tuple(self.positive(item, at, integer=True) for item in items)
        if len(set(budgets)) < len(budgets):
            raise self.fail(at, f"{value} repeats a budget; list each number of epochs once")
        return budgets

    def tune(self, value: Any, methods: dict[str, ScheduleConfig]) -> dict[str, Any]:
        """The raw `tune:` mapping, checked by `bench.scale.tune_space` with this file's lines."""
        from bench.scale.tune_space import read_tune_section

        section = self.mapping(value or {}, ("tune",))
        spec = read_tune_section(section, self.fail)
        if "method" in section and spec.method not in methods:
            raise self.fail(
                ("tune", "method"),
                f"no method {spec.method!r} in this grid"
                f"{_suggest(spec.method, methods)} (methods: {', '.join(methods)})",
            )
        return section

    def extra(self, value: Any) -> dict[str, Any]:
        """Model/augmentation overrides; the task checks their values when a cell starts."""
        from bench.tasks.base import OVERRIDABLE

        extra = self.mapping(value, ("extra",))
        self.check_keys(extra, OVERRIDABLE, ("extra",))
        return dict(extra)

    def task_options(self, task: str, top: dict[str, Any], data_source: str) -> dict[str, Any]:
        """The keys of a task shaped by its data; the data check (`bench.cli.inputs.check_data`)
        compares landmark indices with the data once they are loaded."""
        from bench.tasks import task_entry

        allowed = task_entry(task).options
        for key in ("image_size", "metric"):
            if key in top and key not in allowed:
                raise self.fail(
                    (key,),
                    f"task {task!r} does not take it (its images and metric are fixed); use "
                    "`task: keypoints` for your own data",
                )
        if allowed and data_source == "synthetic":
            raise self.fail(
                ("data_source",) if "data_source" in top else ("task",),
                f"task {task!r} needs data_source: the folder of your COCO keypoints export "
                "(train.json, test.json) or of your images with .pts files",
            )
        options: dict[str, Any] = {}
        if "image_size" in top:
            size = top["image_size"]
            if not isinstance(size, list) or len(size) != 2:
                raise self.fail(("image_size",), f"must be [height, width], got {size!r}")
            options["image_size"] = [
                self.positive(side, ("image_size",), integer=True) for side in size
            ]
            if any(side % 16 for side in options["image_size"]):
                raise self.fail(
                    ("image_size",),
                    f"{size} must be multiples of 16 (the U-Net halves the image 4 times)",
                )
        if "metric" in top:
            options["metric"] = self.metric(top["metric"])
        return options

    def metric(self, value: Any) -> dict[str, Any]:
        at: KeyPath = ("metric",)
        metric = self.mapping(value, at)
        self.check_keys(metric, METRIC_KEYS, at)
        checked: dict[str, Any] = {
            key: self.positive(metric[key], (*at, key))
            for key in ("pck_radius", "match_radius")
            if key in metric
        }
        if "normalizer" in metric:
            pair = metric["normalizer"]
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)
                or pair[0] == pair[1]
            ):
                raise self.fail(
                    (*at, "normalizer"),
                    f"must be two different 0-based landmark indices [i, j], got {pair!r}",
                )
            checked["normalizer"] = list(pair)
        return checked

    def data_source(self, value: Any) -> str:
        if value == "synthetic":
            return "synthetic"
        if not isinstance(value, str) or not Path(value).exists():
            raise self.fail(
                ("data_source",), f"{value!r} is neither 'synthetic' nor an existing path"
            )
        return value


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
