"""The in-memory dataset shared by every task.

Images are float tensors in [0, 1]; points are in pixels of the stored images, with docs/design.md's
convention (x right, y down, pixel (row i, col j) centred at x=j, y=i) and NaN for missing
landmarks or absent instances. Training slices these tensors; nothing iterates per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bench.data.layout import DataLayout


@dataclass(frozen=True)
class Split:
    """One named split.

    images: (N, C, H, W) float32 in [0, 1].
    points: (N, K, 2) for one instance per landmark, or (N, K, M, 2) for up to M instances.
    subsets: name -> (n,) int64 indices into the split (e.g. "common", "with-scissors");
        the whole split is always available as "full" through `subset_indices`.
    frames: (N, 2) int64 (H, W) of each image's own reporting frame, for data whose original
        images differ in size; None: every image reports in the dataset's `reference_size`.
    """

    images: torch.Tensor
    points: torch.Tensor
    subsets: dict[str, torch.Tensor] = field(default_factory=dict)
    frames: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.points.ndim not in (3, 4) or self.points.shape[-1] != 2:
            raise ValueError(
                f"points must be (N, K, 2) or (N, K, M, 2), got shape {tuple(self.points.shape)}"
            )
        if self.points.shape[0] != self.images.shape[0]:
            raise ValueError(f"{self.images.shape[0]} images but {self.points.shape[0]} point sets")
        if self.frames is not None and tuple(self.frames.shape) != (self.images.shape[0], 2):
            raise ValueError(f"frames must be (N, 2), got shape {tuple(self.frames.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset_indices(self, name: str) -> torch.Tensor:
        """(n,) int64 indices of subset `name`; "full" is the whole split."""
        if name == "full":
            return torch.arange(len(self))
        if name not in self.subsets:
            known = ", ".join(["full", *self.subsets])
            raise KeyError(f"unknown subset {name!r}; known: {known}")
        return self.subsets[name]


@dataclass(frozen=True)
class LandmarkDataset:
    """A task's data: named splits ("train", "val", "test") over one landmark layout.

    landmark_groups: group name -> landmark indices (face regions; one group per landmark
        class elsewhere), used for colouring previews and for per-region reports.
    reference_size: (H, W) of the frame in which point errors are reported (CathDet 256 x 256,
        EndoVis 576 x 720; for images of several sizes the most common one, each split's
        `frames` giving every image's own); stored images may be smaller (profile `quick`).
    """

    task: str
    variant: str
    landmark_names: tuple[str, ...]
    landmark_groups: dict[str, tuple[int, ...]]
    splits: dict[str, Split]
    reference_size: tuple[int, int]

    @classmethod
    def with_layout(
        cls, task: str, variant: str, layout: DataLayout, splits: dict[str, Split]
    ) -> LandmarkDataset:
        """The dataset of `splits` whose points mean what `layout` says (its channels and
        instances must match the splits' shapes; `layout` reads them back)."""
        return cls(
            task=task,
            variant=variant,
            landmark_names=layout.landmark_names,
            landmark_groups=layout.landmark_groups,
            splits=splits,
            reference_size=layout.reference_size,
        )

    @property
    def num_landmarks(self) -> int:
        return len(self.landmark_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the stored images."""
        images = next(iter(self.splits.values())).images
        return int(images.shape[-2]), int(images.shape[-1])

    @property
    def channels(self) -> int:
        return int(next(iter(self.splits.values())).images.shape[1])

    @property
    def multi_instance(self) -> bool:
        return next(iter(self.splits.values())).points.ndim == 4

    @property
    def layout(self) -> DataLayout:
        return DataLayout(
            landmark_names=self.landmark_names,
            landmark_groups=self.landmark_groups,
            reference_size=self.reference_size,
            channels=self.channels,
            multi_instance=self.multi_instance,
        )

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise KeyError(
                f"dataset {self.task}/{self.variant} has no split {name!r}; "
                f"known: {', '.join(self.splits)}"
            )
        return self.splits[name]
