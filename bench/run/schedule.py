"""A cell's sigma schedule: its settings, their units, the paper's rule, and how a setting becomes
an `adaloss` schedule. The grid, the tuner, the trainer and the report all read this module.

Units (docs/design.md, "Units"): every length of a schedule (`LENGTH_KEYS`: sigma, sigma0,
sigma_min, rho, max_step, k) is stated in pixels of a `sigma_ref`-wide frame (the paper's 256 for
CathDet and faces, 720 for EndoVis) and scaled to heatmap pixels here, in `heatmap_lengths`, so a
64 px (quick) and a 256 px (paper) heatmap run the same rule; `sigma_ref=None` means heatmap
pixels already. The library (`adaloss`) works in heatmap pixels only.

Only the standard library is imported at module level: grid files are validated without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaloss.schedules import SigmaSchedule

SCHEDULE_KINDS = ("fixed", "adaloss", "linear")
# The keys a grid may give each kind (besides `schedule` and `sigma_ref`).
KEYS_BY_KIND: dict[str, tuple[str, ...]] = {
    "fixed": ("sigma",),
    "adaloss": (
        "sigma0",
        "sigma_min",
        "window",
        "rho",
        "max_step",
        "restrict",
        "unit",
        "variance_of",
        "loss_scale",
        "reset_on_change",
        "updates",
    ),
    "linear": ("sigma0", "k", "sigma_min", "updates"),
}
LENGTH_KEYS = ("sigma", "sigma0", "sigma_min", "rho", "max_step", "k")
NULLABLE_KEYS = ("sigma0", "max_step")  # null: a quarter of the heatmap side; unbounded steps
INTEGER_KEYS = ("window", "updates")
# Keys added after cells were recorded: left out of a cell's dict, and so of its key, while they
# hold these values, so every cell recorded before them keeps its key.
ABSENT_UNLESS_SET: dict[str, Any] = {"updates": None}
BOOLEAN_KEYS = ("restrict", "reset_on_change")
# Enumerated keys. variance_of and loss_scale mirror adaloss.schedules.VARIANCE_READINGS and
# LOSS_SCALES (a test keeps them equal; importing adaloss here would import torch).
CHOICE_KEYS: dict[str, tuple[str, ...]] = {
    "unit": ("epoch", "iteration"),
    "variance_of": ("epoch_means", "iteration_losses"),
    "loss_scale": ("raw", "relative"),
}


@dataclass(frozen=True)
class ScheduleConfig:
    """How sigma evolves, in the grid's terms (lengths in pixels of the `sigma_ref` frame).

    kind: "fixed" uses `sigma`; "adaloss" and "linear" start at `sigma0` (None: a quarter of the
        heatmap's side, docs/design.md's default) and never go below `sigma_min`.
    window, rho, max_step, restrict, variance_of, loss_scale, reset_on_change: the Adaloss rule
        and its readings (adaloss.schedules.Adaloss).
    unit: "epoch" steps the schedule once per epoch with the epoch's mean loss; "iteration" steps
        it once per batch (the paper's iteration-window variant).
    updates: the schedule's clock as a number of steps per run (a multiple of the cell's epochs,
        spread evenly over each epoch's batches, each with the mean loss since the previous
        step), so a short run can give the rule the paper's number of updates; None: `unit`'s.
        The window counts steps either way.
    k: the linear decay's step per update.
    """

    kind: str
    sigma: float | None = None
    sigma0: float | None = None
    sigma_min: float = 1.0
    window: int = 3
    rho: float = 0.9
    max_step: float | None = None
    restrict: bool = True
    unit: str = "epoch"
    variance_of: str = "epoch_means"
    loss_scale: str = "raw"
    reset_on_change: bool = False
    k: float | None = None
    sigma_ref: int | None = 256
    updates: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values, without the later keys that hold their absent value (cell keys)."""
        data = dataclasses.asdict(self)
        for key, absent in ABSENT_UNLESS_SET.items():
            if data[key] == absent:
                del data[key]
        return data


_DEFAULTS = ScheduleConfig(kind="adaloss")
# The paper's Adaloss rule (docs/design.md), as ScheduleConfig's defaults spell it. A variant that
# changes any of these (an ablation's step limit, iteration window, ...) is not what the paper
# measured, so its report rows get no paper values.
PAPER_RULE: dict[str, Any] = {
    key: getattr(_DEFAULTS, key)
    for key in KEYS_BY_KIND["adaloss"]
    # the start, the floor and the clock: the grid's, not the rule's
    if key not in ("sigma0", "sigma_min", "updates")
}


def sigma_scale(config: ScheduleConfig, heatmap_size: tuple[int, int]) -> float:
    """Heatmap pixels per pixel of the `sigma_ref`-wide frame (1 when sigma_ref is None)."""
    if config.sigma_ref is None:
        return 1.0
    if config.sigma_ref <= 0:
        raise ValueError(f"schedule.sigma_ref must be > 0, got {config.sigma_ref}")
    return heatmap_size[1] / config.sigma_ref


def heatmap_lengths(config: ScheduleConfig, heatmap_size: tuple[int, int]) -> ScheduleConfig:
    """`config` with every length in heatmap pixels and `sigma_ref=None`; a missing sigma0
    becomes a quarter of the heatmap's shorter side. The one place lengths are scaled."""
    scale = sigma_scale(config, heatmap_size)
    scaled: dict[str, Any] = {
        key: None if getattr(config, key) is None else getattr(config, key) * scale
        for key in LENGTH_KEYS
    }
    if scaled["sigma0"] is None:
        scaled["sigma0"] = min(heatmap_size) / 4
    return dataclasses.replace(config, **scaled, sigma_ref=None)


def check_choices(config: ScheduleConfig) -> None:
    for key, choices in CHOICE_KEYS.items():
        value = getattr(config, key)
        if value not in choices:
            raise ValueError(f"schedule.{key}: {value!r} is not one of {', '.join(choices)}")


def updates_per_epoch(config: ScheduleConfig, epochs: int, batches_per_epoch: int) -> int:
    """How many times the schedule steps in each epoch of `epochs` with `batches_per_epoch`
    batches: `updates / epochs`, every batch for unit "iteration", else once. Raises ValueError
    when `updates` is not a multiple of the epochs or asks for more steps than batches."""
    if config.updates is None:
        return batches_per_epoch if config.unit == "iteration" else 1
    if config.unit != "epoch":
        raise ValueError(
            f"schedule.updates and unit {config.unit!r} both set the clock; give one of them"
        )
    per_epoch, left = divmod(config.updates, epochs)
    if left or not per_epoch:
        raise ValueError(
            f"schedule.updates: {config.updates} updates over {epochs} epochs; give a multiple "
            f"of the epochs (at least one update an epoch), e.g. {max(1, per_epoch) * epochs}"
        )
    if per_epoch > batches_per_epoch:
        raise ValueError(
            f"schedule.updates: {config.updates} updates over {epochs} epochs is {per_epoch} an "
            f"epoch, more than its {batches_per_epoch} batches; give at most "
            f"{batches_per_epoch * epochs}"
        )
    return per_epoch


def build_schedule(
    config: ScheduleConfig, num_landmarks: int, heatmap_size: tuple[int, int]
) -> SigmaSchedule:
    """The cell's sigma schedule, in heatmap pixels (lengths scaled by `heatmap_lengths`)."""
    from adaloss.schedules import Adaloss, FixedSigma, LinearDecay

    check_choices(config)
    hm = heatmap_lengths(config, heatmap_size)
    keep_history = config.unit == "epoch"  # per-iteration records would pile up
    if config.kind == "fixed":
        if hm.sigma is None:
            raise ValueError("schedule.sigma is required for kind 'fixed'")
        return FixedSigma(num_landmarks, hm.sigma, keep_history=keep_history)
    assert hm.sigma0 is not None  # heatmap_lengths fills it in
    if config.kind == "adaloss":
        return Adaloss(
            num_landmarks,
            hm.sigma0,
            window=hm.window,
            rho=hm.rho,
            sigma_min=hm.sigma_min,
            max_step=hm.max_step,
            restrict=hm.restrict,
            variance_of=hm.variance_of,
            loss_scale=hm.loss_scale,
            reset_on_change=hm.reset_on_change,
            keep_history=keep_history,
        )
    if config.kind == "linear":
        if hm.k is None:
            raise ValueError("schedule.k is required for kind 'linear'")
        return LinearDecay(num_landmarks, hm.sigma0, hm.k, hm.sigma_min, keep_history=keep_history)
    raise ValueError(f"schedule.kind: {config.kind!r} is not one of {', '.join(SCHEDULE_KINDS)}")
