"""bench.track.regime: the regime criteria of docs/data.md on hand-made curves."""

from __future__ import annotations

import math

import pytest

from bench.track.regime import convergence, data_gain, data_sufficient, late_start, tail_length


@pytest.mark.parametrize(("epochs", "tail"), [(1, 1), (4, 1), (5, 2), (20, 5), (30, 8)])
def test_the_last_quarter_rounds_up(epochs: int, tail: int) -> None:
    assert tail_length(epochs) == tail


@pytest.mark.parametrize(
    ("epochs", "first"), [(1, 1), (8, 8), (10, 10), (11, 10), (20, 19), (100, 91)]
)
def test_the_last_ten_percent_rounds_up(epochs: int, first: int) -> None:
    assert late_start(epochs) == first


def test_converged_curve() -> None:
    # 8 epochs, last quarter = epochs 7-8 (5.2, 5.3); best 5 at epoch 4, before the last 10 %
    judged = convergence([10, 8, 6, 5, 5.1, 5.05, 5.2, 5.3])
    assert (judged.best, judged.best_epoch) == (5, 4)
    assert judged.tail_gap == pytest.approx(0.04)
    assert judged.last_gap == pytest.approx(0.06)
    assert judged.tail_gain == 0.0
    assert judged.status == "converged" and judged.meets_criterion


def test_a_best_in_the_last_ten_percent_is_still_improving() -> None:
    # 20 epochs: the last 10 % are epochs 19-20. The best at epoch 19 (4.95) gains only 1 % on
    # the first three quarters' best (5.0), but it is late.
    curve = [10.0] * 4 + [5.0] * 11 + [5.02, 5.01, 5.0, 4.95, 4.99]
    judged = convergence(curve)
    assert judged.best_epoch == 19
    assert judged.tail_gain == pytest.approx(0.01)
    assert judged.status == "still improving" and not judged.meets_criterion
    # the same best at epoch 18, just before the last 10 %: converged
    judged = convergence([*curve[:17], 4.95, 4.99, 4.99])
    assert judged.best_epoch == 18
    assert judged.status == "converged"


def test_a_last_quarter_that_gains_two_percent_is_still_improving() -> None:
    # 10 epochs, last quarter = epochs 8-10 (4.88, 4.95, 4.99) against the first three
    # quarters' best 5.0: a 2.4 % gain; the best (epoch 8) is before the last 10 % (epoch 10)
    judged = convergence([9, 8, 7, 6, 5.0, 5.1, 5.2, 4.88, 4.95, 4.99])
    assert judged.best_epoch == 8
    assert judged.tail_gain == pytest.approx(0.024)
    assert judged.status == "still improving"
    # a 1.6 % gain (4.92) passes
    assert convergence([9, 8, 7, 6, 5.0, 5.1, 5.2, 4.92, 4.95, 4.99]).status == "converged"


def test_a_last_quarter_worse_than_five_percent_fails() -> None:
    # tail (5.3, 5.9): 6 % above the best 5 at epoch 4 while the training loss falls
    judged = convergence([10, 8, 6, 5, 5.1, 5.05, 5.3, 5.9], [8, 7, 6, 5, 4, 3, 2, 1])
    assert judged.tail_gap == pytest.approx(0.06)
    assert not judged.meets_criterion
    assert judged.status == "overfit"


def test_overfit_against_unstable() -> None:
    validation = [10, 6, 5, 6, 7, 8, 9, 10]  # best 5 at epoch 3, tail (9, 10)
    falling = [8, 7, 6, 5, 4, 3, 2, 1]
    rising = [8, 7, 6, 7, 8, 9, 9, 9]
    assert convergence(validation, falling).status == "overfit"
    assert convergence(validation, rising).status == "unstable"
    assert convergence(validation).status == "unstable"  # no training loss to tell


def test_a_falling_curve_is_still_improving() -> None:
    # tail (4, 3) beats the earlier best 5 by 40 % and the best is the last epoch
    judged = convergence([10, 9, 8, 7, 6, 5, 4, 3])
    assert judged.tail_gain == pytest.approx(0.4)
    assert judged.status == "still improving" and not judged.meets_criterion


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
