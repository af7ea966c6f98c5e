"""A grid's finished cell runs as plain files, and back into a store.

A store does not travel with a repository, and a grid too long for one machine or one sitting is
trained in pieces. `export_runs` writes each cell's FINISHED run as one JSON file named after its
`cell_key`: run name, start and end time, tags, params, every metric's full history, its dataset
input and the text artifacts `config.json` and `per_landmark.csv`. `import_runs` re-creates them
in another store under one parent run, so that `bench run` skips those cells (they are done) and
`bench report` reads them beside new ones. Images (the per-cell figures and prediction overlays)
do not travel: MLflow draws the same curves from the imported histories, and `bench report`
copies overlays only where a run has one.

The files are sorted JSON with one indentation level per nesting, so that a folder kept in git
shows a re-exported run as a diff, and writing the same runs again changes nothing.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.track.orphans import HEARTBEAT_TAG, OWNER_TAG, SUPERSEDED_TAG
from bench.track.tracking import (
    METRICS_PER_BATCH,
    ROLE_TAG,
    cell_runs,
    ensure_experiment,
    environment_tags,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARCHIVE_FORMAT = 1
TEXT_ARTIFACTS = ("config.json", "per_landmark.csv")
SOURCE_RUN_TAG = "bench.source_run"  # the id of the run an imported run was exported from
# tags that describe the process or store a run lived in, not the cell's result
LOCAL_TAGS = frozenset({"mlflow.parentRunId", OWNER_TAG, HEARTBEAT_TAG, SUPERSEDED_TAG})
REQUIRED_FIELDS = {
    "format": int,
    "experiment": str,
    "run_name": str,
    "start_time": int,
    "end_time": int,
    "tags": dict,
    "params": dict,
    "metrics": dict,
    "datasets": list,
    "artifacts": dict,
}
NON_FINITE = ("nan", "inf", "-inf")  # how a non-finite metric value is written (JSON has none)
PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch call
REQUIRED_TAGS = ("cell_key", "grid", "task", "method", "lr", "seed", "profile", "outcome")


class ArchiveError(ValueError):
    """A run file that cannot be imported: the message names the file, the field and the fix."""


@dataclass(frozen=True)
class ImportSummary:
    """What `import_runs` did: per experiment, the cells imported and the cells skipped because
    the store already had a FINISHED run of them."""

    imported: dict[str, list[str]]
    skipped: dict[str, list[str]]


def export_runs(client: MlflowClient, experiment: str, folder: Path) -> list[Path]:
    """Writes `<folder>/<cell_key>.json` for every cell of `experiment` with a FINISHED run (its
    newest one that no later run superseded); returns the files written, in cell-key order."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ArchiveError(f"the store has no experiment {experiment!r}; run its grid first")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, runs in sorted(cell_runs(client, str(found.experiment_id)).items()):
        finished = [
            r for r in runs if r.info.status == "FINISHED" and SUPERSEDED_TAG not in r.data.tags
        ]
        if not finished:
            continue
        path = folder / f"{key}.json"
        path.write_text(_dumps(run_record(client, experiment, finished[0])), encoding="utf-8")
        written.append(path)
    return written


def run_record(client: MlflowClient, experiment: str, run: Any) -> dict[str, Any]:
    """One run as the archive's JSON object (see the module docstring)."""
    run_id = run.info.run_id
    metrics = {
        key: [
            [m.step, _number(m.value), m.timestamp]
            for m in sorted(
                client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)
            )
        ]
        for key in sorted(run.data.metrics)
    }
    listed = {artifact.path for artifact in client.list_artifacts(run_id)}
    artifacts = {}
    for name in TEXT_ARTIFACTS:
        if name in listed:
            artifacts[name] = Path(client.download_artifacts(run_id, name)).read_text(
                encoding="utf-8"
            )
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


def read_archive(folder: Path) -> list[dict[str, Any]]:
    """Every `*.json` of `folder`, checked: raises ArchiveError naming the first bad file."""
    if not folder.is_dir():
        raise ArchiveError(f"{folder}: not a folder; give the folder `bench runs export` wrote")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise ArchiveError(
            f"{folder}: no *.json run files; give the folder `bench runs export` wrote"
        )
    return [_checked(path) for path in paths]


def import_runs(
    client: MlflowClient, uri: str, records: Sequence[Mapping[str, Any]], command: str
) -> ImportSummary:
    """Re-creates `records` (from `read_archive`) as FINISHED cell runs, one parent run per
    experiment; a cell that already has a FINISHED run in the store is skipped, so importing the
    same folder twice adds nothing."""
    by_experiment: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_experiment.setdefault(record["experiment"], []).append(record)
    imported: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = {}
    for experiment, group in by_experiment.items():
        experiment_id = ensure_experiment(client, uri, experiment)
        done = {
            key
            for key, runs in cell_runs(client, experiment_id).items()
            if any(r.info.status == "FINISHED" for r in runs)
        }
        fresh = [r for r in group if r["tags"]["cell_key"] not in done]
        skipped[experiment] = sorted(
            r["tags"]["cell_key"] for r in group if r["tags"]["cell_key"] in done
        )
        imported[experiment] = []
        if not fresh:
            continue
        parent = _open_parent(client, experiment_id, experiment, fresh, command)
        for record in fresh:
            _create_run(client, experiment_id, parent, record)
            imported[experiment].append(record["tags"]["cell_key"])
        client.set_terminated(parent, "FINISHED")
    return ImportSummary(imported, skipped)


def _open_parent(
    client: MlflowClient,
    experiment_id: str,
    experiment: str,
    records: Sequence[Mapping[str, Any]],
    command: str,
) -> str:
    profiles = sorted({r["tags"]["profile"] for r in records})
    tags = {
        **environment_tags(),
        ROLE_TAG: "parent",
        "grid": experiment,
        "profile": profiles[0] if len(profiles) == 1 else ",".join(profiles),
        "command": command,
        "cells_total": str(len(records)),
    }
    run = client.create_run(experiment_id, run_name=f"{experiment}-import", tags=tags)
    return str(run.info.run_id)


def _create_run(
    client: MlflowClient, experiment_id: str, parent: str, record: Mapping[str, Any]
) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

    tags = {
        **record["tags"],
        "mlflow.parentRunId": parent,
        SOURCE_RUN_TAG: record.get("source_run", ""),
    }
    run = client.create_run(
        experiment_id, start_time=record["start_time"], tags=tags, run_name=record["run_name"]
    )
    run_id = run.info.run_id
    params = [Param(name, str(value)) for name, value in record["params"].items()]
    metrics = [
        Metric(key, float(value), int(timestamp), int(step))
        for key, points in record["metrics"].items()
        for step, value, timestamp in points
    ]
    for start in range(0, len(params), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAMS_PER_BATCH])
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])
    inputs = [
        DatasetInput(
            Dataset(
                d["name"], d["digest"], d["source_type"], d["source"], profile=d.get("profile")
            ),
            tags=[InputTag(k, v) for k, v in d.get("context", {}).items()],
        )
        for d in record["datasets"]
    ]
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    if record["artifacts"]:
        with tempfile.TemporaryDirectory() as folder:
            for name, text in record["artifacts"].items():
                (Path(folder) / name).write_text(text, encoding="utf-8")
            client.log_artifacts(run_id, folder)
    client.set_terminated(run_id, "FINISHED", end_time=record["end_time"])


def _checked(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArchiveError(f"{path}: not a readable JSON file ({error}); export it again") from None
    if not isinstance(record, dict):
        raise ArchiveError(f"{path}: not a run record (a JSON object); export it again")
    for name, kind in REQUIRED_FIELDS.items():
        if not isinstance(record.get(name), kind):
            raise ArchiveError(
                f"{path}: field {name!r} is missing or not a {kind.__name__}; export it again"
            )
    if record["format"] != ARCHIVE_FORMAT:
        raise ArchiveError(
            f"{path}: archive format {record['format']}, this bench reads {ARCHIVE_FORMAT}; "
            "export it again with this version"
        )
    missing = [tag for tag in REQUIRED_TAGS if not isinstance(record["tags"].get(tag), str)]
    if missing:
        raise ArchiveError(f"{path}: tags {', '.join(missing)} missing; export it again")
    if path.stem != record["tags"]["cell_key"]:
        raise ArchiveError(
            f"{path}: holds cell {record['tags']['cell_key']!r}; name the file after it"
        )
    for key, points in record["metrics"].items():
        if not isinstance(points, list) or not all(_is_point(p) for p in points):
            raise ArchiveError(
                f"{path}: metrics.{key} is not a list of [step, value, timestamp]; export it again"
            )
    for name, text in record["artifacts"].items():
        if name not in TEXT_ARTIFACTS or not isinstance(text, str):
            raise ArchiveError(
                f"{path}: artifacts.{name}: only {', '.join(TEXT_ARTIFACTS)} as text are kept; "
                "export it again"
            )
    return record


def _is_point(point: Any) -> bool:
    return (
        isinstance(point, list)
        and len(point) == 3
        and isinstance(point[0], int)
        and (isinstance(point[1], (int, float)) or point[1] in NON_FINITE)
        and isinstance(point[2], int)
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
