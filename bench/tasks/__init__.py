"""The benchmark's tasks: `get_task(name)` returns a `bench.tasks.base.Task`.

Task modules import torch, so they are imported on first use: listing `TASK_NAMES` (grid
validation, `bench --help`) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.tasks.base import Task

# name -> "module:class"
_TASKS = {
    "cathdet": "bench.tasks.cathdet:CathDet",
    "face300w": "bench.tasks.face300w:Face300W",
    "endovis": "bench.tasks.endovis:EndoVis",
}
TASK_NAMES = tuple(_TASKS)


def get_task(name: str) -> Task:
    """The task called `name`; raises ValueError listing the known tasks otherwise."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}")
    module_name, class_name = _TASKS[name].split(":")
    task: Task = getattr(importlib.import_module(module_name), class_name)()
    return task
