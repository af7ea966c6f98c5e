"""The pre-registered selection rule on hand-ranked examples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.track.selection import keep_first, load_record, rank, save_record, score_table, select


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


def test_the_first_recorded_value_of_a_cell_is_kept_and_a_disagreement_reported() -> None:
    recorded = {"endovis": {0: {"literal": 0.5}}}
    found = {"endovis": {0: {"literal": 0.75, "combined": math.inf}, 1: {"literal": 0.25}}}
    told: list[str] = []
    kept = keep_first(recorded, found, told.append)
    assert kept == {"endovis": {0: {"literal": 0.5, "combined": math.inf}, 1: {"literal": 0.25}}}
    assert told == ["endovis seed 0 literal: recorded 0.5 kept, found 0.75"]
    assert recorded == {"endovis": {0: {"literal": 0.5}}}  # the inputs are not changed
    told.clear()
    assert keep_first(kept, found, told.append) == kept and len(told) == 1


def test_a_record_round_trips_with_diverged_cells_as_text(tmp_path: Path) -> None:
    values = {"cathdet": {2: {"literal": math.inf, "combined": 17.25}, 0: {"literal": 9.5}}}
    path = tmp_path / "results" / "readings_validation.json"
    assert load_record(path) == {}
    save_record(path, values)
    assert json.loads(path.read_text()) == {
        "cathdet": {"0": {"literal": 9.5}, "2": {"combined": 17.25, "literal": "diverged"}}
    }
    assert load_record(path) == values


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"endovis": {"zero": {}}}'])
def test_a_damaged_record_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "readings_validation.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"readings_validation\.json: not a record"):
        load_record(path)


def test_score_table_lists_every_ranking_and_candidate_with_none_where_missing() -> None:
    values = {"cathdet": {0: {"literal": 10.0, "reset": math.inf}}, "faces": {1: {"reset": 2.0}}}
    table = score_table(values, ("cathdet", "faces"), (0, 1), ("literal", "reset"))
    assert table == {
        ("cathdet", 0): {"literal": 10.0, "reset": math.inf},
        ("cathdet", 1): {"literal": None, "reset": None},
        ("faces", 0): {"literal": None, "reset": None},
        ("faces", 1): {"literal": None, "reset": 2.0},
    }
