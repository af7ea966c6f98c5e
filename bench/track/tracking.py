"""MLflow bookkeeping for `bench run` (docs/design.md, "What the harness records").

One experiment per grid; one parent run per invocation; one nested child run per cell, tagged with
its `cell_key`. Only the parent process of `bench run` talks to the store: workers send their
epochs and results back to it, so a SQLite store never sees two writers and an interrupted grid
is marked consistently (KILLED) by the one process that knows which runs are open.

The default store is `sqlite:///mlruns/mlflow.db` (relative to the working directory) with
artifacts in `mlruns/artifacts/<grid>`; `--tracking-uri` and MLFLOW_TRACKING_URI override it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.run.cell import CellConfig, cell_key
from bench.track.orphans import HEARTBEAT_TAG, is_orphan, mark_superseded, owner_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ROLE_TAG = "bench.role"  # "parent" or "cell": lets reports and the UI tell the two apart
METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
REMOTE_SCHEMES = ("http://", "https://", "databricks")

CELL_DONE, CELL_FAILED, CELL_PENDING = "done", "failed", "pending"
NOTE_TAG = "mlflow.note.content"  # a run's or an experiment's description in the MLflow UI
DIGEST_LENGTH = 16  # of the dataset's content hash, as the MLflow dataset digest
# what `bench report` needs to rebuild a data-shaped task (keypoints) without the data
LAYOUT_TAG = "data.layout"  # the dataset's DataLayout as JSON
TASK_OPTIONS_TAG = "task_options"  # the cell's task_options as JSON (only when it has some)
# The experiment's runs tab with the cell runs only, listed flat: MLflow 3.17's runs table folds
# child runs under their (collapsed) parent row unless it is filtered and sorted by something
# other than the start time, so the query filters on the cell role and sorts by run name; the
# /runs route skips the GenAI overview page the experiment would open on.
CELL_RUNS_QUERY = (
    "searchFilter=tags.%60bench.role%60%20%3D%20%27cell%27"
    "&orderByKey=attributes.run_name&orderByAsc=true"
)


def tracking_uri(option: str | None = None) -> str:
    """The store to use: the option, else MLFLOW_TRACKING_URI, else the local SQLite default;
    a bare `postgresql://` URL names the driver installed (`database_url`)."""
    return database_url(option or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)


def database_url(url: str) -> str:
    """`postgresql://` names SQLAlchemy 2's default PostgreSQL driver, psycopg 3, which the
    `bench` extra does not install; its psycopg2 is named instead (`postgresql+psycopg2://`)
    unless psycopg 3 is importable. Every store option (MLflow's and Optuna's) goes through
    this, so a URL as users type it works everywhere."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def store_folder(uri: str) -> Path:
    """The local folder that holds the store's files: the SQLite file's folder, else ./mlruns.

    Artifacts (for local stores) and cell checkpoints live under it.
    """
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    return Path("mlruns")


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: `<store folder>/artifacts/<experiment>`.

    None for a tracking server, which decides itself.
    """
    if uri.startswith(REMOTE_SCHEMES):
        return None
    return (store_folder(uri) / "artifacts" / experiment).resolve().as_uri()


def store_exists(uri: str) -> bool:
    """False for a SQLite store whose file is not there yet; every other store may exist."""
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///") :]).exists()


def open_store(uri: str) -> MlflowClient:
    """A client on `uri`, with the store's folders and database tables created.

    Two processes creating the same SQLite schema at once crash each other, so on a SQLite store
    the first touch (which runs the migrations) holds a lock file beside the database: two
    `bench run`s started together on a new store create it one after the other.
    """
    from mlflow import MlflowClient

    if not uri.startswith(REMOTE_SCHEMES):
        (store_folder(uri) / "artifacts").mkdir(parents=True, exist_ok=True)
    # Creating a fresh database logs every migration step at INFO level; that is noise here.
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A tracking server's client prints "View run ... at URL" to stdout at every run's end,
    # into the summary tables; the runs' links are one click away in the UI anyway.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if not uri.startswith("sqlite:///"):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # touches the store: runs migrations once, here
        return client
    import fcntl

    with open(store_folder(uri) / ".create.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    return client


def ensure_experiment(client: MlflowClient, uri: str, name: str) -> str:
    """The id of experiment `name`, created (or restored from deletion) when needed.

    Several processes may call it at once (queue workers, tuning processes): the one that loses
    the race to create the experiment reads the winner's.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(
                client.create_experiment(name, artifact_location=artifact_location(uri, name))
            )
        except Exception:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def environment_tags() -> dict[str, str]:
    """Tags every run of this invocation shares: code version and torch version."""
    import torch

    repo = Path(__file__).resolve().parents[1]
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit or "unknown",
        "git_dirty": "unknown" if status is None else str(bool(status.strip())).lower(),
        "torch_version": torch.__version__,
    }


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def search_all_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Any]:
    """Every run of the experiment that matches `filter_string`, newest first (paged)."""
    found: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=1000,
            page_token=token,
        )
        found.extend(page)
        token = page.token
        if not token:
            return found


def cell_runs(client: MlflowClient, experiment_id: str) -> dict[str, list[Any]]:
    """cell_key -> that cell's runs, newest first (one paged search on the `cell_key` tag)."""
    runs: dict[str, list[Any]] = {}
    for run in search_all_runs(client, experiment_id, "tags.cell_key LIKE '%'"):
        runs.setdefault(run.data.tags["cell_key"], []).append(run)
    return runs


def finished_run(client: MlflowClient, experiment_id: str, key: str) -> Any | None:
    """The newest FINISHED run of cell `key`, or None."""
    found = search_all_runs(
        client,
        experiment_id,
        f"tags.cell_key = '{key}' and attributes.status = 'FINISHED'",
    )
    return found[0] if found else None


def running_runs(client: MlflowClient, experiment_id: str) -> list[Any]:
    """Every RUNNING run of the experiment (parents and cells), newest first."""
    return search_all_runs(client, experiment_id, "attributes.status = 'RUNNING'")


def existing_cell_runs(uri: str, experiment: str) -> dict[str, list[Any]]:
    """`cell_runs` of an experiment without creating anything: {} when there is no store yet."""
    if not store_exists(uri):
        return {}
    client = open_store(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        return {}
    return cell_runs(client, str(found.experiment_id))


def comparison_url(server: str, experiment_id: str) -> str:
    """Where the MLflow UI at `server` shows a grid's cell runs side by side."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{CELL_RUNS_QUERY}"


def describe_experiment(client: MlflowClient, experiment_id: str, grid: str, task: str) -> None:
    """The experiment's description in the MLflow UI."""
    text = (
        f"Grid `{grid}` (task `{task}`), trained by `bench run --grid {grid}`: one parent run per "
        "invocation (its description holds that invocation's summary table) and one run per "
        "cell, tagged `cell_key`, `method`, `lr`, `seed`, `profile` and `outcome`. Filter "
        "`tags.`bench.role` = 'cell'` lists the cells flat for comparison; `bench report --grid "
        f"{grid}` prints the tables and figures."
    )
    client.set_experiment_tag(experiment_id, NOTE_TAG, text)


def cell_status(runs: Sequence[Any]) -> str:
    """done if any run FINISHED; failed if the newest ended FAILED; else pending.

    Runs KILLED by Ctrl-C or left RUNNING by a crashed process count as pending: the cell has no
    result yet and the next `bench run` resumes it from its checkpoint.
    """
    if any(run.info.status == "FINISHED" for run in runs):
        return CELL_DONE
    if runs and runs[0].info.status == "FAILED":
        return CELL_FAILED
    return CELL_PENDING


def cell_state_text(runs: Sequence[Any], checkpoint_epoch: int | None) -> str:
    """What `bench run --dry-run` shows for a cell: its `cell_status`, told apart for a pending
    cell whose newest run is still training ("running") or was cut short ("interrupted",
    with the epoch its checkpoint would resume from)."""
    status = cell_status(runs)
    if status != CELL_PENDING or not runs:
        return status
    newest = runs[0]
    if newest.info.status == "RUNNING" and not is_orphan(newest):
        return "running"
    if newest.info.status in ("RUNNING", "KILLED"):
        if checkpoint_epoch is None:
            return "interrupted (no checkpoint)"
        return f"interrupted (checkpoint at epoch {checkpoint_epoch})"
    return status


def cell_run_name(cell: CellConfig) -> str:
    return f"{cell.method}-lr{cell.lr:g}-s{cell.seed}"


def cell_config_text(cell: CellConfig, device: str) -> str:
    """The cell run's `config.json`: its key, the device it trained on and its full config."""
    return json.dumps({"cell_key": cell_key(cell), "device": device, **cell.to_dict()}, indent=2)


@dataclass
class GridTracker:
    """The parent process's handle on one `bench run` invocation's runs."""

    client: MlflowClient
    experiment_id: str
    parent_run_id: str
    shared_tags: dict[str, str]
    # cell_key -> that cell's interrupted runs, marked superseded by its next run
    interrupted: dict[str, list[Any]] = field(default_factory=dict)
    parent_beat_s: float = 0.0

    @classmethod
    def start(
        cls,
        client: MlflowClient,
        experiment_id: str,
        *,
        grid: str,
        profile: str,
        shared_tags: Mapping[str, str],
        command: str,
        cells_total: int,
    ) -> GridTracker:
        """Opens the invocation's parent run."""
        tags = {
            **shared_tags,
            **owner_tags(),
            ROLE_TAG: "parent",
            "grid": grid,
            "profile": profile,
            "command": command,
            "cells_total": str(cells_total),
        }
        run = client.create_run(
            experiment_id, run_name=f"{grid}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags
        )
        return cls(client, experiment_id, run.info.run_id, dict(shared_tags))

    def start_cell(self, cell: CellConfig, device: str) -> str:
        """Opens a cell's nested run with its tags, params and config.json; returns its id."""
        from mlflow.entities import Param

        key = cell_key(cell)
        tags = {
            **self.shared_tags,
            **owner_tags(),
            ROLE_TAG: "cell",
            "mlflow.parentRunId": self.parent_run_id,
            "cell_key": key,
            "grid": cell.grid,
            "task": cell.task,
            "method": cell.method,
            "lr": f"{cell.lr:g}",
            "seed": str(cell.seed),
            "profile": cell.profile,
            "device": device,
            "outcome": "running",
        }
        if cell.task_options:
            tags[TASK_OPTIONS_TAG] = json.dumps(cell.task_options, sort_keys=True)
        run = self.client.create_run(self.experiment_id, run_name=cell_run_name(cell), tags=tags)
        run_id = str(run.info.run_id)
        params = [Param(name, value) for name, value in cell.to_params().items()]
        self.client.log_batch(run_id, params=params)
        self.client.log_text(run_id, cell_config_text(cell, device), "config.json")
        mark_superseded(self.client, self.interrupted.pop(key, []), run_id)
        return run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """All of one epoch's metrics in one batched call, at step `epoch`, with the cell's
        heartbeat; the parent's heartbeat at most once a minute."""
        self._log_metrics(run_id, metrics, step=epoch, heartbeat=True)
        now = time.time()
        if now - self.parent_beat_s > 60:
            self.client.set_tag(self.parent_run_id, HEARTBEAT_TAG, str(int(now * 1000)))
            self.parent_beat_s = now

    def finish_cell(
        self, run_id: str, cell: CellConfig, result: Any, validation_metric: str
    ) -> None:
        """Final metrics, artifacts and the outcome tag of a cell that ran to its end.

        result: a `bench.run.trainer.CellResult`. A diverged cell is a result: it ends FINISHED with
        tag outcome=diverged.
        """
        from bench.track import figures

        self._log_metrics(run_id, result.final_metrics, step=result.epochs_run)
        if result.data:
            self.log_dataset(run_id, result.data)
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder)
            (out / "figures").mkdir()
            if result.history:
                figures.save(
                    figures.cell_sigma(result.history, title=_title(cell)),
                    out / "figures" / "sigma_per_epoch.png",
                )
                figures.save(
                    figures.cell_validation(result.history, validation_metric, title=_title(cell)),
                    out / "figures" / "validation_per_epoch.png",
                )
            if result.overlay:
                figures.save(
                    figures.prediction_overlay(result.overlay, title=_title(cell)),
                    out / "figures" / "prediction_overlay.png",
                )
            if result.per_landmark:
                write_csv(result.per_landmark, out / "per_landmark.csv")
            self.client.log_artifacts(run_id, folder)
        self.client.set_tag(run_id, "outcome", result.outcome)
        self.client.set_terminated(run_id, "FINISHED")

    def log_dataset(self, run_id: str, data: Mapping[str, str]) -> None:
        """The cell's dataset as an MLflow dataset input (the UI's Dataset column): its name, the
        cache's content hash as digest, the cache folder as source, the split sizes as profile;
        and its layout as the LAYOUT_TAG tag."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import IntegrityError

        dataset = Dataset(
            name=data["name"],
            digest=data["digest"][:DIGEST_LENGTH],
            source_type="local",
            source=json.dumps({"uri": data["source"]}),
            profile=data["splits"],
        )
        context = InputTag(key="mlflow.data.context", value="training")
        inputs = [DatasetInput(dataset, tags=[context])]
        try:
            self.client.log_inputs(run_id, datasets=inputs)
        except MlflowException as error:
            # MLflow's SQL store gets or creates the dataset row in two steps: workers finishing
            # cells of the same data at once can both try to create it (it wraps the unique-key
            # IntegrityError); the loser finds the row on a second try
            if not isinstance(error.__context__, IntegrityError):
                raise
            self.client.log_inputs(run_id, datasets=inputs)
        self.client.set_tag(run_id, LAYOUT_TAG, data["layout"])

    def describe(self, summary_markdown: str) -> None:
        """The parent run's description (MLflow's note): the invocation's summary table."""
        self.client.set_tag(self.parent_run_id, NOTE_TAG, summary_markdown)

    def fail_cell(self, run_id: str, traceback_text: str) -> None:
        """A cell that raised: FAILED, with its traceback as `traceback.txt`."""
        self.client.log_text(run_id, traceback_text, "traceback.txt")
        self.client.set_tag(run_id, "outcome", "failed")
        self.client.set_terminated(run_id, "FAILED")

    def kill_cell(self, run_id: str) -> None:
        """A cell stopped by Ctrl-C: KILLED; it stays pending and resumes next time."""
        self.client.set_tag(run_id, "outcome", "killed")
        self.client.set_terminated(run_id, "KILLED")

    def finish(self, status: str, counts: Mapping[str, int]) -> None:
        """Closes the parent run with the invocation's outcome counts as metrics."""
        self._log_metrics(self.parent_run_id, {f"cells_{k}": v for k, v in counts.items()}, step=0)
        self.client.set_terminated(self.parent_run_id, status)

    def _log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int, *, heartbeat: bool = False
    ) -> None:
        """Metrics in batches of METRICS_PER_BATCH; with `heartbeat`, the run's HEARTBEAT_TAG
        rides along in the first batch."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, step) for name, value in metrics.items()]
        tags = [RunTag(HEARTBEAT_TAG, str(now))] if heartbeat else []
        for start in range(0, len(batch), METRICS_PER_BATCH):
            self.client.log_batch(
                run_id, metrics=batch[start : start + METRICS_PER_BATCH], tags=tags
            )
            tags = []


def write_csv(rows: Iterable[Mapping[str, object]], path: Path) -> None:
    """Rows of dicts as CSV; the header is the union of keys in first-seen order."""
    rows = list(rows)
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)


def _title(cell: CellConfig) -> str:
    return f"{cell.task} {cell.method} lr={cell.lr:g} seed={cell.seed}"
