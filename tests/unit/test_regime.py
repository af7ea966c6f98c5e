"""bench.track.regime: the regime criteria of docs/data.md on hand-made curves."""

from __future__ import annotations

import math

import pytest

from bench.track.regime import convergence, data_gain, data_sufficient, tail_length


@pytest.mark.parametrize(("epochs", "tail"), [(1, 1), (4, 1), (5, 2), (20, 5), (30, 8)])
def test_the_last_quarter_rounds_up(epochs: int, tail: int) -> None:
    assert tail_length(epochs) == tail


def test_converged_curve() -> None:
    # 8 epochs, last quarter = epochs 7-8 (5.2, 5.3); best 5 at epoch 4
    judged = convergence([10, 8, 6, 5, 5.1, 5.05, 5.2, 5.3])
    assert (judged.best, judged.best_epoch) == (5, 4)
    assert judged.tail_gap == pytest.approx(0.04)
    assert judged.last_gap == pytest.approx(0.06)
    assert judged.status == "converged" and judged.meets_criterion


def test_the_last_epoch_may_not_drift_past_fifteen_percent() -> None:
    # tail (5.1, 5.9): tail gap 2 % passes, the last epoch 18 % worse fails
    judged = convergence([10, 8, 6, 5, 5.1, 5.05, 5.1, 5.9], [8, 7, 6, 5, 4, 3, 2, 1])
    assert judged.tail_gap == pytest.approx(0.02)
    assert judged.last_gap == pytest.approx(0.18)
    assert not judged.meets_criterion
    assert judged.status == "overfit"


def test_overfit_against_unstable() -> None:
    validation = [10, 6, 5, 6, 7, 8, 9, 10]  # best 5 at epoch 3, tail (9, 10)
    falling = [8, 7, 6, 5, 4, 3, 2, 1]
    rising = [8, 7, 6, 7, 8, 9, 9, 9]
    assert convergence(validation, falling).status == "overfit"
    assert convergence(validation, rising).status == "unstable"
    assert convergence(validation).status == "unstable"  # no training loss to tell


def test_still_improving_is_told_even_when_the_criterion_holds() -> None:
    # tail (4, 3) beats the earlier best 5 by 40 %: best = last, so both gaps are 0
    judged = convergence([10, 9, 8, 7, 6, 5, 4, 3])
    assert judged.meets_criterion
    assert judged.tail_gain == pytest.approx(0.4)
    assert judged.status == "still improving"


def test_non_finite_values_count_as_worse() -> None:
    judged = convergence([5, math.nan, 4, math.inf])
    assert (judged.best, judged.best_epoch) == (4, 3)
    assert judged.last_gap == math.inf


def test_an_empty_curve_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one epoch"):
        convergence([])


def test_data_gain_in_the_metrics_direction() -> None:
    assert data_gain(10.0, 8.4, higher_is_better=False) == pytest.approx(0.16)
    assert not data_sufficient(10.0, 8.4, higher_is_better=False)
    assert data_sufficient(10.0, 8.6, higher_is_better=False)
    assert data_gain(60.0, 70.0, higher_is_better=True) == pytest.approx(1 / 6)
    assert not data_sufficient(60.0, 70.0, higher_is_better=True)
    assert data_gain(10.0, 11.0, higher_is_better=False) == pytest.approx(-0.1)  # got worse
