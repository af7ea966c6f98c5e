"""What a dataset's points mean: landmark names and groups, the reporting frame, channels and
instances. Plain data without torch, so the task registry can list layouts cheaply.

A shipped task fixes its layout (`bench.tasks.TASKS`); the `keypoints` task takes the layout of
whatever data it is given (`LandmarkDataset.layout`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataLayout:
    """landmark_groups: group -> landmark indices. reference_size: (H, W) of the frame in which
    errors are reported. multi_instance: points are (N, K, M, 2), several instances per landmark.
    """

    landmark_names: tuple[str, ...]
    landmark_groups: dict[str, tuple[int, ...]]
    reference_size: tuple[int, int]
    channels: int
    multi_instance: bool

    def to_json(self) -> str:
        return json.dumps(
            {
                "landmark_names": list(self.landmark_names),
                "landmark_groups": {g: list(i) for g, i in self.landmark_groups.items()},
                "reference_size": list(self.reference_size),
                "channels": self.channels,
                "multi_instance": self.multi_instance,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DataLayout:
        data: dict[str, Any] = json.loads(text)
        return cls(
            landmark_names=tuple(data["landmark_names"]),
            landmark_groups={g: tuple(i) for g, i in data["landmark_groups"].items()},
            reference_size=(int(data["reference_size"][0]), int(data["reference_size"][1])),
            channels=int(data["channels"]),
            multi_instance=bool(data["multi_instance"]),
        )


def one_group_per_landmark(names: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    return {name: (k,) for k, name in enumerate(names)}


def ibug68_names_and_groups() -> tuple[tuple[str, ...], dict[str, tuple[int, ...]]]:
    """The iBUG 68-point layout (0-based): names by region and the five evaluation groups."""
    parts = [
        ("jaw", 17),
        ("right_brow", 5),
        ("left_brow", 5),
        ("nose_bridge", 4),
        ("nose_base", 5),
        ("right_eye", 6),
        ("left_eye", 6),
        ("outer_lip", 12),
        ("inner_lip", 8),
    ]
    names = tuple(f"{part}_{i}" for part, count in parts for i in range(count))
    groups = {
        "jaw": tuple(range(0, 17)),
        "brows": tuple(range(17, 27)),
        "nose": tuple(range(27, 36)),
        "eyes": tuple(range(36, 48)),
        "mouth": tuple(range(48, 68)),
    }
    return names, groups
