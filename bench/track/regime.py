"""Is a cell's detector properly trained? The regime criteria of docs/data.md, as pure functions.

A comparison of sigma schedules is only worth reading where the detector is neither starved of
data nor cut off while still learning. Two criteria decide a profile (`tools/regime.py` prints
them for a task's reference fixed sigma), and `convergence` is also the diagnostic `bench report`
prints for the best fixed-sigma cells of any grid:

- data-sufficient: twice the training images improve the test metric by less than 15 %;
- converged: the best validation value of the last quarter of the epochs is within 5 % of the
  best overall, and the last epoch's within 15 % of it.

Validation metrics are lower-is-better (every task's `validation_metric`); test metrics come
with their direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DATA_GAIN_LIMIT = 0.15
TAIL_TOLERANCE = 0.05
LAST_TOLERANCE = 0.15
# "still improving": the last quarter beats the earlier epochs' best by more than this fraction
IMPROVING_GAIN = 0.05


@dataclass(frozen=True)
class Convergence:
    """A validation curve against the convergence criterion.

    best: the lowest value. tail_gap, last_gap: how much worse (a fraction of |best|) the last
    quarter's best and the last epoch are. tail_gain: how much the last quarter improved on the
    best of the epochs before it (a fraction of that best; 0 when it did not). status:
    "converged", "still improving", "overfit" (flat or worse while the training loss keeps
    falling) or "unstable" (worse without the training loss falling).
    """

    best: float
    best_epoch: int
    tail_gap: float
    last_gap: float
    tail_gain: float
    status: str

    @property
    def meets_criterion(self) -> bool:
        """The criterion of docs/data.md (the "still improving" check is the report's extra)."""
        return self.tail_gap <= TAIL_TOLERANCE and self.last_gap <= LAST_TOLERANCE


def tail_length(epochs: int) -> int:
    """The number of epochs in the last quarter (at least one)."""
    return max(1, math.ceil(epochs / 4))


def relative_gap(value: float, reference: float) -> float:
    """(value - reference) / |reference|, 0 for two zeros, inf when only the reference is 0."""
    if value == reference:
        return 0.0
    if reference == 0:
        return math.inf
    return (value - reference) / abs(reference)


def convergence(
    validation: Sequence[float], train_loss: Sequence[float] | None = None
) -> Convergence:
    """Judge a lower-is-better validation curve (one value per epoch, in order).

    train_loss: the same epochs' training loss; tells "overfit" (the training loss at the last
    epoch is below its value at the best validation epoch) from "unstable". Non-finite values
    count as worse than any finite one. Raises ValueError on an empty curve.
    """
    values = [v if math.isfinite(v) else math.inf for v in validation]
    if not values:
        raise ValueError("convergence needs at least one epoch of validation values")
    best = min(values)
    best_index = values.index(best)
    cut = len(values) - tail_length(len(values))
    tail_best = min(values[cut:])
    head = values[:cut]
    tail_gap = relative_gap(tail_best, best)
    last_gap = relative_gap(values[-1], best)
    tail_gain = 0.0
    if head and math.isfinite(min(head)) and tail_best < min(head):
        tail_gain = -relative_gap(tail_best, min(head))
    if tail_gain > IMPROVING_GAIN:
        status = "still improving"
    elif tail_gap <= TAIL_TOLERANCE and last_gap <= LAST_TOLERANCE:
        status = "converged"
    elif (
        train_loss is not None
        and len(train_loss) == len(values)
        and (train_loss[-1] < train_loss[best_index])
    ):
        status = "overfit"
    else:
        status = "unstable"
    return Convergence(best, best_index + 1, tail_gap, last_gap, tail_gain, status)


def data_gain(metric_n: float, metric_2n: float, *, higher_is_better: bool) -> float:
    """The relative improvement of a test metric from n to 2n training images (negative when it
    got worse)."""
    gap = relative_gap(metric_2n, metric_n)
    return gap if higher_is_better else -gap


def data_sufficient(metric_n: float, metric_2n: float, *, higher_is_better: bool) -> bool:
    return data_gain(metric_n, metric_2n, higher_is_better=higher_is_better) < DATA_GAIN_LIMIT
