"""A grid's finished cell runs as plain files, and back into a store.

A store does not travel with a repository, and a grid too long for one machine or one sitting is
trained in pieces. `export_runs` writes each cell's newest FINISHED run as one JSON file named
after its `cell_key`: run name, start and end time, tags, params, every metric's full history,
its dataset inputs and the text artifacts `config.json` and `per_landmark.csv`. `import_runs`
re-creates them in another store under one parent run per grid and profile, so that `bench run`
skips those cells (they are done) and `bench report` reads them beside new ones. Images (the
per-cell figures and prediction overlays) do not travel: MLflow draws the same curves from the
imported histories, and `bench report` copies overlays only where a run has one.

The files are sorted JSON with each metric's history on one line, so that a folder kept in git
shows a re-exported run as a diff, and exporting the same runs again changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.run.cell import CellConfig, cell_key
from bench.track.orphans import HEARTBEAT_TAG, OWNER_TAG, owner_tags
from bench.track.tracking import (
    METRICS_PER_BATCH,
    ROLE_TAG,
    cell_config_text,
    cell_run_name,
    cell_runs,
    ensure_experiment,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from bench.run.grid import Grid

ARCHIVE_FORMAT = 1
TEXT_ARTIFACTS = ("config.json", "per_landmark.csv")
SOURCE_RUN_TAG = "bench.source_run"  # the id of the run an imported run was exported from
# `<grid>/<method>` an adopted run was trained as (`adopt_runs`)
ADOPTED_FROM_TAG = "bench.adopted_from"
RUN_NAME_TAG = "mlflow.runName"  # MLflow's copy of the run name; create_run sets it from the name
# tags that describe the process or store a run lived in, not the cell's result
LOCAL_TAGS = frozenset({"mlflow.parentRunId", OWNER_TAG, HEARTBEAT_TAG})
NON_FINITE = ("nan", "inf", "-inf")  # how a non-finite metric value is written (JSON has none)
PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch call
REQUIRED_FIELDS: dict[str, type] = {
    "format": int,
    "experiment": str,
    "source_run": str,
    "run_name": str,
    "start_time": int,
    "end_time": int,
    "tags": dict,
    "params": dict,
    "metrics": dict,
    "datasets": list,
    "artifacts": dict,
}
DATASET_FIELDS = ("name", "digest", "source_type", "source")
REQUIRED_TAGS = ("cell_key", "grid", "task", "method", "lr", "seed", "profile", "outcome")


class ArchiveError(ValueError):
    """A run file that cannot be exported or imported: one line naming the file (or run), the
    field and the fix."""


@dataclass(frozen=True)
class ArchivedRun:
    """One checked run file: where it was read from and its JSON object."""

    path: Path
    record: dict[str, Any]

    @property
    def cell_key(self) -> str:
        return str(self.record["tags"]["cell_key"])


@dataclass(frozen=True)
class ImportSummary:
    """What `import_runs` did, per experiment: the cells imported, and the cells skipped because
    the store already had that run or a newer FINISHED run of the cell."""

    imported: dict[str, list[str]]
    skipped: dict[str, list[str]]


def export_runs(client: MlflowClient, experiment: str, folder: Path) -> list[Path]:
    """Writes `<folder>/<cell_key>.json` for every cell of `experiment` with a FINISHED run (its
    newest); returns the files written, in cell-key order. Every record is read before the
    first file is written."""
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        raise ArchiveError(
            f"--grid {experiment}: the store has no such experiment; name a grid trained in it"
        )
    newest = _newest_finished(client, str(found.experiment_id))
    records = {key: run_record(client, experiment, newest[key]) for key in sorted(newest)}
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, record in records.items():
        path = folder / f"{key}.json"
        path.write_text(_dumps(record), encoding="utf-8")
        written.append(path)
    return written


def run_record(client: MlflowClient, experiment: str, run: Any) -> dict[str, Any]:
    """One FINISHED run as the archive's JSON object (see the module docstring)."""
    run_id = run.info.run_id
    if run.info.end_time is None:
        raise ArchiveError(
            f"run {run_id}: FINISHED without an end time; it was not written by bench"
        )
    listed = {artifact.path for artifact in client.list_artifacts(run_id)}
    if "config.json" not in listed:
        # every cell run logs config.json when it starts: its artifacts are elsewhere
        raise ArchiveError(
            f"run {run_id}: no config.json under {run.info.artifact_uri}; copy the store's "
            "artifacts folder along with its database"
        )
    artifacts = {
        # bytes decoded as they are: read_text would turn the CSV's \r\n into \n
        name: Path(client.download_artifacts(run_id, name)).read_bytes().decode("utf-8")
        for name in TEXT_ARTIFACTS
        if name in listed
    }
    metrics = {
        key: [
            [m.step, _number(m.value), m.timestamp]
            for m in sorted(
                client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)
            )
        ]
        for key in sorted(run.data.metrics)
    }
    datasets = [
        {
            "name": item.dataset.name,
            "digest": item.dataset.digest,
            "source_type": item.dataset.source_type,
            "source": item.dataset.source,
            "profile": item.dataset.profile,
            "context": {tag.key: tag.value for tag in item.tags},
        }
        for item in (run.inputs.dataset_inputs if run.inputs else [])
    ]
    return {
        "format": ARCHIVE_FORMAT,
        "experiment": experiment,
        # an imported run names the run it came from, so export -> import -> export is stable
        "source_run": run.data.tags.get(SOURCE_RUN_TAG, run_id),
        "run_name": run.info.run_name,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "tags": {
            k: v for k, v in run.data.tags.items() if k not in LOCAL_TAGS and k != SOURCE_RUN_TAG
        },
        "params": dict(run.data.params),
        "metrics": metrics,
        "datasets": datasets,
        "artifacts": artifacts,
    }


def read_archive(folder: Path) -> list[ArchivedRun]:
    """Every `*.json` of `folder`, checked: raises ArchiveError naming the first bad file."""
    if not folder.is_dir():
        raise ArchiveError(f"{folder}: not a folder; give the folder `bench runs export` wrote")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise ArchiveError(
            f"{folder}: no *.json run files; give the folder `bench runs export` wrote"
        )
    return [ArchivedRun(path, _checked(path)) for path in paths]


def adopt_runs(
    archived: Sequence[ArchivedRun], grid: Grid
) -> tuple[list[ArchivedRun], list[ArchivedRun]]:
    """`archived` as cells of `grid`: (adopted, left out).

    A run is adopted when its `config.json` is, but for the grid and method names, the config
    of a cell that `bench run --grid <grid>` trains at the run's profile and seed (one of the
    grid's methods and learning rates, the profile's epochs): training depends on nothing else,
    so that cell's run would be this one. Its experiment, tags `grid`, `method`, `cell_key`,
    run name, params and `config.json` become that cell's, and tag ADOPTED_FROM_TAG keeps
    `<grid>/<method>` it was trained as. Runs of `grid` itself pass unchanged; the others are
    left out. Raises ArchiveError on a run without a readable config.json, or one that matches
    two methods of `grid`.
    """
    from bench.run.grid import GridError, expand_cells

    adopted, left_out = [], []
    for run in archived:
        trained, device = _trained_cell(run)
        try:
            candidates = expand_cells(
                grid, trained.profile, seeds=range(trained.seed, trained.seed + 1)
            )
        except GridError:  # a profile the grid cannot expand: no cell of it trains this run
            left_out.append(run)
            continue
        same = [
            cell
            for cell in candidates
            if dataclasses.replace(cell, grid=trained.grid, method=trained.method) == trained
        ]
        if len(same) > 1:
            labels = " and ".join(cell.method for cell in same)
            raise ArchiveError(
                f"{run.path}: trains the same config as methods {labels} of {grid.path}; "
                "give each method of the grid its own schedule"
            )
        if not same:
            left_out.append(run)
        elif same[0] == trained:
            adopted.append(run)
        else:
            adopted.append(ArchivedRun(run.path, _relabelled(run.record, trained, same[0], device)))
    return adopted, left_out


def _trained_cell(run: ArchivedRun) -> tuple[CellConfig, str]:
    """The CellConfig of the run's `config.json`, and the device it names."""
    text = run.record["artifacts"].get("config.json")
    try:
        config = json.loads(text) if text is not None else None
        if not isinstance(config, dict) or not isinstance(config.get("device"), str):
            raise ValueError("not a JSON object with a device")
        device = config["device"]
        config = {k: v for k, v in config.items() if k not in ("cell_key", "device")}
        return CellConfig.from_dict(config), device
    except (ValueError, TypeError, KeyError) as error:
        raise ArchiveError(
            f"{run.path}: artifacts.config.json is missing or not a cell config ({error}); "
            "export the run again with this version"
        ) from None


def _relabelled(
    record: Mapping[str, Any], trained: CellConfig, cell: CellConfig, device: str
) -> dict[str, Any]:
    """`record`, the run of `trained` on `device`, as the run of `cell`."""
    name = cell_run_name(cell)
    return {
        **record,
        "experiment": cell.grid,
        "run_name": name,
        "tags": {
            **record["tags"],
            "grid": cell.grid,
            "method": cell.method,
            "cell_key": cell_key(cell),
            RUN_NAME_TAG: name,
            ADOPTED_FROM_TAG: f"{trained.grid}/{trained.method}",
        },
        "params": {**record["params"], **cell.to_params()},
        "artifacts": {**record["artifacts"], "config.json": cell_config_text(cell, device)},
    }


def import_runs(
    client: MlflowClient, uri: str, archived: Sequence[ArchivedRun], command: str
) -> ImportSummary:
    """Re-creates `archived` runs (from `read_archive`) as FINISHED cell runs, one parent run per
    experiment and profile. A cell whose store already holds the same run or a newer FINISHED
    one is skipped, so importing a folder twice adds nothing.

    All or nothing: when MLflow refuses a value (or the import is interrupted), every run this
    call created is deleted again and ArchiveError names the file (KeyboardInterrupt propagates).
    """
    groups: dict[tuple[str, str], list[ArchivedRun]] = {}
    for run in archived:
        groups.setdefault((run.record["experiment"], run.record["tags"]["profile"]), []).append(run)
    imported: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = {}
    created: list[str] = []
    current: ArchivedRun | None = None
    try:
        for (experiment, profile), group in groups.items():
            current = None
            experiment_id = ensure_experiment(client, uri, experiment)
            newest = _newest_finished(client, experiment_id)
            fresh = []
            imported.setdefault(experiment, [])
            for run in group:
                if _already_there(run, newest.get(run.cell_key)):
                    skipped.setdefault(experiment, []).append(run.cell_key)
                else:
                    fresh.append(run)
            skipped.setdefault(experiment, [])
            if not fresh:
                continue
            parent = _open_parent(client, experiment_id, experiment, profile, len(fresh), command)
            created.append(parent)
            for current in fresh:
                run_id = _start_run(client, experiment_id, parent, current.record)
                created.append(run_id)
                _fill_run(client, run_id, current.record)
                imported[experiment].append(current.cell_key)
            client.set_terminated(parent, "FINISHED")
    except Exception as error:
        _delete(client, created)
        where = current.path if current is not None else "the store"
        raise ArchiveError(f"{where}: {error}; nothing was imported") from None
    except BaseException:
        _delete(client, created)
        raise
    return ImportSummary(imported, skipped)


def _newest_finished(client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    """cell_key -> the newest FINISHED run of that cell in the store."""
    newest = {}
    for key, runs in cell_runs(client, experiment_id).items():
        finished = [run for run in runs if run.info.status == "FINISHED"]
        if finished:
            newest[key] = finished[0]
    return newest


def _already_there(archived: ArchivedRun, existing: Any) -> bool:
    """The store holds this very run, or a FINISHED run of the cell that started no earlier."""
    if existing is None:
        return False
    source = existing.data.tags.get(SOURCE_RUN_TAG, existing.info.run_id)
    return bool(
        source == archived.record["source_run"]
        or existing.info.start_time >= archived.record["start_time"]
    )


def _open_parent(
    client: MlflowClient,
    experiment_id: str,
    experiment: str,
    profile: str,
    cells: int,
    command: str,
) -> str:
    tags = {
        **owner_tags(),
        ROLE_TAG: "parent",
        "grid": experiment,
        "profile": profile,
        "command": command,
        "cells_total": str(cells),
    }
    run = client.create_run(experiment_id, run_name=f"{experiment}-{profile}-import", tags=tags)
    return str(run.info.run_id)


def _start_run(
    client: MlflowClient, experiment_id: str, parent: str, record: Mapping[str, Any]
) -> str:
    """Creates the imported run, with its tags and start time; returns its id."""
    tags = {
        **{k: v for k, v in record["tags"].items() if k != RUN_NAME_TAG},
        "mlflow.parentRunId": parent,
        SOURCE_RUN_TAG: record["source_run"],
    }
    run = client.create_run(
        experiment_id, start_time=record["start_time"], tags=tags, run_name=record["run_name"]
    )
    return str(run.info.run_id)


def _fill_run(client: MlflowClient, run_id: str, record: Mapping[str, Any]) -> None:
    """Params, metric histories, datasets and artifacts of a started run; then FINISHED."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

    params = [Param(name, value) for name, value in record["params"].items()]
    metrics = [
        Metric(key, float(value), timestamp, step)
        for key, points in record["metrics"].items()
        for step, value, timestamp in points
    ]
    for start in range(0, len(params), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAMS_PER_BATCH])
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])
    inputs = [
        DatasetInput(
            Dataset(**{field: d[field] for field in DATASET_FIELDS}, profile=d.get("profile")),
            tags=[InputTag(k, v) for k, v in d.get("context", {}).items()],
        )
        for d in record["datasets"]
    ]
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    if record["artifacts"]:
        with tempfile.TemporaryDirectory() as folder:
            for name, text in record["artifacts"].items():
                with open(Path(folder) / name, "w", encoding="utf-8", newline="") as file:
                    file.write(text)
            client.log_artifacts(run_id, folder)
    client.set_terminated(run_id, "FINISHED", end_time=record["end_time"])


def _delete(client: MlflowClient, run_ids: Sequence[str]) -> None:
    """Deletes (MLflow's soft delete: no search lists them) the runs an import created."""
    for run_id in reversed(run_ids):
        client.delete_run(run_id)


def _checked(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArchiveError(f"{path}: not a readable JSON file ({error}); export it again") from None
    if not isinstance(record, dict):
        raise ArchiveError(f"{path}: not a run record (a JSON object); export it again")
    for name, kind in REQUIRED_FIELDS.items():
        if not _is(record.get(name), kind):
            raise ArchiveError(
                f"{path}: field {name!r} is missing or not {_KIND_NAMES[kind]}; export it again"
            )
    if record["format"] != ARCHIVE_FORMAT:
        raise ArchiveError(
            f"{path}: archive format {record['format']}, this bench reads {ARCHIVE_FORMAT}; "
            "export it again with this version"
        )
    for name in ("tags", "params"):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in record[name].items()):
            raise ArchiveError(f"{path}: {name} must map names to strings; export it again")
    missing = [tag for tag in REQUIRED_TAGS if tag not in record["tags"]]
    if missing:
        raise ArchiveError(f"{path}: tags {', '.join(missing)} missing; export it again")
    if path.stem != record["tags"]["cell_key"]:
        raise ArchiveError(
            f"{path}: holds cell {record['tags']['cell_key']!r}; name the file after it"
        )
    if record["experiment"] != record["tags"]["grid"]:
        raise ArchiveError(
            f"{path}: experiment {record['experiment']!r} but tag grid "
            f"{record['tags']['grid']!r}; export it again"
        )
    if record["start_time"] < 0 or record["end_time"] < record["start_time"]:
        raise ArchiveError(
            f"{path}: end_time before start_time (or a negative time); export it again"
        )
    for key, points in record["metrics"].items():
        if not isinstance(points, list) or not all(_is_point(p) for p in points):
            raise ArchiveError(
                f"{path}: metrics.{key} is not a list of [step, value, timestamp]; export it again"
            )
    for index, dataset in enumerate(record["datasets"]):
        if not (
            isinstance(dataset, dict)
            and all(isinstance(dataset.get(field), str) for field in DATASET_FIELDS)
            and isinstance(dataset.get("context", {}), dict)
        ):
            raise ArchiveError(
                f"{path}: datasets[{index}] needs {', '.join(DATASET_FIELDS)} as strings; "
                "export it again"
            )
    for name, text in record["artifacts"].items():
        if name not in TEXT_ARTIFACTS or not isinstance(text, str):
            raise ArchiveError(
                f"{path}: artifacts.{name}: only {', '.join(TEXT_ARTIFACTS)} as text are kept; "
                "export it again"
            )
    return record


_KIND_NAMES = {int: "a whole number", str: "a string", dict: "an object", list: "a list"}


def _is(value: Any, kind: type) -> bool:
    """isinstance, except that JSON's true and false are not whole numbers."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _is_point(point: Any) -> bool:
    return (
        isinstance(point, list)
        and len(point) == 3
        and _is(point[0], int)
        and (_is(point[1], int) or isinstance(point[1], float) or point[1] in NON_FINITE)
        and _is(point[2], int)
        and point[2] >= 0
    )


def _number(value: float) -> float | str:
    """A metric value for JSON: a non-finite one as the string of NON_FINITE float() reads back."""
    return value if math.isfinite(value) else str(value)


def _dumps(record: Mapping[str, Any]) -> str:
    """Sorted, indented JSON with each metric's history on one line (a face cell has thousands
    of points, which one line each would make a file of hundreds of thousands of lines)."""
    fields = []
    for key in sorted(record):
        if key == "metrics" and record[key]:
            lines = [
                f"  {json.dumps(name)}: {json.dumps(points, allow_nan=False)}"
                for name, points in sorted(record[key].items())
            ]
            text = "{\n" + ",\n".join(lines) + "\n }"
        else:
            text = json.dumps(record[key], indent=1, sort_keys=True, allow_nan=False)
            text = text.replace("\n", "\n ")
        fields.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"
