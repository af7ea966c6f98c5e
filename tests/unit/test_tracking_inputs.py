"""A cell's dataset input survives the race of two workers creating the same dataset row."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import IntegrityError

from bench.track.tracking import LAYOUT_TAG, GridTracker

DATA = {
    "name": "cathdet/synthetic-quick",
    "digest": "0123456789abcdef0123",
    "source": "/data/cathdet/synthetic-quick",
    "splits": '{"train": 2, "val": 1, "test": 1}',
    "layout": '{"landmark_names": ["tip"]}',
}


class RacingClient:
    """log_inputs fails `failures` times as MLflow's SQL store does when another process created
    the dataset row first (an MlflowException raised while handling the IntegrityError)."""

    def __init__(self, failures: int, cause: Exception) -> None:
        self.failures, self.cause = failures, cause
        self.logged: list[Any] = []
        self.tags: dict[str, str] = {}

    def log_inputs(self, run_id: str, datasets: list[Any]) -> None:
        if self.failures:
            self.failures -= 1
            try:
                raise self.cause
            except Exception as error:
                raise MlflowException(error)  # noqa: B904 - as MLflow does: chained implicitly
        self.logged.append((run_id, datasets))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.tags[key] = value


def integrity_error() -> IntegrityError:
    return IntegrityError("INSERT INTO datasets", {}, Exception("duplicate key"))


def test_a_lost_race_for_the_dataset_row_is_retried_once() -> None:
    client = RacingClient(failures=1, cause=integrity_error())
    GridTracker.log_dataset(SimpleNamespace(client=client), "run1", DATA)  # type: ignore[arg-type]
    assert len(client.logged) == 1 and client.tags[LAYOUT_TAG] == DATA["layout"]


def test_other_store_errors_are_not_swallowed() -> None:
    client = RacingClient(failures=1, cause=ValueError("disk full"))
    with pytest.raises(MlflowException, match="disk full"):
        GridTracker.log_dataset(SimpleNamespace(client=client), "run1", DATA)  # type: ignore[arg-type]
    twice = RacingClient(failures=2, cause=integrity_error())
    with pytest.raises(MlflowException):
        GridTracker.log_dataset(SimpleNamespace(client=twice), "run1", DATA)  # type: ignore[arg-type]
