"""The plain progress lines `bench run` writes when stderr is no terminal."""

from __future__ import annotations

import io
import re

from bench.run.cell import CellConfig
from bench.run.progress import Progress, duration_text, time_left
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


def test_time_left_is_the_epochs_to_train_at_their_measured_pace_over_the_jobs() -> None:
    # cathdet 10 s an epoch, faces 30; EndoVis not measured yet takes their mean, 20
    measured = {("cathdet", "quick"): 10.0, ("face300w", "quick"): 30.0}
    left = [(("cathdet", "quick"), 5), (("face300w", "quick"), 2), (("endovis", "quick"), 4)]
    assert time_left(measured, left, jobs=2) == (5 * 10 + 2 * 30 + 4 * 20) / 2
    assert time_left({}, left, jobs=2) is None


def test_durations_read_as_a_person_says_them() -> None:
    assert [duration_text(s) for s in (45, 720, 7500)] == ["45 s", "12 min", "2 h 05 min"]


def test_each_finished_cell_says_the_time_left() -> None:
    stream = io.StringIO()
    progress = Progress(3, stream=stream, interactive=False)
    cells = [fixed_cell(seed) for seed in range(3)]  # 2 epochs each
    progress.plan(cells, jobs=2)
    progress.cell_started(0, cells[0], "cpu")
    progress.cell_started(1, cells[1], "cpu")
    progress.epoch(0, cells[0], 1, {"epoch_time_s": 4.0}, "val_distance")
    progress.epoch(1, cells[1], 1, {"epoch_time_s": 6.0}, "val_distance")
    progress.epoch(1, cells[1], 2, {"epoch_time_s": 5.0}, "val_distance")
    progress.cell_ended(1, cells[1], "finished", 11.0)
    # 5 s an epoch (the mean of 4, 6, 5): cell 0 has 1 epoch left, cell 2 all 2: 15 s over 2
    assert "[1/3] finished cathdet sigma40 lr=0.001 seed=1 in 11.0 s; about 8 s left" in (
        stream.getvalue()
    )
    progress.cell_started(1, cells[2], "cpu")
    progress.cell_ended(0, cells[0], "finished", 9.0)
    progress.cell_ended(1, cells[2], "finished", 10.0)
    last = stream.getvalue().strip().splitlines()[-1]
    assert last.endswith("in 10.0 s")  # the last cell says no time left
