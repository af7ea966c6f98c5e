"""bench.track.comparison: the paired test of adaptive schedules against the best fixed sigma,
checked against the closed form of Student's t with 2 degrees of freedom,
P(|T| > t) = 1 - t / sqrt(2 + t^2)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.track.comparison import holm, paired_comparison


def records(rows: list[tuple[str, str, float, int, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["method", "schedule", "lr", "seed", "test_distance", "outcome"]
    )


def three_seeds(method: str, schedule: str, values: list[float], lr: float = 1e-3) -> list:
    return [(method, schedule, lr, seed, v, "finished") for seed, v in enumerate(values)]


def test_pairs_adaloss_with_the_best_fixed_sigma_by_seed() -> None:
    table = records(
        three_seeds("sigma5", "fixed", [10.0, 12.0, 14.0])
        + three_seeds("sigma25", "fixed", [5.0, 6.0, 7.0])
        + three_seeds("adaloss", "adaloss", [4.0, 5.0, 5.0])
    )
    (row,) = paired_comparison(table, "test_distance", higher_is_better=False).to_dict("records")
    # differences -1, -1, -2: mean -4/3, sample std 1/sqrt(3), so t = -4 with 2 dof
    assert row["reference"] == "sigma25"
    assert row["pairs"] == 3
    assert row["difference_mean"] == pytest.approx(-4 / 3)
    assert row["difference_std"] == pytest.approx(1 / math.sqrt(3))
    assert row["t"] == pytest.approx(-4.0)
    assert row["p"] == pytest.approx(1 - 4 / math.sqrt(18))  # 0.0572
    assert row["verdict"] == "no significant difference"


def test_direction_and_unpaired_seeds() -> None:
    # F1-like metric: higher is better; adaloss seed 2 diverged and sigma10 seed 0 failed
    table = records(
        three_seeds("sigma10", "fixed", [50.0, 60.0, 70.0])
        + three_seeds("sigma20", "fixed", [40.0, 41.0, 42.0])
        + three_seeds("adaloss", "adaloss", [54.0, 66.0, 99.0])
    )
    table.loc[(table.method == "adaloss") & (table.seed == 2), "outcome"] = "diverged"
    table.loc[(table.method == "sigma10") & (table.seed == 0), "outcome"] = "failed"
    (row,) = paired_comparison(table, "test_distance", higher_is_better=True).to_dict("records")
    # sigma10's finished seeds (60, 70) still beat sigma20's mean; only seed 1 is paired
    assert row["reference"] == "sigma10"
    assert row["pairs"] == 1
    assert row["difference_mean"] == pytest.approx(6.0)
    assert math.isnan(row["p"])
    assert row["verdict"] == "too few pairs"


def test_constant_differences_are_significant_in_their_direction() -> None:
    table = records(
        three_seeds("sigma40", "fixed", [9.0, 8.0, 7.0])
        + three_seeds("adaloss", "adaloss", [10.0, 9.0, 8.0])
        + three_seeds("linear", "linear", [6.0, 5.0, 4.0])
    )
    rows = paired_comparison(table, "test_distance", higher_is_better=False).set_index("method")
    assert rows.loc["adaloss", "verdict"] == "worse"
    assert rows.loc["adaloss", "t"] == math.inf
    assert rows.loc["linear", "verdict"] == "better"
    assert rows.loc["linear", "p"] == 0.0


def test_one_row_per_learning_rate_and_none_without_a_fixed_method() -> None:
    table = records(
        three_seeds("sigma5", "fixed", [3.0, 4.0, 5.0], lr=1e-3)
        + three_seeds("adaloss", "adaloss", [3.0, 5.0, 4.0], lr=1e-3)
        + three_seeds("adaloss", "adaloss", [1.0, 2.0, 3.0], lr=1e-4)
    )
    result = paired_comparison(table, "test_distance", higher_is_better=False)
    assert list(result.lr) == [1e-3]
    assert result.p.iloc[0] == pytest.approx(1.0)  # differences 0, 1, -1: t = 0


def test_a_named_reference_is_paired_with_every_other_method() -> None:
    # an ablation: every variant (and the fixed sigma) against the paper-literal rule
    table = records(
        three_seeds("sigma40", "fixed", [9.0, 8.0, 7.0])
        + three_seeds("literal", "adaloss", [10.0, 9.0, 8.0])
        + three_seeds("max_step4", "adaloss", [4.0, 6.0, 8.0])
    )
    rows = paired_comparison(
        table, "test_distance", higher_is_better=False, reference="literal"
    ).set_index("method")
    assert list(rows.index) == ["sigma40", "max_step4"]
    assert set(rows.reference) == {"literal"}
    assert rows.loc["sigma40", "verdict"] == "better"  # -1 on every seed
    # differences -6, -3, 0: mean -3, sample std 3, t = -3 / (3 / sqrt 3) = -sqrt(3), 2 dof
    assert rows.loc["max_step4", "t"] == pytest.approx(-math.sqrt(3))
    assert rows.loc["max_step4", "p"] == pytest.approx(1 - math.sqrt(3) / math.sqrt(5))


def test_an_unknown_reference_names_the_methods() -> None:
    table = records(three_seeds("sigma40", "fixed", [9.0, 8.0, 7.0]))
    with pytest.raises(ValueError, match=r"no method 'literl'.*sigma40"):
        paired_comparison(table, "test_distance", higher_is_better=False, reference="literl")


def test_wilcoxon_beside_the_t_test() -> None:
    # five seeds, every difference negative (-1, -2, -3, -4, -5): the exact two-sided p is the
    # chance of the most extreme of the 2^5 equally likely sign patterns at either end, 2 / 32
    table = records(
        [("sigma25", "fixed", 1e-3, s, 10.0, "finished") for s in range(5)]
        + [("adaloss", "adaloss", 1e-3, s, 9.0 - s, "finished") for s in range(5)]
    )
    (row,) = paired_comparison(table, "test_distance", higher_is_better=False).to_dict("records")
    assert row["wilcoxon_p"] == pytest.approx(2 / 32)
    # one positive difference of rank 1 among five: W+ = 1; patterns with W+ <= 1 are 2 of 32
    # (W+ = 0, W+ = 1), doubled for two sides: 4 / 32
    flipped = table.copy()
    flipped.loc[(flipped.method == "adaloss") & (flipped.seed == 0), "test_distance"] = 11.0
    (row,) = paired_comparison(flipped, "test_distance", higher_is_better=False).to_dict("records")
    assert row["wilcoxon_p"] == pytest.approx(4 / 32)


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04, made non-decreasing -> 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, math.nan, 0.6]) == pytest.approx([1.0, math.nan, 1.0], nan_ok=True)
    assert holm([]) == []
