"""bench.run.schedule: the grid's view of the schedules agrees with the library's."""

from __future__ import annotations

import inspect

from adaloss.schedules import LOSS_SCALES, VARIANCE_READINGS, Adaloss
from bench.run.schedule import CHOICE_KEYS, KEYS_BY_KIND, PAPER_RULE, ScheduleConfig


def test_choice_keys_mirror_the_library() -> None:
    assert CHOICE_KEYS["variance_of"] == VARIANCE_READINGS
    assert CHOICE_KEYS["loss_scale"] == LOSS_SCALES


def test_every_adaloss_option_has_a_grid_key() -> None:
    options = set(inspect.signature(Adaloss).parameters) - {"num_landmarks", "keep_history"}
    assert options <= set(KEYS_BY_KIND["adaloss"])


def test_the_paper_rule_is_the_library_default_and_the_config_default() -> None:
    library = Adaloss.paper(1, 4.0)
    for key, value in PAPER_RULE.items():
        assert getattr(ScheduleConfig(kind="adaloss"), key) == value
        if key != "unit":  # unit is the harness's: how often the trainer steps
            assert getattr(library, key) == value, key
