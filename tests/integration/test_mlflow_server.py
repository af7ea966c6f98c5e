"""A store written by the smoke grid, read back through `mlflow server`'s REST API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smoke_grid")]

STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(base: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (body None) or POST JSON to the server; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


@pytest.fixture
def server(smoke_grid: Any, tmp_path: Path) -> Iterator[str]:
    """`mlflow server` over the smoke grid's store on a free loopback port; always terminated."""
    store = Path(smoke_grid.uri.removeprefix("sqlite:///")).parent
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            smoke_grid.uri,
            "--default-artifact-root",
            str(store / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the server's workers end with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {process.returncode}: "
                    f"{(tmp_path / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.5)
        yield base
    finally:
        stop_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_group(process, signal.SIGKILL)
            process.wait()
        log.close()


def stop_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(process.pid, sig)


def test_runs_read_back_through_the_rest_api(server: str, smoke_grid: Any) -> None:
    experiment = call(server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=cathdet")
    experiment_id = experiment["experiment"]["experiment_id"]
    found = call(
        server,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment_id], "max_results": 100},
    )
    runs = found["runs"]
    tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in runs]
    parents = [t for t in tags if t.get("bench.role") == "parent"]
    cells = [(run, t) for run, t in zip(runs, tags, strict=True) if t.get("bench.role") == "cell"]
    assert len(runs) == 11 and len(parents) == 1 and len(cells) == 10
    statuses = sorted(run["info"]["status"] for run, _ in cells)
    assert statuses == ["FAILED"] + ["FINISHED"] * 9
    methods = {(t["method"], t["lr"]) for _, t in cells}
    assert len(methods) == 10 and ("adaloss", "0.001") in methods

    run, tag = next((r, t) for r, t in cells if r["info"]["status"] == "FINISHED")
    assert tag["mlflow.parentRunId"] == runs[tags.index(parents[0])]["info"]["run_id"]
    run_id = run["info"]["run_id"]
    history = call(
        server, f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=val_distance"
    )
    assert sorted(m["step"] for m in history["metrics"]) == [1, 2]
    artifacts = call(server, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
    assert {"config.json", "figures", "per_landmark.csv"} <= {f["path"] for f in artifacts["files"]}
    filtered = call(
        server,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment_id], "filter": f"tags.cell_key = '{tag['cell_key']}'"},
    )
    assert [r["info"]["run_id"] for r in filtered["runs"]] == [run_id]


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=30000",  # lets the page's requests and rendering finish
)


def test_the_readme_url_opens_on_the_cell_runs(
    server: str, smoke_grid: Any, tmp_path: Path, chromium: str
) -> None:
    """The URL `bench run` prints (README) shows the grid's cell runs in headless Chromium; the
    experiment and parent run carry descriptions, and each finished cell its dataset input."""
    from bench.track.tracking import comparison_url

    experiment = call(server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=cathdet")
    experiment_id = experiment["experiment"]["experiment_id"]
    experiment_tags = {t["key"]: t["value"] for t in experiment["experiment"]["tags"]}
    assert "bench run --grid cathdet" in experiment_tags["mlflow.note.content"]
    runs = call(server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})["runs"]
    tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in runs]
    (parent,) = [t for t in tags if t.get("bench.role") == "parent"]
    assert parent["mlflow.note.content"].startswith("| cell | outcome |")
    cells = [run for run, t in zip(runs, tags, strict=True) if t.get("bench.role") == "cell"]
    finished = next(run for run in cells if run["info"]["status"] == "FINISHED")
    (dataset,) = finished["inputs"]["dataset_inputs"]
    assert dataset["dataset"]["name"] == "cathdet/synthetic-smoke"
    assert len(dataset["dataset"]["digest"]) == 16

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert comparison_url("http://127.0.0.1:5000", "1") in readme  # the URL the README shows
    url = comparison_url(server, experiment_id)
    profile = tmp_path / "chromium-profile"
    shot = tmp_path / "mlflow-ui.png"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", url],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    names = [run["info"]["run_name"] for run in cells]
    missing = [name for name in names if name not in dom.stdout]
    assert not missing, f"{len(missing)} of {len(names)} cell runs not on {url} (see {shot})"
    assert shot.exists()


def test_the_parent_run_shows_the_report_in_the_ui(
    server: str, smoke_grid: Any, tmp_path: Path, chromium: str
) -> None:
    """`bench report` through the server logs the report folder, report.html with it, to the
    grid's parent run; the run's artifact page in the UI lists it."""
    from click.testing import CliRunner

    from bench.cli import main

    reported = CliRunner().invoke(
        main,
        ["report", "--grid", "cathdet", "--profile", "smoke", "--tracking-uri", server,
         "--out", str(tmp_path / "report"), "--no-overlays"],
    )  # fmt: skip
    assert reported.exit_code == 0, reported.stderr
    experiment = call(server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=cathdet")
    experiment_id = experiment["experiment"]["experiment_id"]
    runs = call(server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})["runs"]
    (parent,) = [
        run
        for run in runs
        if {t["key"]: t["value"] for t in run["data"]["tags"]}.get("bench.role") == "parent"
    ]
    run_id = parent["info"]["run_id"]
    listed = call(server, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=report")
    assert "report/report.html" in {item["path"] for item in listed["files"]}

    url = f"{server}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/report/report.html"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=False,
    ).stdout  # fmt: skip
    assert "report.html" in dom, f"the run page at {url} does not list the report"
