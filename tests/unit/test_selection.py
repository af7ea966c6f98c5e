"""The pre-registered selection rule on hand-ranked examples."""

from __future__ import annotations

import math

import pytest

from bench.track.selection import rank, select


def test_rank_with_ties_and_a_diverged_cell() -> None:
    # values 3, 1, 3, NaN: 1 -> place 1; the two 3s share places 2 and 3 -> 2.5; NaN last (4)
    assert rank({"a": 3.0, "b": 1.0, "c": 3.0, "d": math.nan}) == {
        "a": 2.5,
        "b": 1.0,
        "c": 2.5,
        "d": 4.0,
    }
    assert rank({"a": None, "b": None}) == {"a": 1.5, "b": 1.5}  # both missing: a shared tie


def test_lowest_mean_rank_wins_and_ties_go_to_the_first_listed() -> None:
    scores = {
        ("cathdet", 0): {"literal": 10.0, "relative": 8.0, "reset": 9.0},  # ranks 3, 1, 2
        ("cathdet", 1): {"literal": 7.0, "relative": 9.0, "reset": 8.0},  # ranks 1, 3, 2
        ("faces", 0): {"literal": 5.0, "relative": 4.0, "reset": 6.0},  # ranks 2, 1, 3
    }
    chosen = select(scores, ["literal", "relative", "reset"])
    # means: literal (3 + 1 + 2) / 3 = 2, relative (1 + 3 + 1) / 3 = 5/3, reset (2 + 2 + 3) / 3
    assert chosen.mean_rank == pytest.approx({"literal": 2.0, "relative": 5 / 3, "reset": 7 / 3})
    assert chosen.selected == "relative"
    tied = select({("t", 0): {"b": 1.0, "a": 1.0}}, ["a", "b"])
    assert tied.mean_rank == {"a": 1.5, "b": 1.5} and tied.selected == "a"


def test_a_ranking_without_every_candidate_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ranking \('t', 0\) lacks \['b'\]"):
        select({("t", 0): {"a": 1.0}}, ["a", "b"])
