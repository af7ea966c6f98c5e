"""Sigma schedules: how each landmark's Gaussian target width evolves during training.

Every schedule holds one sigma per landmark, in heatmap pixels, as a float64 tensor of shape
(K,). The training loop calls `step(landmark_losses)` once per epoch (or once per iteration for
the iteration-window variant) with the mean per-landmark training loss, shape (K,), and renders
the next targets with the returned sigma. Arithmetic is float64 throughout, because the Adaloss
rule divides two variances that can differ by many orders of magnitude.

`history` is a list of `StepRecord`, one per call to `step`. `state_dict()` holds the whole
state as tensors and plain Python values, so `torch.save` / `torch.load(weights_only=True)`
round-trip it and a resumed schedule follows the same trajectory as an uninterrupted one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

VARIANCE_EPS = 1e-12
"""Variances at or below this count as zero: the ratio V_{t-1} / V_t is then meaningless."""

SigmaLike = float | Tensor | Sequence[float]
LossLike = Tensor | Sequence[float]


@dataclass(frozen=True)
class StepRecord:
    """What one call to `step` saw and did; every tuple has one entry per landmark.

    step: the 1-based index t of the loss L_t passed to this call.
    loss: L_t.
    variance: V_t, the population variance of the last `window` losses (Adaloss only; NaN
        before t = window and for schedules that do not use it).
    delta: the step D_t after every guard and clip of the rule, before sigma is clipped to
        [sigma_min, sigma_0]; LinearDecay records -k, FixedSigma 0.
    sigma: sigma_{t+1}, the width returned by this call.
    """

    step: int
    loss: tuple[float, ...]
    variance: tuple[float, ...]
    delta: tuple[float, ...]
    sigma: tuple[float, ...]


_RECORD_FIELDS = ("loss", "variance", "delta", "sigma")


def _positive_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _positive_float(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _per_landmark(name: str, value: SigmaLike, num_landmarks: int) -> Tensor:
    """A float or (K,) value as a (K,) float64 tensor; raises ValueError naming `name`."""
    tensor = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    if tensor.ndim == 0:
        tensor = tensor.expand(num_landmarks)
    if tensor.shape != (num_landmarks,):
        raise ValueError(
            f"{name} must be a number or have shape ({num_landmarks},) (one per landmark), "
            f"got shape {tuple(tensor.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite, got {tensor.tolist()}")
    return tensor.clone()


def _floats(tensor: Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in tensor.tolist())


class SigmaSchedule(ABC):
    """Shared interface and bookkeeping of the sigma schedules.

    Subclasses implement `_advance` (the rule itself) and `config` (their hyperparameters);
    this class validates the losses, keeps the step count and the history, and builds the
    state dict. `keep_history=False` stops recording `history`, which matters only when
    stepping per iteration over a long run (one record per step).
    """

    kind: ClassVar[str]

    def __init__(self, num_landmarks: int, sigma: Tensor, *, keep_history: bool = True) -> None:
        self.num_landmarks = _positive_int("num_landmarks", num_landmarks, 1)
        self._sigma = sigma
        self._steps = 0
        self._keep_history = keep_history
        self._history: list[StepRecord] = []

    @property
    def sigma(self) -> Tensor:
        """(K,) float64: the current width per landmark, in heatmap pixels (a copy)."""
        return self._sigma.clone()

    @property
    def steps_taken(self) -> int:
        """How many times `step` has been called (t of the last loss seen)."""
        return self._steps

    @property
    def history(self) -> list[StepRecord]:
        """One `StepRecord` per call to `step`, oldest first (a copy of the list)."""
        return list(self._history)

    def step(self, landmark_losses: LossLike) -> Tensor:
        """Feed L_t, the mean training loss per landmark (K,), and return sigma_{t+1} (K,).

        Raises ValueError, leaving the schedule unchanged, when the shape is not (K,) or a
        loss is NaN or infinite.
        """
        losses = self._validated_losses(landmark_losses)
        variance, delta, sigma = self._advance(losses)
        self._steps += 1
        self._sigma = sigma
        if self._keep_history:
            self._history.append(
                StepRecord(
                    step=self._steps,
                    loss=_floats(losses),
                    variance=_floats(variance),
                    delta=_floats(delta),
                    sigma=_floats(sigma),
                )
            )
        return self.sigma

    @abstractmethod
    def _advance(self, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Apply the rule to validated (K,) float64 losses: returns (variance, delta, sigma)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor's settings (plain values and tensors), stored in the state dict."""

    def _extra_state(self) -> dict[str, Tensor]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        del state  # schedules without memory beyond sigma have nothing to restore

    def _validated_losses(self, landmark_losses: LossLike) -> Tensor:
        if isinstance(landmark_losses, Tensor):
            losses = landmark_losses.detach().to(device="cpu", dtype=torch.float64)
        else:
            losses = torch.as_tensor(landmark_losses, dtype=torch.float64)
        name = type(self).__name__
        t = self._steps + 1
        if losses.shape != (self.num_landmarks,):
            raise ValueError(
                f"{name}.step: landmark_losses must have shape ({self.num_landmarks},) "
                f"(one mean loss per landmark), got shape {tuple(losses.shape)} at step {t}"
            )
        bad = torch.nonzero(~torch.isfinite(losses)).flatten().tolist()
        if bad:
            shown = ", ".join(f"landmark {i}: {float(losses[i])}" for i in bad[:5])
            raise ValueError(
                f"{name}.step: non-finite loss at step {t} ({shown}); the training diverged "
                "or the loss is broken (lower the learning rate or check the targets)"
            )
        return losses

    def state_dict(self) -> dict[str, Any]:
        """The whole state as tensors and plain values (safe for weights_only loading).

        Keys: kind, config, sigma (K,), steps, history (dict of stacked tensors: step (T,),
        loss/variance/delta/sigma (T, K)), plus the rule's own memory (Adaloss:
        recent_losses (n, K) with n <= window, previous_variance (K,)).
        """
        k = self.num_landmarks
        history: dict[str, Tensor] = {
            "step": torch.tensor([r.step for r in self._history], dtype=torch.int64)
        }
        for field in _RECORD_FIELDS:
            rows = [getattr(r, field) for r in self._history]
            history[field] = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), k)
        return {
            "kind": self.kind,
            "config": self.config(),
            "sigma": self._sigma.clone(),
            "steps": self._steps,
            "history": history,
            **{key: value.clone() for key, value in self._extra_state().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict()`; the schedule must be built with the same settings.

        Raises ValueError naming the first mismatching setting or malformed entry.
        """
        name = type(self).__name__
        if state.get("kind") != self.kind:
            raise ValueError(
                f"{name}.load_state_dict: state is for a {state.get('kind')!r} schedule, "
                f"not {self.kind!r}"
            )
        saved = state["config"]
        for key, value in self.config().items():
            other = saved.get(key)
            same = (
                isinstance(other, Tensor) and torch.equal(other, value)
                if isinstance(value, Tensor)
                else other == value
            )
            if not same:
                raise ValueError(
                    f"{name}.load_state_dict: the state was saved with {key}={other!r}, this "
                    f"schedule has {key}={value!r}; build the schedule with the saved settings"
                )
        sigma = _per_landmark("state['sigma']", state["sigma"], self.num_landmarks)
        steps = _positive_int("state['steps']", state["steps"], 0)
        history = state["history"]
        records = [
            StepRecord(
                step=int(history["step"][i]),
                **{field: _floats(history[field][i]) for field in _RECORD_FIELDS},
            )
            for i in range(len(history["step"]))
        ]
        self._load_extra_state(state)
        self._sigma = sigma
        self._steps = steps
        self._history = records if self._keep_history else []


class Adaloss(SigmaSchedule):
    """The Adaloss rule of DESIGN.md, per landmark l, after the loss L_t of step t:

        V_t  = population variance of L_{t-w+1..t}                   (t >= w)
        D_t  = rho * (1 - V_{t-1} / V_t)                             (t >= w+1, else 0)
        D_t := 0 if V_t <= 1e-12, V_{t-1} <= 1e-12 or anything is non-finite
        D_t := clip(D_t, -max_step, max_step)                        (if max_step is set)
        D_t := 0 if D_t > 0 and restrict and not L_t > L_{t-1}
        sigma_{t+1} = clip(sigma_t + D_t, sigma_min, sigma_0)

    num_landmarks: K. sigma0: the starting (and largest) width, a float or (K,), in heatmap
    pixels (DESIGN.md's default is a quarter of the heatmap's side; the caller computes it).
    window: w >= 2. rho: the step scale, > 0. sigma_min: the floor, > 0 and <= sigma0.
    max_step: None (paper-literal) or the largest |D_t|. restrict: forbid growth unless the
    loss rose too (the paper's non-increasing rule).

    The defaults are the paper's rule. Its step is unbounded, and when the loss falls steeply in
    the first epochs, V_{t-1} / V_t is large enough to take sigma to sigma_min in one step:
    docs/RESULTS.md's ablation measures this, and that a bound such as one heatmap pixel per
    step (`max_step=1.0`) avoids it, and says why the default stays paper-literal.
    """

    kind = "adaloss"

    def __init__(
        self,
        num_landmarks: int,
        sigma0: SigmaLike,
        *,
        window: int = 3,
        rho: float = 0.9,
        sigma_min: float = 1.0,
        max_step: float | None = None,
        restrict: bool = True,
        keep_history: bool = True,
    ) -> None:
        k = _positive_int("num_landmarks", num_landmarks, 1)
        self.window = _positive_int("window", window, 2)
        self.rho = _positive_float("rho", rho)
        self.sigma_min = _positive_float("sigma_min", sigma_min)
        self.max_step = None if max_step is None else _positive_float("max_step", max_step)
        self.restrict = bool(restrict)
        self.sigma0 = _per_landmark("sigma0", sigma0, k)
        _check_not_below_floor(self.sigma0, self.sigma_min)
        super().__init__(k, self.sigma0.clone(), keep_history=keep_history)
        self._recent = torch.empty(0, k, dtype=torch.float64)
        self._previous_variance = torch.full((k,), math.nan, dtype=torch.float64)

    def config(self) -> dict[str, Any]:
        return {
            "num_landmarks": self.num_landmarks,
            "sigma0": self.sigma0.clone(),
            "window": self.window,
            "rho": self.rho,
            "sigma_min": self.sigma_min,
            "max_step": self.max_step,
            "restrict": self.restrict,
        }

    def _advance(self, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        recent = torch.cat([self._recent, losses[None]])[-self.window :]
        t = self._steps + 1
        if t >= self.window:
            variance = _population_variance(recent)
        else:
            variance = torch.full_like(losses, math.nan)
        delta = torch.zeros_like(losses)
        if t >= self.window + 1:
            previous = self._previous_variance
            raw = self.rho * (1.0 - previous / variance)
            usable = (
                torch.isfinite(variance)
                & torch.isfinite(previous)
                & (variance > VARIANCE_EPS)
                & (previous > VARIANCE_EPS)
                & torch.isfinite(raw)
            )
            delta = torch.where(usable, raw, delta)
            if self.max_step is not None:
                delta = delta.clamp(-self.max_step, self.max_step)
            if self.restrict:
                loss_rose = recent[-1] > recent[-2]
                delta = torch.where((delta > 0) & ~loss_rose, torch.zeros_like(delta), delta)
        sigma = torch.minimum((self._sigma + delta).clamp(min=self.sigma_min), self.sigma0)
        self._recent = recent
        self._previous_variance = variance
        return variance, delta, sigma

    def _extra_state(self) -> dict[str, Tensor]:
        return {"recent_losses": self._recent, "previous_variance": self._previous_variance}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        recent = torch.as_tensor(state["recent_losses"], dtype=torch.float64)
        if recent.ndim != 2 or recent.shape[1] != self.num_landmarks:
            raise ValueError(
                f"Adaloss.load_state_dict: recent_losses must have shape (n, "
                f"{self.num_landmarks}), got {tuple(recent.shape)}"
            )
        previous = torch.as_tensor(state["previous_variance"], dtype=torch.float64)
        if previous.shape != (self.num_landmarks,):
            raise ValueError(
                f"Adaloss.load_state_dict: previous_variance must have shape "
                f"({self.num_landmarks},), got {tuple(previous.shape)}"
            )
        self._recent = recent.clone()
        self._previous_variance = previous.clone()


class FixedSigma(SigmaSchedule):
    """A constant width per landmark (the paper's sigma = 5, 25, 40, 60 baselines).

    sigma: a float or (K,), > 0, in heatmap pixels. `step` still validates the losses, so a
    diverged run fails the same way under every schedule.
    """

    kind = "fixed"

    def __init__(self, num_landmarks: int, sigma: SigmaLike, *, keep_history: bool = True) -> None:
        k = _positive_int("num_landmarks", num_landmarks, 1)
        fixed = _per_landmark("sigma", sigma, k)
        if bool((fixed <= 0).any()):
            raise ValueError(f"sigma must be > 0, got {fixed.tolist()}")
        self.fixed_sigma = fixed
        super().__init__(k, fixed.clone(), keep_history=keep_history)

    def config(self) -> dict[str, Any]:
        return {"num_landmarks": self.num_landmarks, "sigma": self.fixed_sigma.clone()}

    def _advance(self, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nan = torch.full_like(losses, math.nan)
        return nan, torch.zeros_like(losses), self._sigma.clone()


class LinearDecay(SigmaSchedule):
    """The paper's naive schedule: sigma_{t+1} = max(sigma_t - k, sigma_min).

    sigma0: a float or (K,), >= sigma_min, in heatmap pixels. k: the step per call, >= 0, in
    heatmap pixels. sigma_min: the floor, > 0. After t steps sigma = max(sigma0 - k t, sigma_min).
    """

    kind = "linear"

    def __init__(
        self,
        num_landmarks: int,
        sigma0: SigmaLike,
        k: float,
        sigma_min: float = 1.0,
        *,
        keep_history: bool = True,
    ) -> None:
        num = _positive_int("num_landmarks", num_landmarks, 1)
        self.k = float(k)
        if not math.isfinite(self.k) or self.k < 0:
            raise ValueError(f"k must be a finite number >= 0, got {k!r}")
        self.sigma_min = _positive_float("sigma_min", sigma_min)
        self.sigma0 = _per_landmark("sigma0", sigma0, num)
        _check_not_below_floor(self.sigma0, self.sigma_min)
        super().__init__(num, self.sigma0.clone(), keep_history=keep_history)

    def config(self) -> dict[str, Any]:
        return {
            "num_landmarks": self.num_landmarks,
            "sigma0": self.sigma0.clone(),
            "k": self.k,
            "sigma_min": self.sigma_min,
        }

    def _advance(self, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nan = torch.full_like(losses, math.nan)
        delta = torch.full_like(losses, -self.k)
        return nan, delta, (self._sigma + delta).clamp(min=self.sigma_min)


def _population_variance(rows: Tensor) -> Tensor:
    """(n, K) -> (K,) variance with ddof=0, two-pass.

    Rows are accumulated one at a time, element-wise, because torch's vectorised reductions
    order the additions differently for different K; this way a landmark's sigma does not
    depend, even in the last bit, on how many other landmarks share the schedule.
    """
    mean = _sum_rows(rows) / rows.shape[0]
    return _sum_rows((rows - mean) ** 2) / rows.shape[0]


def _sum_rows(rows: Tensor) -> Tensor:
    total = torch.zeros_like(rows[0])
    for row in rows:
        total = total + row
    return total


def _check_not_below_floor(sigma0: Tensor, sigma_min: float) -> None:
    below = torch.nonzero(sigma0 < sigma_min).flatten().tolist()
    if below:
        i = below[0]
        raise ValueError(
            f"sigma0 must be >= sigma_min ({sigma_min}), got {float(sigma0[i])} for landmark {i}"
        )
