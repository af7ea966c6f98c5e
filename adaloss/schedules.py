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

from adaloss.targets import _broadcast_per_landmark

VARIANCE_EPS = 1e-12
"""Variances at or below this count as zero: the ratio V_{t-1} / V_t is then meaningless."""

SigmaLike = float | Tensor | Sequence[float]
LossLike = Tensor | Sequence[float]


@dataclass(frozen=True)
class StepRecord:
    """What one call to `step` saw and did; every tuple has one entry per landmark.

    step: the 1-based index t of the loss L_t passed to this call.
    loss: L_t as the rule saw it (Adaloss with loss_scale="relative": divided by the target's
        mean square; with variance_of="iteration_losses": the mean of the step's iterations).
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


def _as_float64(values: LossLike) -> Tensor:
    """A tensor or a sequence of numbers as a float64 CPU tensor, without a float32 detour."""
    if isinstance(values, Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64)
    return torch.as_tensor(values, dtype=torch.float64)


def _one_of(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _per_landmark(name: str, value: SigmaLike, num_landmarks: int) -> Tensor:
    """A float or (K,) value as a (K,) float64 tensor; raises ValueError naming `name`."""
    tensor = _broadcast_per_landmark(
        torch.as_tensor(value, dtype=torch.float64).detach().cpu(),
        num_landmarks,
        f"{name} must be a number or have shape ({num_landmarks},) (one per landmark)",
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
    # settings added after states were first saved, with the value those states imply
    _added_settings: ClassVar[dict[str, Any]] = {}

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
        return self._commit(losses, *self._advance(losses))

    def _commit(self, losses: Tensor, variance: Tensor, delta: Tensor, sigma: Tensor) -> Tensor:
        """Count the step, take its sigma and record it; returns the new sigma."""
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
        losses = _as_float64(landmark_losses)
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
        saved = {**self._added_settings, **state["config"]}
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
        recorded = tuple(torch.as_tensor(history["step"]).shape)
        for field in _RECORD_FIELDS:
            shape = tuple(torch.as_tensor(history[field]).shape)
            if len(recorded) != 1 or shape != (*recorded, self.num_landmarks):
                raise ValueError(
                    f"{name}.load_state_dict: history[{field!r}] has shape {shape} and "
                    f"history['step'] {recorded}; a state holds (T, {self.num_landmarks}) and "
                    "(T,), one row per recorded step"
                )
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


VARIANCE_READINGS = ("epoch_means", "iteration_losses")
LOSS_SCALES = ("raw", "relative")
# The selected reading's step bound in heatmap pixels at the paper's 256 px (docs/RESULTS.md,
# "The confirmation"): what `Adaloss()` adds to the literal rule.
DEFAULT_MAX_STEP = 4.0


class Adaloss(SigmaSchedule):
    """The Adaloss rule of docs/design.md, per landmark l, after the loss L_t of step t:

        V_t  = population variance of L_{t-w+1..t}                   (t >= w)
        D_t  = rho * (1 - V_{t-1} / V_t)                             (t >= w+1, else 0)
        D_t := 0 if V_t <= 1e-12, V_{t-1} <= 1e-12 or anything is non-finite
        D_t := clip(D_t, -max_step, max_step)                        (if max_step is set)
        D_t := 0 if D_t > 0 and restrict and not L_t > L_{t-1}
        sigma_{t+1} = clip(sigma_t + D_t, sigma_min, sigma_0)

    num_landmarks: K. sigma0: the starting (and largest) width, a float or (K,), in heatmap
    pixels (docs/design.md's default is a quarter of the heatmap's side; the caller computes it).
    window: w >= 2. rho: the step scale, > 0. sigma_min: the floor, > 0 and <= sigma0.
    max_step: the largest |D_t|, or None for unbounded steps (the paper-literal rule).
    restrict: forbid growth unless the loss rose too (the paper's non-increasing rule).

    Lengths are heatmap pixels, and the defaults are the paper's values for its 256 x 256
    heatmaps (rho 0.9) plus the step bound the pre-registered comparison of readings selected
    (docs/RESULTS.md): max_step 4, a sixteenth of the default sigma0 there. With heatmaps of side
    S, scale rho and max_step by S / 256 to run the same rule (at 64 px: rho 0.225, max_step 1).
    `Adaloss.paper` is the literal rule, unbounded steps.

    The readings the paper leaves open (defaults: the paper's reading of each):
    variance_of: "epoch_means" (V_t over the last w mean losses) or "iteration_losses" (V_t is
        the population variance of every per-iteration loss of the last w steps: `step` then
        takes the step's (n, K) per-iteration losses, and L_t is their mean).
    loss_scale: "raw", or "relative": every loss is divided by `target_energy`, the mean square
        of the landmark's current target (the loss of an all-zero prediction), which `step`
        then requires, so that a change of sigma does not by itself move the loss.
    reset_on_change: after a step that changed a landmark's sigma, its window starts afresh:
        V and D wait w and w+1 new steps, as at the start.

    The literal rule's step is unbounded, and when the loss falls steeply in the first epochs,
    V_{t-1} / V_t is large enough to take sigma to sigma_min in one step; the default bound
    avoids that (docs/RESULTS.md measures both).
    """

    kind = "adaloss"
    _added_settings: ClassVar[dict[str, Any]] = {
        "variance_of": "epoch_means",
        "loss_scale": "raw",
        "reset_on_change": False,
    }

    def __init__(
        self,
        num_landmarks: int,
        sigma0: SigmaLike,
        *,
        window: int = 3,
        rho: float = 0.9,
        sigma_min: float = 1.0,
        max_step: float | None = DEFAULT_MAX_STEP,
        restrict: bool = True,
        variance_of: str = "epoch_means",
        loss_scale: str = "raw",
        reset_on_change: bool = False,
        keep_history: bool = True,
    ) -> None:
        k = _positive_int("num_landmarks", num_landmarks, 1)
        self.window = _positive_int("window", window, 2)
        self.rho = _positive_float("rho", rho)
        self.sigma_min = _positive_float("sigma_min", sigma_min)
        self.max_step = None if max_step is None else _positive_float("max_step", max_step)
        self.restrict = bool(restrict)
        self.variance_of = _one_of("variance_of", variance_of, VARIANCE_READINGS)
        self.loss_scale = _one_of("loss_scale", loss_scale, LOSS_SCALES)
        self.reset_on_change = bool(reset_on_change)
        self.sigma0 = _per_landmark("sigma0", sigma0, k)
        _check_not_below_floor(self.sigma0, self.sigma_min)
        super().__init__(k, self.sigma0.clone(), keep_history=keep_history)
        # the last `window` steps' loss rows, stacked; recent_counts: rows per step
        self._recent = torch.empty(0, k, dtype=torch.float64)
        self._recent_counts = torch.empty(0, dtype=torch.int64)
        self._previous_variance = torch.full((k,), math.nan, dtype=torch.float64)
        self._previous_loss = torch.full((k,), math.nan, dtype=torch.float64)
        self._age = torch.zeros(k, dtype=torch.int64)  # steps since the landmark's window began

    @classmethod
    def paper(cls, num_landmarks: int, sigma0: SigmaLike, **options: Any) -> Adaloss:
        """The paper-literal rule (window 3, rho 0.9, restricted, unbounded steps, variance of
        the epoch means, raw losses, no reset); `options` may set sigma_min or keep_history."""
        allowed = {"sigma_min", "keep_history"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(
                f"Adaloss.paper fixes the rule; it takes only {', '.join(sorted(allowed))}, "
                f"not {', '.join(unknown)} (use Adaloss(...) for a variant)"
            )
        return cls(num_landmarks, sigma0, max_step=None, **options)

    def config(self) -> dict[str, Any]:
        return {
            "num_landmarks": self.num_landmarks,
            "sigma0": self.sigma0.clone(),
            "window": self.window,
            "rho": self.rho,
            "sigma_min": self.sigma_min,
            "max_step": self.max_step,
            "restrict": self.restrict,
            "variance_of": self.variance_of,
            "loss_scale": self.loss_scale,
            "reset_on_change": self.reset_on_change,
        }

    def step(self, landmark_losses: LossLike, target_energy: LossLike | None = None) -> Tensor:
        """Feed step t's losses and return sigma_{t+1} (K,).

        landmark_losses: (K,) mean losses, or with variance_of="iteration_losses" the step's
            (n, K) per-iteration losses (a (K,) tensor counts as one iteration).
        target_energy: (K,) mean square of each landmark's current target; required with
            loss_scale="relative", ignored with "raw".
        Raises ValueError, leaving the schedule unchanged, on a wrong shape, a non-finite loss,
        or a missing or non-positive target_energy.
        """
        rows = self._loss_rows(landmark_losses)
        if self.loss_scale == "relative":
            rows = rows / self._validated_energy(target_energy)
        losses = rows.mean(dim=0)
        return self._commit(losses, *self._advance_rows(rows, losses))

    def _loss_rows(self, landmark_losses: LossLike) -> Tensor:
        losses = _as_float64(landmark_losses)
        if self.variance_of == "iteration_losses" and losses.ndim == 2:
            if losses.shape[0] < 1:
                raise ValueError("Adaloss.step: the step's iteration losses are empty (0, K)")
            for row in losses:
                self._validated_losses(row)
            return losses
        return self._validated_losses(losses)[None]

    def _validated_energy(self, target_energy: LossLike | None) -> Tensor:
        if target_energy is None:
            raise ValueError(
                "Adaloss.step: loss_scale='relative' needs target_energy, the (K,) mean square "
                "of each landmark's current target"
            )
        energy = _as_float64(target_energy)
        if energy.shape != (self.num_landmarks,) or not bool(
            (torch.isfinite(energy) & (energy > 0)).all()
        ):
            raise ValueError(
                f"Adaloss.step: target_energy must be ({self.num_landmarks},) finite and > 0, "
                f"got {energy.tolist()}"
            )
        return energy

    def _advance(self, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self._advance_rows(losses[None], losses)

    def _advance_rows(self, rows: Tensor, losses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rule for one step: rows (n, K) its losses as the window keeps them, losses (K,)
        their mean L_t."""
        counts = torch.cat([self._recent_counts, torch.tensor([rows.shape[0]])])[-self.window :]
        recent = torch.cat([self._recent, rows])[-int(counts.sum()) :]
        age = self._age + 1
        variance = torch.where(
            age >= self.window, _population_variance(recent), torch.tensor(math.nan)
        )
        previous = self._previous_variance
        raw = self.rho * (1.0 - previous / variance)
        usable = (
            torch.isfinite(variance)
            & torch.isfinite(previous)
            & (variance > VARIANCE_EPS)
            & (previous > VARIANCE_EPS)
            & torch.isfinite(raw)
        )
        delta = torch.where(usable, raw, torch.zeros_like(losses))
        if self.max_step is not None:
            delta = delta.clamp(-self.max_step, self.max_step)
        if self.restrict:
            loss_rose = losses > self._previous_loss  # False at t = 1 (NaN)
            delta = torch.where((delta > 0) & ~loss_rose, torch.zeros_like(delta), delta)
        sigma = torch.minimum((self._sigma + delta).clamp(min=self.sigma_min), self.sigma0)
        if self.reset_on_change:
            changed = sigma != self._sigma
            age = torch.where(changed, torch.zeros_like(age), age)
            variance_kept = torch.where(changed, torch.tensor(math.nan), variance)
        else:
            variance_kept = variance
        self._recent, self._recent_counts = recent, counts
        self._previous_variance = variance_kept
        self._previous_loss = losses.clone()
        self._age = age
        return variance, delta, sigma

    def _extra_state(self) -> dict[str, Tensor]:
        return {
            "recent_losses": self._recent,
            "recent_counts": self._recent_counts,
            "previous_variance": self._previous_variance,
            "previous_loss": self._previous_loss,
            "age": self._age,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        k = self.num_landmarks
        recent = torch.as_tensor(state["recent_losses"], dtype=torch.float64)
        if recent.ndim != 2 or recent.shape[1] != k:
            raise ValueError(
                f"Adaloss.load_state_dict: recent_losses must have shape (n, {k}), got "
                f"{tuple(recent.shape)}"
            )
        # states saved before the readings existed hold one row per step and no age
        counts = torch.as_tensor(
            state.get("recent_counts", torch.ones(recent.shape[0])), dtype=torch.int64
        )
        if counts.ndim != 1 or int(counts.sum()) != recent.shape[0]:
            raise ValueError(
                f"Adaloss.load_state_dict: recent_counts {counts.tolist()} do not add up to the "
                f"{recent.shape[0]} rows of recent_losses"
            )
        if len(counts) > self.window or bool((counts < 1).any()):
            raise ValueError(
                f"Adaloss.load_state_dict: recent_counts {counts.tolist()} must be at most "
                f"window={self.window} steps of at least one loss each"
            )
        steps = int(state["steps"])
        previous_loss = state.get(
            "previous_loss", recent[-1] if steps and recent.shape[0] else torch.full((k,), math.nan)
        )
        vectors = {
            "previous_variance": torch.as_tensor(state["previous_variance"], dtype=torch.float64),
            "previous_loss": torch.as_tensor(previous_loss, dtype=torch.float64),
            "age": torch.as_tensor(state.get("age", torch.full((k,), steps)), dtype=torch.int64),
        }
        for name, vector in vectors.items():
            if vector.shape != (k,):
                raise ValueError(
                    f"Adaloss.load_state_dict: {name} must have shape ({k},), got "
                    f"{tuple(vector.shape)}"
                )
        self._recent, self._recent_counts = recent.clone(), counts.clone()
        self._previous_variance = vectors["previous_variance"].clone()
        self._previous_loss = vectors["previous_loss"].clone()
        self._age = vectors["age"].clone()


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
