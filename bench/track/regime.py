"""Is a cell's detector properly trained? The regime criteria of docs/data.md, as pure functions.

A comparison of sigma schedules is only worth reading where the detector is neither starved of
data nor cut off while still learning. Two criteria decide a profile (`tools/regime.py` prints
them for a task's reference fixed sigma), and `convergence` is also the diagnostic `bench report`
prints for the best fixed-sigma cells of any grid:

- data-sufficient: twice the training images improve the test metric by less than 15 %;
- converged: the best validation value lies before the last 10 % of the epochs, the last quarter
  improves on the best of the first three quarters by less than 2 %, and the last quarter's best
  is within 5 % of the best overall. "Still improving" (the first two fail) and "overfit" or
  "unstable" (the last fails) are failures, not passes. The first two are issue #32's rule,
  which replaced "the last quarter within 5 % and the last epoch within 15 % of the best": that
  one passed a curve whose best was its last epoch. Judged on validation splits sized so that
  the metric's standard error is at most 2 % of its value (docs/data.md, "Validation noise").

Validation metrics are lower-is-better (every task's `validation_metric`); test metrics come
with their direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Each task's reference fixed sigma, chosen without results (docs/data.md, "Regime criteria"):
# the cell the regime criteria and the validation-noise measurement train.
REFERENCE_METHODS = {"cathdet": "sigma40", "face300w": "sigma10", "endovis": "sigma20"}
DATA_GAIN_LIMIT = 0.15
TAIL_TOLERANCE = 0.05
# "still improving": the best epoch lies in this last fraction of the epochs, or the last quarter
# beats the earlier epochs' best by this fraction or more
LATE_FRACTION = 0.10
IMPROVING_GAIN = 0.02


@dataclass(frozen=True)
class Convergence:
    """A validation curve against the convergence criterion.

    best: the lowest value; best_epoch: its 1-based epoch (the first, on a tie). tail_gap,
    last_gap: how much worse (a fraction of |best|) the last quarter's best and the last epoch
    are. tail_gain: how much the last quarter improved on the best of the epochs before it (a
    fraction of that best; 0 when it did not). status: "converged", "still improving" (the best
    is late or the last quarter still gains), "overfit" (the last quarter worse while the
    training loss keeps falling) or "unstable" (worse without the training loss falling).
    """

    best: float
    best_epoch: int
    tail_gap: float
    last_gap: float
    tail_gain: float
    status: str

    @property
    def meets_criterion(self) -> bool:
        """The convergence criterion of docs/data.md: only "converged" passes."""
        return self.status == "converged"


def tail_length(epochs: int) -> int:
    """The number of epochs in the last quarter (at least one)."""
    return max(1, math.ceil(epochs / 4))


def late_start(epochs: int) -> int:
    """The first 1-based epoch of the last 10 % of `epochs` (at least the last epoch)."""
    return epochs - max(1, math.ceil(LATE_FRACTION * epochs)) + 1


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
    if best_index + 1 >= late_start(len(values)) or tail_gain >= IMPROVING_GAIN:
        status = "still improving"
    elif tail_gap <= TAIL_TOLERANCE:
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
