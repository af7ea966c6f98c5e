"""One cell of a grid: everything that decides what a training run does, and its key.

A cell is plain data. The trainer reads it top to bottom; the grid builds it from YAML; MLflow
stores it as params and tags; `cell_key` identifies it for resume and for the work queue.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bench.run.schedule import ScheduleConfig


@dataclass(frozen=True)
class CellConfig:
    """A single training run.

    grid: the grid's name (MLflow experiment). task: a name known to `bench.tasks`.
    method: the grid's label for the schedule ("sigma5", "adaloss", ...).
    profile: "smoke" | "quick" | "paper": dataset sizes, model width, default epochs.
    data_source: "synthetic" or a path to real data in the task's format.
    extra: free-form task/model overrides from the grid file (kept in the key).
    task_options: the grid keys of a task shaped by its data (`keypoints`: image_size, metric);
        empty for the shipped tasks, and then left out of the dict and the key, so the keys of
        cells recorded before it existed still match.
    validation_size: the synthetic validation split's images (docs/data.md, "Validation noise");
        None: the profile's, and then left out of the dict and the key like task_options.
    """

    grid: str
    task: str
    method: str
    schedule: ScheduleConfig
    lr: float
    seed: int
    profile: str
    epochs: int
    batch_size: int
    data_source: str = "synthetic"
    extra: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    validation_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Nested plain-JSON view (for config.json and the key)."""
        data = asdict(self)
        data["schedule"] = self.schedule.to_dict()
        if not self.task_options:
            del data["task_options"]
        if self.validation_size is None:
            del data["validation_size"]
        return data

    @property
    def data_identity(self) -> tuple[Any, ...]:
        """What decides the dataset a cell trains on: cells that share it share one dataset."""
        return (self.task, self.profile, self.data_source, self.image_size, self.validation_size)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) the task's data are resized to when the grid says; None: the profile's."""
        size = self.task_options.get("image_size")
        return None if size is None else (int(size[0]), int(size[1]))

    def to_params(self) -> dict[str, str]:
        """Flat `schedule.rho`-style strings for MLflow params."""
        flat: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    walk(f"{prefix}{key}.", item)
            else:
                flat[prefix[:-1]] = json.dumps(value) if not isinstance(value, str) else value

        walk("", self.to_dict())
        return flat

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellConfig:
        values = dict(data)
        values["schedule"] = ScheduleConfig(**values["schedule"])
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown cell fields: {', '.join(sorted(unknown))}")
        return cls(**values)


def cell_key(cell: CellConfig) -> str:
    """A 16-hex-digit hash of the cell's full config (sorted-key JSON), stable across runs."""
    payload = json.dumps(cell.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
