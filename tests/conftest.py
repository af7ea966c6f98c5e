"""Fixtures shared by the whole suite.

- Every test's dataset cache is one temporary folder per session (ADALOSS_DATA_ROOT), so generated
  data is made once per session and nothing is written to ./datasets.
- MLflow stores: creating a SQLite store runs its migrations (seconds), so one migrated template
  database is made per session and each test gets a copy (`tracking_uri`).
- `smoke_grid`: the shipped cathdet grid at the smoke profile, run once per session through the
  CLI with one cell made to fail, for the tests that read a real grid's store. Those tests are
  in xdist group "smoke_grid", so that under `pytest -n` the grid still trains only once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAILING_METHOD, FAILING_LR = "sigma40", 1e-4  # the smoke grid's cell that is made to fail
INJECTED_ERROR = "injected failure at epoch 2 (test of failure isolation)"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker too; registering it here keeps --strict-markers happy
    # when the tests run without xdist.
    config.addinivalue_line(
        "markers", "xdist_group(name): run on the same xdist worker as the group's other tests"
    )


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("datasets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADALOSS_DATA_ROOT", str(root))
        yield root


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite database."""
    from bench.track.tracking import open_store

    database = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    open_store(f"sqlite:///{database}")
    return database


def copy_store(template: Path, folder: Path) -> str:
    """A tracking URI on a copy of `template` in `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def tracking_uri(mlflow_template: Path, tmp_path: Path) -> str:
    """A fresh, already migrated store for one test."""
    return copy_store(mlflow_template, tmp_path / "mlruns")


@dataclass(frozen=True)
class GridRun:
    """What one `bench run` invocation left: its store, exit code and output, and which cell
    was made to fail with which message."""

    uri: str
    exit_code: int
    stdout: str
    stderr: str
    failing: tuple[str, float] = (FAILING_METHOD, FAILING_LR)
    error: str = INJECTED_ERROR


def failing_train_cell(real_train: Any) -> Any:
    """`train_cell` that raises in epoch 2 of the FAILING cell (after its epoch-2 checkpoint) and
    trains every other cell normally."""

    def train(cell: Any, **kwargs: Any) -> Any:
        if (cell.method, cell.lr) != (FAILING_METHOD, FAILING_LR):
            return real_train(cell, **kwargs)
        on_epoch = kwargs["on_epoch"]

        def failing_on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            on_epoch(epoch, metrics)
            if epoch == 2:
                raise RuntimeError(INJECTED_ERROR)

        return real_train(cell, **{**kwargs, "on_epoch": failing_on_epoch})

    return train


@pytest.fixture(scope="session")
def bench_run() -> Any:
    """`bench run ARGS` in this process: a function returning (exit code, stdout, stderr)."""
    return invoke_run


def invoke_run(args: list[str]) -> tuple[int, str, str]:
    """`bench run ARGS` in this process; (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from bench.cli import main

    result = CliRunner().invoke(main, ["run", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def smoke_grid(mlflow_template: Path, tmp_path_factory: pytest.TempPathFactory) -> GridRun:
    """`bench run --grid cathdet --profile smoke` once, with the FAILING cell raising."""
    import bench.run.trainer

    uri = copy_store(mlflow_template, tmp_path_factory.mktemp("smoke-grid") / "mlruns")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            bench.run.trainer, "train_cell", failing_train_cell(bench.run.trainer.train_cell)
        )
        # --jobs 1: the patched trainer exists only in this process
        args = ["--grid", "cathdet", "--profile", "smoke", "--device", "cpu", "--jobs", "1"]
        code, out, err = invoke_run([*args, "--tracking-uri", uri])
    return GridRun(uri, code, out, err)
