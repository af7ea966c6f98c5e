"""bench.track.confirmation: the pre-registered confirmation on hand-made seeds, checked against
the closed form of Student's t with 2 degrees of freedom, P(|T| > t) = 1 - t / sqrt(2 + t^2),
and Holm's step-down correction worked by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from bench.track.confirmation import (
    TaskRuns,
    candidates_markdown,
    confirmation_cells,
    confirmation_markdown,
    confirmation_table,
    default_changes,
    usable_run,
)
from bench.track.orphans import SUPERSEDED_TAG


def p_two_dof(t: float) -> float:
    return 1 - abs(t) / math.sqrt(2 + t * t)


def runs(methods: dict[str, tuple[str, list[float | None]]], metric: str, higher: bool) -> TaskRuns:
    """Records of one lr; a None value is a cell that diverged (no test metric)."""
    rows = [
        {
            "method": m,
            "schedule": kind,
            "lr": 1e-3,
            "seed": seed,
            "outcome": "finished" if v is not None else "diverged",
            metric: math.nan if v is None else v,
        }
        for m, (kind, values) in methods.items()
        for seed, v in enumerate(values)
    ]
    return TaskRuns(pd.DataFrame(rows), metric, higher)


def distance_task() -> TaskRuns:
    # lower is better; sigma25 has the best mean (6 against 12)
    return runs(
        {
            "sigma5": ("fixed", [10.0, 12.0, 14.0]),
            "sigma25": ("fixed", [5.0, 6.0, 7.0]),
            "literal": ("adaloss", [9.0, 9.0, 9.0]),
            "combined": ("adaloss", [4.0, 5.0, 5.0]),
        },
        "test_distance",
        higher=False,
    )


def f1_task(literal: list[float | None], combined: list[float | None]) -> TaskRuns:
    # higher is better; sigma20 has the best mean (72 against 60)
    return runs(
        {
            "sigma10": ("fixed", [50.0, 60.0, 70.0]),
            "sigma20": ("fixed", [70.0, 72.0, 74.0]),
            "literal": ("adaloss", literal),
            "combined": ("adaloss", combined),
        },
        "test_f1",
        higher=True,
    )


def test_both_families_with_holm_across_tasks() -> None:
    tasks = {
        "cathdet": distance_task(),
        "endovis": f1_task(literal=[60.0, 61.0, 62.0], combined=[71.0, 72.0, 76.0]),
    }
    table = confirmation_table(tasks, "combined")
    rows = {(r["family"], r["task"]): r for r in table.to_dict(orient="records")}
    assert list(rows) == [
        ("fixed", "cathdet"),
        ("fixed", "endovis"),
        ("literal", "cathdet"),
        ("literal", "endovis"),
    ]
    # fixed family: cathdet differences -1, -1, -2 (t = -4); endovis 1, 0, 2 (t = sqrt(3))
    p_cathdet, p_endovis = p_two_dof(-4.0), p_two_dof(math.sqrt(3))
    assert rows["fixed", "cathdet"]["reference"] == "sigma25"
    assert rows["fixed", "endovis"]["reference"] == "sigma20"
    assert rows["fixed", "cathdet"]["p"] == pytest.approx(p_cathdet)
    assert rows["fixed", "endovis"]["p"] == pytest.approx(p_endovis)
    # Holm: the smaller p (cathdet, 0.057) times 2; the larger (0.225) times 1, kept monotone
    assert rows["fixed", "cathdet"]["p_holm"] == pytest.approx(2 * p_cathdet)
    assert rows["fixed", "endovis"]["p_holm"] == pytest.approx(p_endovis)
    assert {rows["fixed", t]["verdict"] for t in tasks} == {"no significant difference"}
    # literal family: cathdet differences -5, -4, -4 (t = -13); endovis 11, 11, 14 (t = 12)
    p_cathdet, p_endovis = p_two_dof(-13.0), p_two_dof(12.0)
    assert rows["literal", "cathdet"]["t"] == pytest.approx(-13.0)
    assert rows["literal", "endovis"]["t"] == pytest.approx(12.0)
    # cathdet's p is the smaller: 2 * p_cathdet; endovis's 1 * p_endovis is smaller than that,
    # so the step-down keeps it at 2 * p_cathdet
    assert rows["literal", "cathdet"]["p_holm"] == pytest.approx(2 * p_cathdet)
    assert rows["literal", "endovis"]["p_holm"] == pytest.approx(2 * p_cathdet)
    # lower distance and higher F1 are both improvements
    assert rows["literal", "cathdet"]["verdict"] == "better"
    assert rows["literal", "endovis"]["verdict"] == "better"
    assert default_changes(table)
    text = "\n".join(confirmation_markdown(table, "combined"))
    assert "### `combined` against the paper-literal reading" in text
    assert text.endswith("Decision: the library's default Adaloss takes the `combined` reading.")


def test_holm_can_remove_a_raw_significance() -> None:
    # literal family. cathdet: differences 1, -1, 1.5, t = 0.5 / (sqrt(1.75) / sqrt(3)) = 0.65,
    # p = 0.58; endovis: differences 1.5, 1.5, 2.5, t = (5.5 / 3) / (1 / 3) = 5.5,
    # p = 1 - 5.5 / sqrt(32.25) = 0.0315 < 0.05 alone, 0.063 after Holm's factor 2
    cathdet = runs(
        {
            "sigma25": ("fixed", [5.0, 6.0, 7.0]),
            "literal": ("adaloss", [5.0, 7.0, 5.5]),
            "combined": ("adaloss", [6.0, 6.0, 7.0]),
        },
        "test_distance",
        higher=False,
    )
    endovis = f1_task(literal=[60.0, 61.0, 62.0], combined=[61.5, 62.5, 64.5])
    table = confirmation_table({"cathdet": cathdet, "endovis": endovis}, "combined")
    literal = table[table.family == "literal"].set_index("task")
    t_cathdet = 0.5 / (math.sqrt(1.75) / math.sqrt(3))
    assert literal.loc["cathdet", "t"] == pytest.approx(t_cathdet)
    assert literal.loc["endovis", "t"] == pytest.approx(5.5)
    p_endovis = p_two_dof(5.5)
    assert literal.loc["endovis", "p"] == pytest.approx(p_endovis)
    assert p_endovis < 0.05 < 2 * p_endovis
    assert literal.loc["endovis", "p_holm"] == pytest.approx(2 * p_endovis)
    assert literal.loc["endovis", "verdict"] == "no significant difference"
    assert literal.loc["cathdet", "p_holm"] == pytest.approx(p_two_dof(t_cathdet))
    assert literal.loc["cathdet", "verdict"] == "no significant difference"
    assert not default_changes(table)


def test_a_significant_loss_to_literal_keeps_the_default() -> None:
    tasks = {
        "cathdet": distance_task(),
        # the same numbers with literal and combined swapped: combined is worse by 11, 11, 14
        "endovis": f1_task(literal=[71.0, 72.0, 76.0], combined=[60.0, 61.0, 62.0]),
    }
    table = confirmation_table(tasks, "combined")
    literal = table[table.family == "literal"].set_index("task")
    assert literal.loc["cathdet", "verdict"] == "better"
    assert literal.loc["endovis", "verdict"] == "worse"
    assert not default_changes(table)
    text = "\n".join(confirmation_markdown(table, "combined"))
    assert text.endswith("Decision: the library's default Adaloss keeps the paper-literal rule.")


def test_every_candidate_in_one_table_per_family_without_a_decision() -> None:
    tasks = {
        "cathdet": distance_task(),
        "endovis": f1_task(literal=[60.0, 61.0, 62.0], combined=[71.0, 72.0, 76.0]),
    }
    tables = {reading: confirmation_table(tasks, reading) for reading in ("literal", "combined")}
    lines = candidates_markdown(tables)
    fixed_end = lines.index("### Every reading against the paper-literal reading")
    fixed, literal = lines[:fixed_end], lines[fixed_end:]
    assert fixed[0] == "### Every reading against the best fixed sigma"
    # literal - sigma25 on cathdet: 4, 3, 2 -> mean 3, std 1, t = 3 sqrt(3) = 5.196
    assert "| `literal` | cathdet | `test_distance` | sigma25 | 9 | 6 | 3 ± 1 | 3 | 0 | 5.2 |" in (
        "\n".join(fixed)
    )
    # combined - sigma25: -1, -1, -2 -> mean -4/3, std 1/sqrt(3) = 0.5774, t = -4
    assert (
        "| `combined` | cathdet | `test_distance` | sigma25 | 4.667 | 6 | -1.333 ± 0.5774 | 3 |"
        in ("\n".join(fixed))
    )
    assert sum(line.startswith("| `") for line in fixed) == 4  # two readings x two tasks
    # the literal reading has no row against itself
    assert [line.split(" | ")[0] for line in literal if line.startswith("| `")] == [
        "| `combined`"
    ] * 2
    assert not any("Decision" in line for line in lines)


def test_selecting_the_literal_reading_leaves_one_family_and_the_default() -> None:
    table = confirmation_table({"cathdet": distance_task()}, "literal")
    assert list(table.family) == ["fixed"]
    # literal - sigma25: 4, 3, 2 -> mean 3, std 1, t = 3 sqrt(3)
    assert table.t.iloc[0] == pytest.approx(3 * math.sqrt(3))
    assert table.p_holm.iloc[0] == pytest.approx(p_two_dof(3 * math.sqrt(3)))
    assert not default_changes(table)


def test_only_the_literal_family_decides_the_default() -> None:
    # combined beats literal on both tasks (as in the first test) but loses to the best fixed
    # sigma on cathdet, now sigma25 at 1, 2, 2
    cathdet = runs(
        {
            "sigma25": ("fixed", [1.0, 2.0, 2.0]),
            "literal": ("adaloss", [9.0, 9.0, 9.0]),
            "combined": ("adaloss", [4.0, 5.0, 5.0]),
        },
        "test_distance",
        higher=False,
    )
    endovis = f1_task(literal=[60.0, 61.0, 62.0], combined=[71.0, 72.0, 76.0])
    table = confirmation_table({"cathdet": cathdet, "endovis": endovis}, "combined")
    fixed = table[table.family == "fixed"].set_index("task")
    # combined - sigma25: 3, 3, 3: zero spread, an infinite t and p = 0 (worse on a distance)
    assert fixed.loc["cathdet", "p"] == 0.0
    assert fixed.loc["cathdet", "verdict"] == "worse"
    assert set(table[table.family == "literal"].verdict) == {"better"}
    assert default_changes(table)


def test_a_seed_where_only_the_selected_reading_diverged_makes_it_worse() -> None:
    tasks = {
        "cathdet": distance_task(),
        # combined diverged at seed 1, where literal finished; the other pairs favour combined
        "endovis": f1_task(literal=[60.0, 61.0, 62.0], combined=[71.0, None, 76.0]),
    }
    table = confirmation_table(tasks, "combined")
    literal = table[table.family == "literal"].set_index("task")
    assert literal.loc["endovis", "pairs"] == 2
    assert literal.loc["endovis", "diverged"] == 1
    assert literal.loc["endovis", "difference_mean"] == pytest.approx(12.5)  # 11 and 14
    assert literal.loc["endovis", "verdict"] == "worse"
    assert literal.loc["cathdet", "diverged"] == 0
    assert not default_changes(table)


def test_a_task_without_a_test_still_counts_in_holm() -> None:
    # combined diverged at every endovis seed: no pair, no p, but the family still has two tasks
    tasks = {
        "cathdet": distance_task(),
        "endovis": f1_task(literal=[60.0, 61.0, 62.0], combined=[None, None, None]),
    }
    table = confirmation_table(tasks, "combined")
    literal = table[table.family == "literal"].set_index("task")
    assert literal.loc["endovis", "pairs"] == 0
    assert math.isnan(literal.loc["endovis", "p"])
    assert literal.loc["endovis", "p_holm"] == 1.0
    # cathdet: t = -13 (first test); Holm over m = 2 doubles its p
    assert literal.loc["cathdet", "p_holm"] == pytest.approx(2 * p_two_dof(-13.0))
    assert literal.loc["endovis", "verdict"] == "worse"  # 3 seeds diverged, literal finished


def run(start: int, status: str = "FINISHED", **tags: str) -> SimpleNamespace:
    return SimpleNamespace(
        info=SimpleNamespace(status=status, start_time=start),
        data=SimpleNamespace(tags=tags, metrics={"test_distance": float(start)}),
    )


def test_usable_run_is_the_newest_finished_one_not_superseded() -> None:
    old, new = run(1), run(3)
    assert usable_run([old, new], "test_distance") is new  # whatever the list order
    assert usable_run([new, old], "test_distance") is new
    assert usable_run([old, run(5, status="KILLED")], "test_distance") is old
    assert usable_run([old, run(4, **{SUPERSEDED_TAG: "x"})], "test_distance") is old
    assert usable_run([run(2, status="FAILED")], "test_distance") is None
    assert usable_run([], "test_distance") is None
    # finished without the metric: unusable, unless it diverged (which has no test metric)
    assert usable_run([run(1)], "test_nme/full") is None
    diverged = run(1, outcome="diverged")
    assert usable_run([diverged], "test_nme/full") is diverged


def test_confirmation_cells_of_the_shipped_grids() -> None:
    cells = confirmation_cells("cathdet", "combined")
    # 4 fixed sigmas of the cathdet grid and 2 readings, 5 seeds, lr 1e-3 only (not 1e-4)
    assert len(cells) == 30
    assert {(c.grid, c.method) for c in cells} == {
        ("cathdet", "sigma5"),
        ("cathdet", "sigma25"),
        ("cathdet", "sigma40"),
        ("cathdet", "sigma60"),
        ("readings_cathdet", "literal"),
        ("readings_cathdet", "combined"),
    }
    assert {c.lr for c in cells} == {1e-3}
    assert {c.seed for c in cells} == {0, 1, 2, 3, 4}
    assert {c.profile for c in cells} == {"quick"}
    # the literal reading selected: one readings method; faces train at lr 1e-4
    faces = confirmation_cells("face300w", "literal")
    assert len(faces) == 20
    assert {c.lr for c in faces} == {1e-4}
