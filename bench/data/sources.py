"""Where a task's data come from: `prepare_dataset(task, profile, source)` generates or loads a
variant once, caches it and memory-maps it afterwards.

The task table (`bench.tasks.TASKS`) names each task's generator and real-format loader; a real
source is loaded at the `image_size` of the task's synthetic profile of the same name (for a task
without a generator, its entry's `image_sizes`), unless the caller gives one.

Variants are cached under `<root>/<task>/<variant>/` (see `bench.data.cache`): `synthetic-<profile>`
(`-seed<k>` appended for seeds other than 0) or `real-<8 hex of the resolved path>-<profile>`
(`-<H>x<W>` appended for an image size other than the profile's).
The root is the `root` argument, else `$ADALOSS_DATA_ROOT`, else `./datasets`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bench.profiles import PROFILES
from bench.tasks import TASKS, TaskEntry, get_task, task_entry

if TYPE_CHECKING:
    from bench.data.cache import CacheStatus
    from bench.data.dataset import LandmarkDataset
    from bench.run.cell import CellConfig
    from bench.tasks.base import Task

SPLITS = ("train", "val", "test")
ROOT_ENV = "ADALOSS_DATA_ROOT"
DEFAULT_ROOT = Path("datasets")
_VARIANT = re.compile(
    r"^(?P<kind>synthetic|real)(-[0-9a-f]{8})?-(?P<profile>[a-z]+)"
    r"(-seed(?P<seed>\d+))?(-(?P<height>\d+)x(?P<width>\d+))?$"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What `prepare_dataset` did: action is "cached", "generated" or "loaded" (real data)."""

    dataset: LandmarkDataset
    directory: Path
    action: str
    seconds: float


def data_root(root: str | Path | None = None) -> Path:
    """The cache root: `root`, else `$ADALOSS_DATA_ROOT`, else `./datasets`."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    return profile


def variant_name(
    source: str | Path,
    profile: str,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    validation_size: int | None = None,
) -> str:
    """`synthetic-<profile>[-seed<k>][-val<N>]` or `real-<8 hex of the resolved path>-<profile>`,
    with `-<H>x<W>` appended for an `image_size` other than the profile's."""
    size = "" if image_size is None else f"-{image_size[0]}x{image_size[1]}"
    if str(source) == "synthetic":
        validation = "" if validation_size is None else f"-val{validation_size}"
        return f"synthetic-{profile}" + (f"-seed{seed}" if seed else "") + validation + size
    digest = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:8]
    return f"real-{digest}-{profile}{size}"


def import_module(task: str, module_name: str) -> ModuleType:
    """Import a task's generator or loader; a failure names the task and the module."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise RuntimeError(
            f"task {task!r} needs module {module_name}, which cannot be imported: {error}"
        ) from error


def profile_params(task: str, profile: str) -> Any:
    """The parameter dataclass of `task`'s synthetic generator for `profile`."""
    entry = task_entry(task)
    if entry.synthetic is None:
        raise ValueError(f"task {task!r} has no synthetic data; its data_source is your files")
    return import_module(task, entry.synthetic).PROFILES[check_profile(profile)]


def with_validation_size(params: Any, validation_size: int | None) -> Any:
    """A generator's parameters with `validation_size` validation images (None: unchanged).
    Generators that draw their splits from one stream append the extra images after the test
    split (`n_val_appended`), so the training and test images stay the same; the others draw
    each image from its own stream and simply take a larger `n_val`."""
    if validation_size is None:
        return params
    if validation_size < params.n_val:
        raise ValueError(
            f"validation_size {validation_size} is below the profile's {params.n_val} validation "
            f"images; give at least {params.n_val}"
        )
    if hasattr(params, "n_val_appended"):
        return dataclasses.replace(params, n_val_appended=validation_size - params.n_val)
    return dataclasses.replace(params, n_val=validation_size)


def profile_image_size(task: str, profile: str) -> tuple[int, int]:
    """(H, W) of the stored images of `task` at `profile`."""
    entry = task_entry(task)
    check_profile(profile)
    if entry.image_sizes is not None:
        return tuple(entry.image_sizes[profile])  # type: ignore[return-value]
    return tuple(profile_params(task, profile).image_size)  # type: ignore[no-any-return]


def provenance(
    task: str,
    profile: str,
    source: str | Path,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    validation_size: int | None = None,
) -> dict[str, Any]:
    """Everything that determines a variant's content, as stored in its manifest."""
    entry = task_entry(task)
    check_profile(profile)
    if str(source) == "synthetic":
        if entry.synthetic is None:
            raise ValueError(
                f"task {task!r} has no synthetic data; give it the folder of your COCO keypoints "
                "export or of your images with .pts files (grid: data_source; bench data: "
                "--source)"
            )
        if image_size is not None:
            raise ValueError("image_size applies to real data; synthetic data has its profile's")
        synthetic = import_module(task, entry.synthetic)
        params = with_validation_size(synthetic.PROFILES[profile], validation_size)
        return {
            "source": "synthetic",
            "module": entry.synthetic,
            "generator_version": int(synthetic.GENERATOR_VERSION),
            "parameters": dataclasses.asdict(params),
            "seed": int(seed),
        }
    if validation_size is not None:
        raise ValueError(
            "validation_size applies to synthetic data; real data keep the validation images "
            "of their export"
        )
    path = Path(source).resolve()
    if not path.exists():
        raise FileNotFoundError(
            f"data source {source} does not exist; pass 'synthetic' or a path to the real data"
        )
    loader = import_module(task, entry.loader)
    return {
        "source": str(path),
        "module": entry.loader,
        "loader_version": int(getattr(loader, "LOADER_VERSION", 0)),
        "image_size": list(image_size or profile_image_size(task, profile)),
        "fingerprint": _fingerprint(path),
    }


def prepare_dataset(
    task: str,
    profile: str = "quick",
    source: str | Path = "synthetic",
    root: str | Path | None = None,
    *,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    validation_size: int | None = None,
    verify: bool = True,
) -> Prepared:
    """Load a task's variant from the cache, generating or loading and caching it if needed.

    source: "synthetic" or the path of the real data (read by the task's loader).
    image_size: (H, W) for real data; None: the profile's.
    validation_size: the synthetic validation split's images; None: the profile's.
    verify: re-hash the cached files (see `bench.data.cache.load_cached`).
    """
    from bench.data import cache

    entry = task_entry(task)
    expected = provenance(task, profile, source, seed, image_size, validation_size)
    variant = variant_name(source, profile, seed, image_size, validation_size)
    directory = data_root(root) / task / variant
    start = time.perf_counter()
    cached = cache.load_cached(directory, expected, verify=verify)
    if cached is not None:
        return Prepared(cached, directory, "cached", time.perf_counter() - start)

    dataset = _produce(entry, profile, source, seed, image_size, validation_size)
    _check_layout(entry, dataset, expected)
    named = dataclasses.replace(dataset, variant=directory.name)
    cache.save_dataset(named, directory, expected)
    stored = cache.load_cached(directory, expected, verify=False)
    if stored is None:
        raise RuntimeError(f"dataset cache {directory} could not be read back after writing it")
    action = "generated" if str(source) == "synthetic" else "loaded"
    return Prepared(stored, directory, action, time.perf_counter() - start)


def load_dataset(task: str, profile: str = "quick", **options: Any) -> LandmarkDataset:
    """A task's dataset, memory-mapped from `<root>/<task>/<variant>/` (made once, then reused);
    `options` are `prepare_dataset`'s (source, root, seed, image_size, validation_size)."""
    return prepare_dataset(task, profile, **options).dataset


def prepare_cell_data(
    cell: CellConfig, root: str | Path | None = None, *, verify: bool = True
) -> Prepared:
    """`prepare_dataset` for the dataset `cell` trains on (its `data_identity`)."""
    return prepare_dataset(
        cell.task,
        cell.profile,
        cell.data_source,
        root,
        image_size=cell.image_size,
        validation_size=cell.validation_size,
        verify=verify,
    )


def cell_task(cell: CellConfig, root: str | Path | None = None) -> Task:
    """The Task that trains and scores `cell`; a task shaped by its data (keypoints) gets the
    layout of the cell's data, prepared (or read from the cache) here."""
    layout = task_entry(cell.task).layout
    if layout is None:
        layout = prepare_cell_data(cell, root, verify=False).dataset.layout
    return get_task(cell.task, layout, cell.task_options)


def prepare_cells(cells: Sequence[CellConfig], root: str | Path | None = None) -> list[Prepared]:
    """Prepare each distinct dataset that `cells` train on and build every cell's task on it,
    so that bad data or task options stop a command before it records anything: the loaders'
    one-line ValueError (or an OSError) propagates, and nothing of bad data is cached.

    Returns one Prepared per distinct `cell.data_identity`, in cell order.
    """
    prepared: dict[tuple[Any, ...], Prepared] = {}
    for cell in cells:
        identity = cell.data_identity
        if identity not in prepared:
            prepared[identity] = prepare_cell_data(cell, root)
        get_task(cell.task, prepared[identity].dataset.layout, cell.task_options)
    return list(prepared.values())


def cached_variants(root: str | Path | None = None) -> list[tuple[str, CacheStatus]]:
    """(task, status) of every cached variant under the root, without hashing the arrays.

    A variant is "stale" when its provenance differs from what `prepare_dataset` would ask for
    now (parameters, generator or loader version, or the real data changed); the real data's
    provenance can only be checked while its path exists.
    """
    from bench.data.cache import inspect_cache

    found = []
    base = data_root(root)
    for task in TASKS:
        task_dir = base / task
        if not task_dir.is_dir():
            continue
        for directory in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            if directory.name.startswith("."):
                continue  # a write in progress or an old variant being removed
            found.append((task, inspect_cache(directory, _expected_for(task, directory))))
    return found


def _expected_for(task: str, directory: Path) -> dict[str, Any] | None:
    """The provenance `prepare_dataset` would expect for a variant directory, if knowable."""
    match = _VARIANT.match(directory.name)
    if match is None or match["profile"] not in PROFILES:
        return None
    seed = int(match["seed"] or 0)
    size = (int(match["height"]), int(match["width"])) if match["height"] else None
    source: str | Path = "synthetic"
    if match["kind"] == "real":
        from bench.data.cache import MANIFEST

        try:
            recorded = json.loads((directory / MANIFEST).read_text())["provenance"]["source"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not Path(recorded).exists():
            return None
        source = recorded
    try:
        return provenance(task, match["profile"], source, seed, size)
    except (RuntimeError, ValueError, FileNotFoundError, AttributeError):
        return None


def _produce(
    entry: TaskEntry,
    profile: str,
    source: str | Path,
    seed: int,
    image_size: tuple[int, int] | None,
    validation_size: int | None,
) -> LandmarkDataset:
    if str(source) == "synthetic":
        synthetic = import_module(entry.name, str(entry.synthetic))
        log.info("generating %s/%s", entry.name, profile)
        params = with_validation_size(synthetic.PROFILES[profile], validation_size)
        dataset: LandmarkDataset = synthetic.generate(params, seed)
        return dataset
    loader = import_module(entry.name, entry.loader)
    size = image_size or profile_image_size(entry.name, profile)
    loaded: LandmarkDataset = loader.load(Path(source), size)
    return loaded


def _check_layout(entry: TaskEntry, dataset: LandmarkDataset, expected: dict[str, Any]) -> None:
    """The produced dataset has the splits, and the task's layout when the task fixes one; one
    line naming the mismatch otherwise."""
    where = f"{expected['module']} for task {entry.name!r}"
    if set(dataset.splits) != set(SPLITS):
        raise ValueError(f"{where} returned splits {sorted(dataset.splits)}; expected {SPLITS}")
    for name in SPLITS:
        split = dataset.split(name)
        if len(split) == 0 or (name != "train" and bool(split.points.isnan().all())):
            sizes = ", ".join(f"{n} {len(dataset.split(n))}" for n in SPLITS)
            own = "" if name == "train" else f", or give it its own {name}.json or {name}/ folder"
            raise ValueError(
                f"{expected['source']}: the {name} split has no labelled image ({sizes} images); "
                f"add annotated images{own}"
            )
    if entry.layout is None:
        return
    hint = (
        "; for data with their own landmarks, use `task: keypoints` in the grid"
        if str(expected["source"]) != "synthetic"
        else ""
    )
    wanted = entry.layout
    if dataset.landmark_names != wanted.landmark_names:
        raise ValueError(
            f"{expected['source']}: landmarks {_shown(dataset.landmark_names)}, but task "
            f"{entry.name!r} has {_shown(wanted.landmark_names)}{hint}"
        )
    if dataset.channels != wanted.channels or dataset.multi_instance != wanted.multi_instance:
        raise ValueError(
            f"{expected['source']}: {_described(dataset.channels, dataset.multi_instance)} "
            f"images, but task {entry.name!r} takes "
            f"{_described(wanted.channels, wanted.multi_instance)} ones{hint}"
        )


def _shown(names: tuple[str, ...]) -> str:
    listed = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"({listed}: {len(names)})"


def _described(channels: int, multi_instance: bool) -> str:
    colour = "grey" if channels == 1 else f"{channels}-channel"
    return f"{colour}, {'multi' if multi_instance else 'single'}-instance"


def _fingerprint(path: Path) -> dict[str, int]:
    """Cheap change detector for real data: file count, total bytes, newest modification time."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return {
        "files": len(stats),
        "bytes": sum(s.st_size for s in stats),
        "newest_mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }
