"""bench.track.confirmation: the pre-registered confirmation on hand-made seeds, checked against
the closed form of Student's t with 2 degrees of freedom, P(|T| > t) = 1 - t / sqrt(2 + t^2),
and Holm's step-down correction worked by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.track.confirmation import (
    TaskRuns,
    confirmation_markdown,
    confirmation_table,
    default_changes,
)


def p_two_dof(t: float) -> float:
    return 1 - abs(t) / math.sqrt(2 + t * t)


def runs(methods: dict[str, tuple[str, list[float]]], metric: str, higher: bool) -> TaskRuns:
    rows = [
        {"method": m, "schedule": kind, "lr": 1e-3, "seed": seed, "outcome": "finished", metric: v}
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


def f1_task(literal: list[float], combined: list[float]) -> TaskRuns:
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


def test_selecting_the_literal_reading_leaves_one_family_and_the_default() -> None:
    table = confirmation_table({"cathdet": distance_task()}, "literal")
    assert list(table.family) == ["fixed"]
    # literal - sigma25: 4, 3, 2 -> mean 3, std 1, t = 3 sqrt(3)
    assert table.t.iloc[0] == pytest.approx(3 * math.sqrt(3))
    assert table.p_holm.iloc[0] == pytest.approx(p_two_dof(3 * math.sqrt(3)))
    assert not default_changes(table)
