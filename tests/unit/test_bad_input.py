"""Every malformed input stops before anything is written: exit 2, one line on stderr naming the
option, file, line or field, and no MLflow store, Optuna storage or dataset cache created.

Each case runs the real `bench` group in a fresh folder (the defaults ./mlruns and ./datasets
land there) and compares the folder's files before and after.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from keypoint_sets import write_coco_set, write_pts_set

from adaloss.io import read_pts, write_pts
from bench.cli import main

GOOD_METHODS = "methods:\n  s: {schedule: fixed, sigma: 5}\n"
GRID_HEAD = "task: cathdet\nlrs: [1.0e-3]\n"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Case:
    """args: the command line, after `make(folder)` wrote what it needs (it returns extra args).
    names: what the one error line must contain (the option, file:line or field)."""

    name: str
    args: tuple[str, ...]
    names: str
    make: Callable[[Path], tuple[str, ...]] | None = None


def grid(text: str, filename: str = "g.yaml") -> Callable[[Path], tuple[str, ...]]:
    def make(folder: Path) -> tuple[str, ...]:
        (folder / filename).write_text(text)
        return ("--grid", filename)

    return make


def raw_grid(data: bytes) -> Callable[[Path], tuple[str, ...]]:
    def make(folder: Path) -> tuple[str, ...]:
        (folder / "g.yaml").write_bytes(data)
        return ("--grid", "g.yaml")

    return make


def a_file(name: str) -> Callable[[Path], tuple[str, ...]]:
    def make(folder: Path) -> tuple[str, ...]:
        (folder / name).write_text("not a folder\n")
        return ()

    return make


def a_folder(name: str) -> Callable[[Path], tuple[str, ...]]:
    def make(folder: Path) -> tuple[str, ...]:
        (folder / name).mkdir()
        return ("--grid", name)

    return make


def sqlite_store(
    name: str, *, mode: int = 0o644, text: str | None = None
) -> Callable[[Path], tuple[str, ...]]:
    """An existing store file `name`: an empty SQLite database with `mode`, or `text`."""

    def make(folder: Path) -> tuple[str, ...]:
        path = folder / name
        if text is None:
            sqlite3.connect(path).close()
        else:
            path.write_text(text)
        path.chmod(mode)
        return ()

    return make


def closed_server(option: str) -> Callable[[Path], tuple[str, ...]]:
    def make(folder: Path) -> tuple[str, ...]:
        del folder
        return (option, f"http://127.0.0.1:{closed_port()}")

    return make


def own_data(
    damage: Callable[[Path], None],
    grid_text: str = "task: keypoints\ndata_source: mine\nlrs: [1e-3]\n" + GOOD_METHODS,
    train: int = 10,
) -> Callable[[Path], tuple[str, ...]]:
    """A small COCO export in ./mine (K = 2, grey, `train` training images of which every 10th is
    held out for validation), damaged by `damage(folder)`, and a grid on it; the data check must
    stop `bench run` before the store or the cache exists."""

    def make(folder: Path) -> tuple[str, ...]:
        write_coco_set(folder / "mine", k=2, colour=False, counts={"train": train, "test": 2})
        damage(folder / "mine")
        (folder / "g.yaml").write_text(grid_text)
        return ("--grid", "g.yaml", "--profile", "smoke", "--device", "cpu")

    return make


def edit_json(name: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(export: Path) -> None:
        data = json.loads((export / name).read_text())
        change(data)
        (export / name).write_text(json.dumps(data))

    return damage


def drop_keypoints(data: dict[str, Any]) -> None:
    del data["categories"][0]["keypoints"]


def rename_landmark(data: dict[str, Any]) -> None:
    data["categories"][0]["keypoints"][1] = "elbow"


def shorten_keypoints(data: dict[str, Any]) -> None:
    data["annotations"][1]["keypoints"] = data["annotations"][1]["keypoints"][:3]


def move_a_keypoint(x: float) -> Callable[[dict[str, Any]], None]:
    """The first keypoint of train.json's fifth annotation (id 40, image id 4) at `x` (COCO's
    pixel-corner coordinates, -0.5 in pixel centres), still labelled."""

    def change(data: dict[str, Any]) -> None:
        data["annotations"][4]["keypoints"][0] = x

    return change


def pts_folder_with_a_far_point(folder: Path) -> tuple[str, ...]:
    """A `.pts` folder in ./mine whose face_003.pts puts its second point at x = 4000 in a
    40 x 40 image, and a grid on it."""
    write_pts_set(folder / "mine", k=3, count=12)
    path = folder / "mine" / "face_003.pts"
    points = read_pts(path)
    points[1, 0] = 4000.0
    write_pts(path, points)
    (folder / "g.yaml").write_text(
        "task: keypoints\ndata_source: mine\nlrs: [1e-3]\n" + GOOD_METHODS
    )
    return ("--grid", "g.yaml", "--profile", "smoke", "--device", "cpu")


def no_change(export: Path) -> None:
    del export


def empty_the_folder(export: Path) -> None:
    shutil.rmtree(export)
    export.mkdir()


RUN = ("run", "--grid", "cathdet", "--device", "cpu")
CASES = [
    # the user's own data (keypoints task): checked before anything is recorded
    Case(
        "data: folder holds no export",
        ("run",),
        "mine: neither a COCO keypoints export",
        own_data(empty_the_folder),
    ),
    Case(
        "data: broken JSON",
        ("run",),
        "train.json:1:2: broken JSON",
        own_data(lambda export: (export / "train.json").write_text("{[")),
    ),
    Case(
        "data: no keypoint category",
        ("run",),
        "train.json: 0 categories with keypoints",
        own_data(edit_json("train.json", drop_keypoints)),
    ),
    Case(
        "data: splits name other landmarks",
        ("run",),
        "test.json: unknown landmark name 'elbow'",
        own_data(edit_json("test.json", rename_landmark)),
    ),
    Case(
        "data: a keypoint far outside its image",
        ("run",),
        "train_4.png: landmark 'joint0' at pixel centre (x, y) = (-500.5,",
        own_data(edit_json("train.json", move_a_keypoint(-500.0))),
    ),
    Case(
        "data: a keypoint that is not a number",
        ("run",),
        "train.json: annotation 40 (image id 4) labels keypoint 0 at (inf,",
        own_data(edit_json("train.json", move_a_keypoint(float("inf")))),
    ),
    Case(
        "data: a .pts point outside its image",
        ("run",),
        "face_003.png: landmark 'p2' at pixel centre (x, y) = (4000,",
        pts_folder_with_a_far_point,
    ),
    Case(
        "data: missing image",
        ("run",),
        "train.json: image id 2 ('train_2.png') not found",
        own_data(lambda export: (export / "images" / "train_2.png").unlink()),
    ),
    Case(
        "data: unreadable image",
        ("run",),
        "train_1.png: cannot be read as an image",
        own_data(lambda export: (export / "images" / "train_1.png").write_bytes(b"not a png")),
    ),
    Case(
        "data: keypoint list too short",
        ("run",),
        "train.json: annotation 10 (image id 1) has 3 keypoint values, expected 6",
        own_data(edit_json("train.json", shorten_keypoints)),
    ),
    Case(
        "data: too few images to hold out validation",
        ("run",),
        "mine: the val split has no labelled image (train 9, val 0, test 2 images)",
        own_data(no_change, train=9),
    ),
    Case(
        "data: not the task's landmarks",
        ("run",),
        "use `task: keypoints`",
        own_data(no_change, "task: cathdet\ndata_source: mine\nlrs: [1e-3]\n" + GOOD_METHODS),
    ),
    Case(
        "data: keypoints without data",
        ("run",),
        "g.yaml:1: task: task 'keypoints' needs data_source",
        grid("task: keypoints\nlrs: [1e-3]\n" + GOOD_METHODS),
    ),
    Case(
        "data: metric on a shipped task",
        ("run",),
        "g.yaml:3: metric: task 'cathdet' does not take it",
        grid(GRID_HEAD + "metric: {pck_radius: 3}\n" + GOOD_METHODS),
    ),
    Case(
        "data: queued cells are checked too",
        ("run", "--queue", "journal:queue.log"),
        "train.json:1:2: broken JSON",
        own_data(lambda export: (export / "train.json").write_text("{[")),
    ),
    Case(
        "data: tune checks its cell",
        ("tune", "--trials", "1"),
        "test.json: unknown landmark name 'elbow'",
        own_data(
            edit_json("test.json", rename_landmark),
            "task: keypoints\ndata_source: mine\nlrs: [1e-3]\n"
            "methods:\n  adaloss: {schedule: adaloss}\n",
        ),
    ),
    # grid files
    Case(
        "negative sigma",
        ("run",),
        "g.yaml:4: methods.s.sigma",
        grid(GRID_HEAD + "methods:\n  s: {schedule: fixed, sigma: -5}\n"),
    ),
    Case("lr 0", ("run",), "g.yaml:2: lrs", grid("task: cathdet\nlrs: [0]\n" + GOOD_METHODS)),
    Case(
        "yaml syntax",
        ("run",),
        "g.yaml:5: not valid YAML",
        grid(GRID_HEAD + "methods: {s: [\n  x: 1\n"),
    ),
    Case(
        "unknown task",
        ("run",),
        "g.yaml:1: task",
        grid("task: cathdett\nlrs: [1e-3]\n" + GOOD_METHODS),
    ),
    Case("no methods", ("run",), "missing required key 'methods'", grid(GRID_HEAD)),
    Case(
        "window 1",
        ("run",),
        "g.yaml:4: methods.a.window",
        grid(GRID_HEAD + "methods:\n  a: {schedule: adaloss, window: 1}\n"),
    ),
    Case(
        "rho NaN",
        ("run",),
        "g.yaml:4: methods.a.rho",
        grid(GRID_HEAD + "methods:\n  a: {schedule: adaloss, rho: .nan}\n"),
    ),
    Case(
        "missing data source",
        ("run",),
        "g.yaml:3: data_source",
        grid(GRID_HEAD + "data_source: /no/such/folder\n" + GOOD_METHODS),
    ),
    Case(
        "methods is a list",
        ("run",),
        "g.yaml:3: methods: must be a mapping",
        grid(GRID_HEAD + "methods:\n  - {schedule: fixed, sigma: 5}\n"),
    ),
    Case(
        "lr not a number",
        ("run",),
        "g.yaml:2: lrs",
        grid("task: cathdet\nlrs: [fast]\n" + GOOD_METHODS),
    ),
    Case(
        "unknown reading",
        ("run",),
        "g.yaml:4: methods.a.loss_scale",
        grid(GRID_HEAD + "methods:\n  a: {schedule: adaloss, loss_scale: log}\n"),
    ),
    Case(
        "not UTF-8",
        ("run",),
        "g.yaml:2: not UTF-8",
        raw_grid(b"task: cathdet\n# caf\xe9\nlrs: [1e-3]\n" + GOOD_METHODS.encode()),
    ),
    Case("grid is a folder", ("run",), "grids.yaml: is a folder", a_folder("grids.yaml")),
    Case("missing grid file", ("run", "--grid", "nowhere.yaml"), "nowhere.yaml: no such grid file"),
    # options of bench run
    Case("unknown profile", (*RUN, "--profile", "quik"), "'--profile'"),
    Case("jobs 0", (*RUN, "--jobs", "0"), "'--jobs'"),
    Case("cuda without cuda", ("run", "--grid", "cathdet", "--device", "cuda"), "--device cuda"),
    Case("cuda index", ("run", "--grid", "cathdet", "--device", "cuda:7"), "--device cuda:7"),
    Case("device tpu", ("run", "--grid", "cathdet", "--device", "tpu"), "--device tpu"),
    Case("unknown method", (*RUN, "--methods", "sigma41"), "--methods: no method 'sigma41'"),
    Case("no method named", (*RUN, "--methods", " , "), "--methods names no method; give one"),
    Case("bad lrs", (*RUN, "--lrs", "1e-3,fast"), "--lrs"),
    Case("seeds backwards", (*RUN, "--seeds", "3-1"), "--seeds"),
    Case("tracking scheme", (*RUN, "--tracking-uri", "foo://bar"), "--tracking-uri foo://bar"),
    Case("file store", (*RUN, "--tracking-uri", "mlruns"), "--tracking-uri mlruns"),
    Case(
        "tracking server down",
        RUN,
        "--tracking-uri http://127.0.0.1:",
        closed_server("--tracking-uri"),
    ),
    Case(
        "sqlite under a file",
        (*RUN, "--tracking-uri", "sqlite:///blocker/mlflow.db"),
        "--tracking-uri sqlite:///blocker/mlflow.db",
        a_file("blocker"),
    ),
    Case("data root is a file", (*RUN, "--data-root", "blocker"), "--data-root", a_file("blocker")),
    Case(
        "store file read-only",
        (*RUN, "--tracking-uri", "sqlite:///ro.db"),
        "ro.db is read-only (mode -r--r--r--)",
        sqlite_store("ro.db", mode=0o444),
    ),
    Case(
        "store file not a database",
        (*RUN, "--tracking-uri", "sqlite:///notes.db"),
        "notes.db cannot be written (file is not a database)",
        sqlite_store("notes.db", text="my notes, not a database\n" * 100),
    ),
    Case(
        "store is a folder",
        (*RUN, "--tracking-uri", "sqlite:///mlflow.db"),
        "mlflow.db is a folder",
        lambda folder: ((folder / "mlflow.db").mkdir(), ())[1],
    ),
    Case(
        "queue scheme",
        ("run", "--grid", "cathdet", "--device", "cpu", "--queue", "foo://x"),
        "--queue foo://x",
    ),
    Case(
        "queue with jobs",
        ("run", "--grid", "cathdet", "--queue", "journal:q.log", "--jobs", "2"),
        "--queue",
    ),
    # bench report
    Case("report on no store", ("report", "--grid", "cathdet"), "no MLflow store at"),
    Case(
        "report tracking scheme",
        ("report", "--grid", "cathdet", "--tracking-uri", "foo://bar"),
        "--tracking-uri foo://bar",
    ),
    Case("report format", ("report", "--grid", "cathdet", "--format", "pdf"), "'--format'"),
    # bench tune
    Case(
        "tune storage scheme",
        ("tune", "--grid", "cathdet", "--device", "cpu", "--trials", "1", "--storage", "foo://x"),
        "--storage foo://x",
    ),
    Case(
        "tune journal without file",
        ("tune", "--grid", "cathdet", "--device", "cpu", "--trials", "1", "--storage", "journal:"),
        "--storage journal:",
    ),
    Case(
        "tune device",
        ("tune", "--grid", "cathdet", "--device", "tpu", "--trials", "1"),
        "--device tpu",
    ),
    Case(
        "tune space",
        ("tune", "--device", "cpu", "--trials", "1"),
        "g.yaml:6: tune.space.rho",
        grid(GRID_HEAD + "methods: {a: {schedule: adaloss}}\ntune:\n  space:\n    rho: {low: 0}\n"),
    ),
    # bench worker
    Case("worker queue scheme", ("worker", "--queue", "foo://x"), "--queue foo://x"),
    Case(
        "worker queue under a file",
        ("worker", "--queue", "sqlite:///blocker/q.db"),
        "--queue sqlite:///blocker/q.db",
        a_file("blocker"),
    ),
    Case(
        "worker device", ("worker", "--queue", "journal:q.log", "--device", "tpu"), "--device tpu"
    ),
    # bench data
    Case("data unknown task", ("data", "prepare", "cathdett"), "unknown task 'cathdett'"),
    Case(
        "data root is a file",
        ("data", "prepare", "cathdet", "--profile", "smoke", "--data-root", "blocker"),
        "--data-root",
        a_file("blocker"),
    ),
    Case(
        "data missing source", ("data", "prepare", "cathdet", "--source", "/no/such"), "'--source'"
    ),
    Case(
        "data unknown split",
        ("data", "show", "cathdet", "--split", "tset", "--out", "x.png"),
        "'--split'",
    ),
]


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in ("MLFLOW_TRACKING_URI", "ADALOSS_DATA_ROOT", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(variable, raising=False)
    # every case means the same on a GPU machine: `--device cuda` must be refused, not trained
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    extra = case.make(tmp_path) if case.make else ()
    before = tree(tmp_path)
    result = CliRunner().invoke(main, [*case.args, *extra])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and case.names in lines[0], lines[0]
    assert tree(tmp_path) == before  # no store, study, cache or report folder


def test_task_options_that_do_not_fit_the_data_stop_before_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the data are good, so they may be cached; the grid's normalizer names a third landmark
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    grid_text = (
        "task: keypoints\ndata_source: mine\nmetric: {normalizer: [0, 2]}\nlrs: [1e-3]\n"
        + GOOD_METHODS
    )
    extra = own_data(no_change, grid_text)(tmp_path)
    result = CliRunner().invoke(main, ["run", *extra, "--data-root", str(tmp_path / "cache")])
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert result.stderr.strip() == (
        "Error: metric.normalizer: landmark index 2 does not exist; the data have 2 landmarks "
        "(0 = 'joint0' .. 1 = 'joint1')"
    )
    assert not (tmp_path / "mlruns").exists()


def test_there_are_at_least_25_cases_across_the_commands() -> None:
    assert len(CASES) >= 25
    assert {case.args[0] for case in CASES} == {"run", "report", "tune", "worker", "data"}


# Damaged files the harness wrote itself are recovered with one warning line, never a traceback.
def test_a_locked_store_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.cli import inputs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(inputs, "SQLITE_LOCK_WAIT_S", 0.2)
    holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write, as SQLite sees it
    try:
        before = tree(tmp_path)
        result = CliRunner().invoke(main, [*RUN, "--tracking-uri", "sqlite:///busy.db"])
    finally:
        holder.rollback()
        holder.close()
    (line,) = result.stderr.strip().splitlines()
    assert result.exit_code == 2
    assert "busy.db cannot be written (database is locked); another process holds it" in line
    assert tree(tmp_path) == before


def truncate_an_array(variant: Path) -> None:
    array = sorted(variant.glob("*.npy"))[0]
    array.write_bytes(array.read_bytes()[:100])


def garble_the_manifest(variant: Path) -> None:
    (variant / "manifest.json").write_text("{ not json")


@pytest.mark.parametrize("damage", [truncate_an_array, garble_the_manifest])
def test_a_damaged_dataset_cache_is_regenerated_with_one_line(
    damage: Callable[[Path], None], tmp_path: Path
) -> None:
    # a real process: under pytest the logging plugin, not stderr, would receive the warning
    bench = [sys.executable, "-c", "from bench.cli import main; main()"]
    args = [
        *bench,
        "data",
        "prepare",
        "cathdet",
        "--profile",
        "smoke",
        "--data-root",
        str(tmp_path),
    ]
    assert subprocess.run(args, capture_output=True, check=False).returncode == 0
    damage(tmp_path / "cathdet" / "synthetic-smoke")
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("generated cathdet/synthetic-smoke")
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"dataset cache {tmp_path / 'cathdet' / 'synthetic-smoke'}")
    assert line.endswith("regenerating")


@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (
            PermissionError(13, "Permission denied", "mine/train.json"),
            "mine/train.json: cannot be read (Permission denied); check it exists and its "
            "permissions",
        ),
        (FileNotFoundError("data source gone does not exist; pass ..."), "data source gone"),
    ],
)
def test_unreadable_data_is_one_line(
    raised: OSError, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # running as root, a chmod cannot make a file unreadable: the loader's OSError is injected
    from bench.cli import inputs
    from bench.data import sources

    def fail(*args: object) -> None:
        raise raised

    monkeypatch.setattr(sources, "prepare_cells", fail)
    with pytest.raises(ValueError) as error:
        inputs.check_data([], None)
    assert str(error.value).startswith(line) and "\n" not in str(error.value)
