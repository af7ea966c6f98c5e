"""The plain progress lines `bench run` writes when stderr is no terminal."""

from __future__ import annotations

import io
import re

from bench.run.cell import CellConfig
from bench.run.progress import Progress
from bench.run.schedule import ScheduleConfig


def fixed_cell(seed: int) -> CellConfig:
    return CellConfig(
        grid="test",
        task="cathdet",
        method="sigma40",
        schedule=ScheduleConfig(kind="fixed", sigma=40.0, sigma_ref=None),
        lr=1e-3,
        seed=seed,
        profile="smoke",
        epochs=2,
        batch_size=8,
    )


def counters(text: str, word: str) -> list[str]:
    return re.findall(rf"\[(\d+/\d+)\] {word} ", text)


def test_cells_side_by_side_get_distinct_start_numbers() -> None:
    stream = io.StringIO()
    progress = Progress(3, stream=stream, interactive=False)
    progress.cell_started(0, fixed_cell(0), "cpu")
    progress.cell_started(1, fixed_cell(1), "cpu")
    progress.cell_ended(1, fixed_cell(1), "finished", 10.0)
    progress.cell_started(1, fixed_cell(2), "cpu")
    progress.cell_ended(0, fixed_cell(0), "finished", 12.0)
    progress.cell_ended(1, fixed_cell(2), "failed", 3.0)

    text = stream.getvalue()
    assert counters(text, "start") == ["1/3", "2/3", "3/3"]
    assert counters(text, "(?:finished|failed)") == ["1/3", "2/3", "3/3"]
    assert "[1/3] finished cathdet sigma40 lr=0.001 seed=1 in 10.0 s" in text
