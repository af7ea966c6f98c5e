"""tools/budget_verdict.py: the pre-registered families of issue #32 on hand-built rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "budget_verdict", ROOT / "tools" / "budget_verdict.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["budget_verdict"] = module
    spec.loader.exec_module(module)
    return module


def rows() -> pd.DataFrame:
    # four comparisons of a lower-is-better metric; difference = method - reference
    return pd.DataFrame(
        {
            "grid": ["a", "a", "b", "b"],
            "epochs": [100, 100, 150, 150],
            "method": ["step_limited", "literal", "step_limited", "literal"],
            "pairs": [5, 5, 5, 4],
            "p": [0.01, 0.04, 0.03, 0.5],
            "difference_mean": [2.0, -1.0, -3.0, 0.5],
            "higher": [False, False, False, False],
        }
    )


def test_holm_over_the_family_decides_the_verdict(tool: ModuleType) -> None:
    table = tool.family_table(rows(), adjust=True)
    # sorted p 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, made non-decreasing: 0.04, 0.09, 0.09, 0.5
    assert list(table.p_holm) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert list(table.verdict) == [
        "worse",  # 0.04 < 0.05 and the method's distance is larger
        "no significant difference",  # raw p 0.04 would have said better
        "no significant difference",
        "no significant difference",
    ]


def test_described_rows_read_the_raw_p(tool: ModuleType) -> None:
    table = tool.family_table(rows(), adjust=False)
    assert list(table.p_holm) == [0.01, 0.04, 0.03, 0.5]
    assert list(table.verdict)[:3] == ["worse", "better", "better"]


def test_a_family_with_fewer_than_five_pairs_is_not_complete(tool: ModuleType) -> None:
    comparisons = (
        tool.Comparison("a", 100, ("step_limited", "literal")),
        tool.Comparison("b", 150, ("step_limited", "literal", "combined")),
    )
    assert tool.missing(rows(), comparisons) == [
        "b 150 epochs literal: 4 pairs",
        "b 150 epochs combined: 0 pairs",
    ]
