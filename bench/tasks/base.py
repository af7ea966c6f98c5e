"""What every task provides to the trainer: profiles, a model, decoding and metrics.

A task never runs the model. The trainer turns images into heatmaps; the task turns heatmaps
into points (`decode`) and points into metrics (`validate` every epoch, `test` at the end).
Points are in pixels of the stored images, which are also heatmap pixels because every model
outputs its heatmaps at the input resolution; metrics are reported in the dataset's reference
frame (`LandmarkDataset.reference_size`).

Units: distances are pixels of the reference frame; NME, failure rates, AUC, precision, recall
and "within" rates are percentages (the paper's tables), so 3.31 means 3.31 %.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from adaloss.decode import decode_argmax
from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.tasks.models import UNet

# The keys a grid may override through `CellConfig.extra`. epochs and batch_size are cell fields.
OVERRIDABLE = ("width", "depth", "kernel_size", "rotation_deg", "normalize")


@dataclass(frozen=True)
class TaskProfile:
    """A task's defaults for one profile.

    epochs, batch_size: the training run (a grid may override both).
    width: the model's base channels (U-Net) or growth rate (Dense U-Net).
    depth: the number of 2x2 poolings. kernel_size: every conv layer's square kernel.
    rotation_deg: training augmentation, a uniform rotation in +-rotation_deg (0: none).
    normalize: target rendering, None or "mean" (adaloss.targets.render_heatmaps).
    """

    epochs: int
    batch_size: int
    width: int
    depth: int
    kernel_size: int
    rotation_deg: float = 0.0
    normalize: str | None = None


@dataclass(frozen=True)
class Task(ABC):
    """A benchmark task. Subclasses are frozen dataclasses that fill in the fields and methods.

    validation_metric: the per-epoch metric, lower is better; `validate` returns it with any
        other "val_" metrics. summary_metrics: the final metrics a report table shows, in order
        (test metrics from `test`, then TRAINING_METRICS, which the trainer adds for every task).
    headline_metric: the test metric on which a report compares adaptive schedules with the best
        fixed sigma (`bench.track.comparison`); headline_higher_is_better: its direction.
    landmark_metric: a test metric per landmark, "{landmark}" standing for its name, which the
        report tabulates per landmark; None when the task has one landmark or too many to list.
    """

    # both from the task table (`bench.tasks.get_task`): its name and its module's PROFILES
    name: str
    profiles: Mapping[str, TaskProfile]
    validation_metric: str
    summary_metrics: tuple[str, ...]
    headline_metric: str
    headline_higher_is_better: bool = False
    landmark_metric: str | None = None

    TRAINING_METRICS: ClassVar[tuple[str, ...]] = ("ntv_all", "ntv_last", "sigma_final_mean")

    def settings(self, profile: str, extra: Mapping[str, Any] | None = None) -> TaskProfile:
        """The profile's defaults with the model/augmentation keys of `extra` replaced.

        Raises ValueError naming the profile or key when either is unknown.
        """
        if profile not in self.profiles:
            raise ValueError(
                f"task {self.name!r} has no profile {profile!r}; known: {', '.join(self.profiles)}"
            )
        overrides = dict(extra or {})
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise ValueError(
                f"cell extra: unknown key(s) {', '.join(unknown)} for task {self.name!r}; "
                f"allowed: {', '.join(OVERRIDABLE)}"
            )
        return dataclasses.replace(self.profiles[profile], **overrides)

    def resolve(self, profile: str | TaskProfile) -> TaskProfile:
        return self.settings(profile) if isinstance(profile, str) else profile

    # the model class of the task (the paper's U-Net unless a task says otherwise) and any
    # arguments it takes beyond the profile's width, depth and kernel size
    model_class: ClassVar[Callable[..., nn.Module]] = UNet
    model_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def build_model(
        self, profile: str | TaskProfile, in_channels: int, num_landmarks: int
    ) -> nn.Module:
        """A fresh `model_class` mapping (B, in_channels, H, W) to (B, num_landmarks, H, W) at the
        profile's width, depth and kernel size."""
        settings = self.resolve(profile)
        return self.model_class(
            in_channels,
            num_landmarks,
            width=settings.width,
            depth=settings.depth,
            kernel_size=settings.kernel_size,
            **self.model_options,
        )

    def decode(self, heatmaps: Tensor) -> Tensor:
        """(B, K, H, W) heatmaps -> points in heatmap pixels on the CPU: (B, K, 2), or
        (B, K, M, 2) NaN-padded for multi-instance tasks. One instance per landmark by default
        (argmax with the quarter-pixel refinement); multi-instance tasks override this."""
        points, _ = decode_argmax(heatmaps.float())
        return points.cpu()

    @abstractmethod
    def validate(self, points: Tensor, split: Split, dataset: LandmarkDataset) -> dict[str, float]:
        """Per-epoch metrics ("val_" names) of decoded `points` on the whole `split`."""

    @abstractmethod
    def test(
        self, points: Tensor, split: Split, dataset: LandmarkDataset
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Final metrics ("test_" names, per subset) and one row per landmark (landmark, group,
        errors) of decoded `points` on `split`."""


def to_reference(points: Tensor, split: Split, dataset: LandmarkDataset) -> Tensor:
    """Points (N, K, 2) or (N, K, M, 2) of `split`'s images, in pixels of the stored images ->
    pixels of each image's reporting frame (the split's `frames`, else the dataset's
    `reference_size`), by docs/design.md's `x_ref = (u + 0.5) * W_ref / W - 0.5`."""
    if split.frames is None:
        return rescale_points(points.double(), dataset.image_size, dataset.reference_size)
    height, width = dataset.image_size
    frames = split.frames.double()
    scale = torch.stack([frames[:, 1] / width, frames[:, 0] / height], dim=-1)
    scale = scale.reshape(len(scale), *([1] * (points.ndim - 2)), 2)
    return (points.double() + 0.5) * scale - 0.5


def in_reference_frame(
    points: Tensor, split: Split, dataset: LandmarkDataset
) -> tuple[Tensor, Tensor]:
    """(decoded `points`, the split's true points), both in pixels of the reporting frame."""
    return to_reference(points, split, dataset), to_reference(split.points, split, dataset)


def landmark_group(dataset: LandmarkDataset) -> list[str]:
    """The group name of every landmark (its own name when no group lists it)."""
    groups = list(dataset.landmark_names)
    for group, indices in dataset.landmark_groups.items():
        for index in indices:
            groups[index] = group
    return groups


def subset_names(split: Split) -> list[str]:
    """The split's named subsets followed by "full"."""
    return [*split.subsets, "full"]


def concat_points(parts: Sequence[Tensor]) -> Tensor:
    """Concatenate decoded batches along B; (B, K, M, 2) parts are NaN-padded to the largest M."""
    if parts[0].ndim == 3:
        return torch.cat(list(parts))
    instances = max(part.shape[2] for part in parts)
    padded = [
        torch.nn.functional.pad(part, (0, 0, 0, instances - part.shape[2]), value=float("nan"))
        for part in parts
    ]
    return torch.cat(padded)


def percent(value: float) -> float:
    return 100.0 * value
