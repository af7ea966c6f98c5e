"""EndoVis'15 robotic instrument frames with Du et al.'s joint annotations (TMI 2018).

Two parts: `read_annotations`, a pure reader of one annotation JSON file that resolves the
files' quirks (listed in `bench/data/endovis15/SOURCE.md` and the shared README), and `load`,
which pairs the annotated frames with the video frames on disk and builds the `endovis` task's
`LandmarkDataset`. The synthetic `endovis` generator samples its tool geometry through the same
reader from the packaged copy of the annotations (`PACKAGED_ROOT`).

Coordinates. The files hold float pixels of the 720 x 576 frame written by the Sloth annotation
tool, whose scene coordinates put the continuous top-left corner of the image at (0, 0), so the
centre of pixel (row i, col j) is at (j + 0.5, i + 0.5). The reader subtracts 0.5 to give
docs/design.md's convention (pixel centres at integers); everything downstream uses that.

Quirks, and what the reader does with each (counted in `AnnotationFile.quirks`):
- frames with `"annotations": []`: listed, not annotated (the annotators labelled every fifth
  frame); kept in `frames` with `annotated=False` and no tools.
- `TrackedPoint` (train1-4, test1-4): a tracking aid, not a joint: dropped.
- `"occluded": true` (one point, train4): the annotator still placed the joint where it is, so
  the point is kept like any other.
- duplicated (tool, class) pairs: copies within `DUPLICATE_MERGE_PX` of their mean are one joint
  clicked twice and are averaged; copies further apart are a mislabelled tool id (in train1 a
  clasper of tool2 filed under tool1), so all copies lose their id and are assigned like points
  without an id.
- points without an `id` (all EndPoints, test5 and test6): assigned to a tool of the same frame
  that lacks that joint when the choice is unambiguous: the only such tool, or the one whose
  nearest joint is closer than `ASSIGN_RATIO` times the next candidate's; otherwise dropped.
  Keeping the first copy or dropping every such point would lose or corrupt real joints.
- tools with fewer than five joints: kept, the missing joints NaN.

Tool ids: tool1 = right needle driver, tool2 = left needle driver, tool3 = right curved scissors,
tool4 = left curved scissors (test5 and test6 only). The task's landmarks are the needle
drivers' claspers; scissors never become targets, frames holding them form the test subset
"with-scissors".
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from numpy.typing import NDArray

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.data.loaders.imagefiles import read_image, resize_image, to_channels
from bench.tasks import fixed_layout

JOINTS = ("EndPoint", "ShaftPoint", "HeadPoint", "LeftClasperPoint", "RightClasperPoint")
NEEDLE_DRIVERS = ("tool1", "tool2")
SCISSORS = ("tool3", "tool4")
LAYOUT = fixed_layout("endovis")
LANDMARK_NAMES = LAYOUT.landmark_names
# joints that are the landmarks, in LANDMARK_NAMES order
LANDMARK_JOINTS = (JOINTS.index("LeftClasperPoint"), JOINTS.index("RightClasperPoint"))
REFERENCE_SIZE = LAYOUT.reference_size  # (H, W) of the frames the annotations refer to
TRACKED_POINT = "TrackedPoint"
# Sloth scene coordinates -> pixel centres (module docstring)
FILE_TO_PIXEL_CENTRE = -0.5
DUPLICATE_MERGE_PX = 5.0
ASSIGN_RATIO = 0.5
# The last tenth of each training video's annotated frames is the validation split: annotated
# frames are five video frames apart, so neighbours are near copies and an interleaved hold-out
# would measure memorisation.
VAL_FRACTION = 0.1
PACKAGED_ROOT = Path(__file__).resolve().parents[1] / "endovis15"

Joints = NDArray[np.float64]  # (5, 2) in JOINTS order, NaN for a missing joint


@dataclass(frozen=True)
class Frame:
    """One frame listed in an annotation file.

    filename: as written in the file (a path on the annotators' machine).
    annotated: the file lists at least one point for this frame.
    tools: tool id -> (5, 2) joints (x, y) in JOINTS order, pixels of the 720 x 576 frame with
        docs/design.md's convention, NaN for a joint the annotators did not place.
    """

    filename: str
    annotated: bool
    tools: dict[str, Joints]

    @property
    def has_scissors(self) -> bool:
        return any(tool in SCISSORS for tool in self.tools)

    @property
    def needle_drivers(self) -> list[Joints]:
        """(5, 2) joints of each needle driver, tool1 before tool2."""
        return [self.tools[tool] for tool in NEEDLE_DRIVERS if tool in self.tools]


@dataclass(frozen=True)
class AnnotationFile:
    """The frames of one annotation file and the count of each quirk the reader resolved."""

    path: Path
    frames: tuple[Frame, ...]
    quirks: Counter[str]

    @property
    def annotated_frames(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.annotated]


@dataclass(frozen=True)
class _Point:
    tool: str | None
    joint: int
    xy: NDArray[np.float64]


def read_annotations(json_path: Path) -> AnnotationFile:
    """Read one `trainN_labels.json` / `testN_labels.json` (or its `.json.gz`) file.

    Returns every listed frame in file order, with its tools' joints after resolving the quirks
    described in the module docstring. Raises ValueError naming the file (and line/column or
    entry) for anything that is not an EndoVis'15 annotation file.
    """
    entries = _load_json(json_path)
    if not isinstance(entries, list):
        raise ValueError(
            f"{json_path}: expected a JSON list of frames, got {type(entries).__name__}; "
            "pass one of the train_labels/*.json or test_labels/*.json files"
        )
    quirks: Counter[str] = Counter()
    frames = tuple(
        _read_frame(json_path, index, entry, quirks) for index, entry in enumerate(entries)
    )
    quirks["incomplete_tools"] += sum(
        int(np.isnan(joints).any()) for frame in frames for joints in frame.tools.values()
    )
    return AnnotationFile(path=json_path, frames=frames, quirks=quirks)


def _load_json(json_path: Path) -> object:
    opener = gzip.open if json_path.suffix == ".gz" else open
    try:
        with opener(json_path, "rt", encoding="utf-8") as stream:
            return json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{json_path}:{error.lineno}:{error.colno}: broken JSON ({error.msg}); "
            "restore the file from the annotation repository"
        ) from error
    except FileNotFoundError as error:
        raise ValueError(f"{json_path}: no such annotation file; check the path") from error
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{json_path}: cannot be decoded ({error}); restore the file from the annotation "
            "repository"
        ) from error


def _read_frame(json_path: Path, index: int, entry: object, quirks: Counter[str]) -> Frame:
    where = f"{json_path}: frame entry {index}"
    if not isinstance(entry, dict) or "filename" not in entry or "annotations" not in entry:
        raise ValueError(
            f"{where} lacks 'filename' or 'annotations'; each entry must be "
            '{"annotations": [...], "class": "image", "filename": "..."}'
        )
    raw_points = entry["annotations"]
    points: list[_Point] = []
    for number, raw in enumerate(raw_points):
        point = _read_point(f"{where}, point {number}", raw, quirks)
        if point is not None:
            points.append(point)
    quirks["empty_frames"] += int(not raw_points)
    return Frame(
        filename=str(entry["filename"]),
        annotated=bool(raw_points),
        tools=_resolve_tools(points, quirks),
    )


def _read_point(where: str, raw: object, quirks: Counter[str]) -> _Point | None:
    if not isinstance(raw, dict) or "class" not in raw or "x" not in raw or "y" not in raw:
        raise ValueError(f"{where} lacks 'class', 'x' or 'y'; every point needs all three")
    name = raw["class"]
    if name == TRACKED_POINT:
        quirks["tracked_points_dropped"] += 1
        return None
    if name not in JOINTS:
        raise ValueError(
            f"{where} has unknown joint class {name!r}; known: {', '.join(JOINTS)}, {TRACKED_POINT}"
        )
    try:
        xy = np.array([float(raw["x"]), float(raw["y"])]) + FILE_TO_PIXEL_CENTRE
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: x and y must be numbers ({error})") from error
    quirks["occluded_points_kept"] += int(bool(raw.get("occluded", False)))
    tool = raw.get("id")
    quirks["points_without_id"] += int(tool is None)
    return _Point(tool=None if tool is None else str(tool), joint=JOINTS.index(name), xy=xy)


def _resolve_tools(points: list[_Point], quirks: Counter[str]) -> dict[str, Joints]:
    """Tool id -> (5, 2) joints: duplicates merged, id-less points assigned (module docstring)."""
    copies: dict[tuple[str, int], list[NDArray[np.float64]]] = {}
    unsure: list[_Point] = []
    for point in points:
        if point.tool is None:
            unsure.append(point)
        else:
            copies.setdefault((point.tool, point.joint), []).append(point.xy)
    tools: dict[str, Joints] = {}
    for (tool, joint), xys in copies.items():
        joints = tools.setdefault(tool, np.full((len(JOINTS), 2), np.nan))
        stacked = np.stack(xys)
        mean = stacked.mean(axis=0)
        if len(xys) == 1 or np.hypot(*(stacked - mean).T).max() <= DUPLICATE_MERGE_PX:
            quirks["duplicates_averaged"] += int(len(xys) > 1)
            joints[joint] = mean
        else:
            quirks["duplicates_conflicting"] += 1
            unsure.extend(_Point(tool=None, joint=joint, xy=xy) for xy in xys)
    for point in unsure:
        owner = _unambiguous_owner(point, tools)
        if owner is None:
            quirks["unsure_points_dropped"] += 1
        else:
            quirks["unsure_points_assigned"] += 1
            tools[owner][point.joint] = point.xy
    return dict(sorted(tools.items()))


def _unambiguous_owner(point: _Point, tools: dict[str, Joints]) -> str | None:
    """The tool lacking `point`'s joint that is clearly nearest to it, else None."""
    distances = sorted(
        (float(np.nanmin(np.hypot(*(joints - point.xy).T))), tool)
        for tool, joints in tools.items()
        if np.isnan(joints[point.joint]).all() and not np.isnan(joints).all()
    )
    if not distances:
        return None
    if len(distances) == 1 or distances[0][0] < ASSIGN_RATIO * distances[1][0]:
        return distances[0][1]
    return None


def annotation_files(root: Path, split: str) -> list[Path]:
    """`<root>/<split>_labels/<split>N_labels.json[.gz]`, ordered by N; split "train" or "test"."""
    folder = root / f"{split}_labels"
    files = [*folder.glob("*.json"), *folder.glob("*.json.gz")]
    if not files:
        raise ValueError(
            f"{folder}: no annotation files; expected {split}1_labels.json, ... from "
            "https://github.com/surgical-vision/EndoVisPoseAnnotation"
        )
    return sorted(files, key=_video_number)


def _video_number(path: Path) -> tuple[int, str]:
    match = re.search(r"(\d+)", path.name)
    return (int(match.group(1)) if match else -1, path.name)


def read_videos(root: Path, split: str) -> list[list[Frame]]:
    """The annotated frames of each video of `split` ("train" or "test"), in file order."""
    return [read_annotations(path).annotated_frames for path in annotation_files(root, split)]


def hold_out_validation(videos: list[list[Frame]]) -> tuple[list[Frame], list[Frame]]:
    """(train, val): the last `VAL_FRACTION` of each video's annotated frames is validation."""
    train: list[Frame] = []
    val: list[Frame] = []
    for frames in videos:
        cut = len(frames) - round(VAL_FRACTION * len(frames))
        train.extend(frames[:cut])
        val.extend(frames[cut:])
    return train, val


def clasper_instances(frame: Frame, max_instances: int) -> NDArray[np.float64]:
    """(2, M, 2) clasper points of the frame's needle drivers (M = max_instances), NaN padded.

    Landmark k is LANDMARK_NAMES[k]; instance m is the m-th needle driver (tool1 first).
    """
    out = np.full((len(LANDMARK_JOINTS), max_instances, 2), np.nan)
    for instance, joints in enumerate(frame.needle_drivers):
        out[:, instance] = joints[list(LANDMARK_JOINTS)]
    return out


def resolve_frame_file(root: Path, filename: str) -> Path | None:
    """The frame file under `root` named by the trailing components of `filename`.

    Tries the longest trailing path first down to the last three components
    (`DatasetN/Raw/img_000001_raw.png`), so both the challenge's own layout
    (`Tracking_Robotic_Training/Training/DatasetN/Raw/...`) and a flat `DatasetN/Raw/...` work.
    Training and test frames have different names (`img_000001_raw.png`, `img_0001.png`), so
    one `DatasetN/Raw/` folder may hold both.
    """
    parts = [part for part in PurePosixPath(filename.replace("\\", "/")).parts if part != "/"]
    for length in range(len(parts), min(3, len(parts)) - 1, -1):
        candidate = root.joinpath(*parts[-length:])
        if candidate.is_file():
            return candidate
    return None


def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
    """The `endovis` task from EndoVis'15 frames under `path`.

    Layout: `path/train_labels/*.json` and `path/test_labels/*.json` (when absent, the packaged
    copy of the same annotations is used) and the frames under `path` keeping at least their
    `DatasetN/Raw/<file>` components (see `resolve_frame_file`).
    Splits: "train" and "val" (the last tenth of each training video's annotated frames) from
    train1-4 (940 annotated frames: 846 + 94), "test" from test1-6 (910) with subsets
    "no-scissors" (frames without scissors: test1-4, 308) and "with-scissors" (test5-6, 602).
    Images (N, 3, H, W) resized to `image_size`; points (N, 2, M, 2) in pixels of the resized
    frames, M = the most needle drivers in one frame (2), NaN for absent instances.
    """
    label_root = path if (path / "train_labels").is_dir() else PACKAGED_ROOT
    train, val = hold_out_validation(read_videos(label_root, "train"))
    test = [frame for video in read_videos(label_root, "test") for frame in video]
    max_instances = max(len(frame.needle_drivers) for frame in [*train, *val, *test])
    splits = {
        name: _split(path, frames, image_size, max_instances)
        for name, frames in (("train", train), ("val", val), ("test", test))
    }
    return LandmarkDataset.with_layout("endovis", "endovis15", LAYOUT, splits)


def _split(
    root: Path, frames: list[Frame], image_size: tuple[int, int], max_instances: int
) -> Split:
    found = [resolve_frame_file(root, frame.filename) for frame in frames]
    missing = [frame.filename for frame, file in zip(frames, found, strict=True) if file is None]
    if missing:
        tail = "/".join(PurePosixPath(missing[0]).parts[-3:])
        raise ValueError(
            f"{root}: {len(missing)} annotated frames not found, first {missing[0]}; put the "
            f"EndoVis'15 frames under {root} keeping their folders (e.g. {root / tail})"
        )
    images = np.empty((len(frames), 3, *image_size), dtype=np.float32)
    files = [file for file in found if file is not None]
    for index, file in enumerate(files):
        image = read_image(file)
        height, width = image.shape[:2]
        if abs(width / height - REFERENCE_SIZE[1] / REFERENCE_SIZE[0]) > 0.01:
            raise ValueError(
                f"{file}: frame is {width}x{height}, the annotations refer to 720x576 frames; "
                "use the challenge's original (or uniformly resized) frames"
            )
        images[index] = resize_image(to_channels(image, 3), image_size).transpose(2, 0, 1)
    points = np.stack([clasper_instances(frame, max_instances) for frame in frames])
    scissors = torch.tensor([frame.has_scissors for frame in frames])
    return Split(
        images=torch.from_numpy(images),
        points=rescale_points(torch.from_numpy(points), REFERENCE_SIZE, image_size).float(),
        subsets={
            "no-scissors": torch.nonzero(~scissors).flatten(),
            "with-scissors": torch.nonzero(scissors).flatten(),
        },
    )
