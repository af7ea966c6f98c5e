"""bench.track.budget: the headline metric against the training budget, on hand-built records."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bench.track.budget import budget_markdown, budget_table, metric_per_budget
from bench.track.figures import save


def records() -> pd.DataFrame:
    rows = [
        # method, lr, epochs, seed, outcome, metric
        ("sigma25", 1e-3, 20, 0, "finished", 10.0),
        ("sigma25", 1e-3, 20, 1, "finished", 14.0),
        ("sigma25", 1e-3, 100, 0, "finished", 8.0),
        ("sigma25", 1e-3, 100, 1, "finished", 9.0),
        ("adaloss", 1e-3, 20, 0, "finished", 20.0),
        ("adaloss", 1e-3, 20, 1, "diverged", math.nan),
        ("adaloss", 1e-3, 100, 0, "finished", 7.0),
        ("adaloss", 1e-3, 100, 1, "finished", 8.0),
    ]
    return pd.DataFrame(rows, columns=["method", "lr", "epochs", "seed", "outcome", "test"])


def test_each_method_and_budget_gets_the_finished_seeds_mean_and_spread() -> None:
    table = budget_table(records(), "test")
    assert list(zip(table.method, table.epochs, strict=True)) == [
        ("sigma25", 20),
        ("sigma25", 100),
        ("adaloss", 20),
        ("adaloss", 100),
    ]
    first = table.iloc[0]
    assert (first.seeds, first["mean"], first["min"], first["max"]) == (2, 12.0, 10.0, 14.0)
    assert first["std"] == pytest.approx(math.sqrt(8.0))  # (10 - 12)^2 + (14 - 12)^2 over 1
    diverged = table.iloc[2]  # one finished seed: no spread
    assert (diverged.seeds, diverged["mean"]) == (1, 20.0)
    assert math.isnan(diverged["std"])


def test_the_markdown_marks_each_budgets_best_and_says_the_direction() -> None:
    lines = budget_markdown(budget_table(records(), "test"), "test", higher_is_better=False)
    assert "lower is better" in lines[0]
    assert lines[2] == "| method | lr | 20 epochs | 100 epochs |"
    assert lines[4] == "| sigma25 | 0.001 | **12.00 +- 2.83** (2) | 8.50 +- 0.71 (2) |"
    assert lines[5] == "| adaloss | 0.001 | 20.00 (1) | **7.50 +- 0.71** (2) |"


def test_the_figure_draws_one_line_per_method(tmp_path: Path) -> None:
    figure = metric_per_budget(budget_table(records(), "test"), "test", title="t")
    (axis,) = figure.axes
    assert [line.get_label() for line in axis.get_lines()] == ["sigma25", "adaloss"]
    assert list(axis.get_lines()[1].get_ydata()) == [20.0, 7.5]
    assert save(figure, tmp_path / "f.png").stat().st_size > 0
