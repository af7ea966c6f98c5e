"""EndoVis'15 annotation reader (on the real packaged files) and frame loader (on fixtures)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from bench.data.loaders import endovis15

SHARED_COPY = Path(__file__).resolve().parents[3] / "shared" / "data" / "endovis15-pose"
TRAIN = [f"train{i}" for i in range(1, 5)]
TEST = [f"test{i}" for i in range(1, 7)]


def packaged(name: str) -> endovis15.AnnotationFile:
    split = "train" if name.startswith("train") else "test"
    path = endovis15.PACKAGED_ROOT / f"{split}_labels" / f"{name}_labels.json.gz"
    return endovis15.read_annotations(path)


@pytest.fixture(scope="module")
def real() -> dict[str, endovis15.AnnotationFile]:
    return {name: packaged(name) for name in TRAIN + TEST}


# --- the real files: the README's facts ------------------------------------------------------

LISTED_ANNOTATED = {
    "train1": (1107, 210), "train2": (1125, 240), "train3": (1124, 252), "train4": (1123, 238),
    "test1": (370, 80), "test2": (375, 76), "test3": (375, 76), "test4": (375, 76),
    "test5": (1500, 301), "test6": (1500, 301),
}  # fmt: skip


def test_frames_listed_and_annotated_per_file(real: dict[str, endovis15.AnnotationFile]) -> None:
    for name, (listed, annotated) in LISTED_ANNOTATED.items():
        assert (len(real[name].frames), len(real[name].annotated_frames)) == (listed, annotated)
        assert real[name].quirks["empty_frames"] == listed - annotated
    assert sum(len(real[n].annotated_frames) for n in TRAIN) == 940
    assert sum(len(real[n].annotated_frames) for n in TEST) == 910


def test_tracked_point_only_in_train_and_test1_to_4(
    real: dict[str, endovis15.AnnotationFile],
) -> None:
    for name in TRAIN + TEST:
        has_tracked = real[name].quirks["tracked_points_dropped"] > 0
        assert has_tracked == (name not in ("test5", "test6")), name


def test_points_without_id_and_occluded_counts(real: dict[str, endovis15.AnnotationFile]) -> None:
    without_id = {name: real[name].quirks["points_without_id"] for name in TRAIN + TEST}
    assert without_id == {name: {"test5": 128, "test6": 74}.get(name, 0) for name in without_id}
    occluded = {name: real[name].quirks["occluded_points_kept"] for name in TRAIN + TEST}
    assert occluded == {name: int(name == "train4") for name in occluded}
    # every id-less point is an EndPoint of a needle driver that lacks one: all are placed
    for name in ("test5", "test6"):
        assert real[name].quirks["unsure_points_assigned"] == without_id[name]
        assert real[name].quirks["unsure_points_dropped"] == 0


def test_scissors_only_in_test5_and_test6(real: dict[str, endovis15.AnnotationFile]) -> None:
    with_scissors = {n: sum(f.has_scissors for f in real[n].frames) for n in TRAIN + TEST}
    assert with_scissors == {n: {"test5": 301, "test6": 301}.get(n, 0) for n in with_scissors}
    no_scissors = sum(
        not frame.has_scissors for name in TEST for frame in real[name].annotated_frames
    )
    assert no_scissors == 308  # the paper's test1-4 subset


def test_joint_classes_per_file_match_the_raw_json(
    real: dict[str, endovis15.AnnotationFile],
) -> None:
    """Per file and joint class, the reader keeps one point per (frame, tool, class), so its
    count equals the raw count minus merged duplicate copies, plus nothing from TrackedPoint."""
    for name in ("train2", "test1", "test5"):
        split = "train" if name.startswith("train") else "test"
        path = endovis15.PACKAGED_ROOT / f"{split}_labels" / f"{name}_labels.json.gz"
        raw = json.loads(gzip.decompress(path.read_bytes()))
        for k, joint in enumerate(endovis15.JOINTS):
            raw_count = sum(p["class"] == joint for e in raw for p in e["annotations"])
            kept = sum(
                int(not np.isnan(joints[k]).any())
                for frame in real[name].frames
                for joints in frame.tools.values()
            )
            # the one duplicated pair of each file, averaged into one point
            merged = {("train2", "HeadPoint"): 1, ("test5", "LeftClasperPoint"): 1}
            assert kept == raw_count - merged.get((name, joint), 0), (name, joint)


def test_conflicting_duplicate_ids_are_reassigned_by_position(
    real: dict[str, endovis15.AnnotationFile],
) -> None:
    # train1 frame 130: tool2's right clasper was filed under tool1 (tool1 has two)
    frame = real["train1"].frames[129]
    assert frame.filename.endswith("img_000130_raw.png")
    np.testing.assert_allclose(
        frame.tools["tool1"][4], [342.7511591962906 - 0.5, 335.629057187017 - 0.5]
    )
    np.testing.assert_allclose(
        frame.tools["tool2"][4], [313.3724884080371 - 0.5, 217.2241112828439 - 0.5]
    )
    # train1 frame 180: tool2's EndPoint was filed under tool1
    frame = real["train1"].frames[179]
    np.testing.assert_allclose(
        frame.tools["tool2"][0], [23.146831530139103 - 0.5, 361.4466769706337 - 0.5]
    )
    np.testing.assert_allclose(
        frame.tools["tool1"][0], [699.7465224111282 - 0.5, 331.177743431221 - 0.5]
    )
    assert real["train1"].quirks["duplicates_conflicting"] == 2


def test_near_duplicates_are_averaged_and_id_less_points_assigned(
    real: dict[str, endovis15.AnnotationFile],
) -> None:
    head = real["train2"].frames[409].tools["tool1"][2]
    np.testing.assert_allclose(head, [(490 + 491) / 2 - 0.5, (288 + 290) / 2 - 0.5])
    # test5 frame 145: the id-less EndPoint (700, 134) belongs to tool1, the only tool without
    end = real["test5"].frames[144].tools["tool1"][0]
    np.testing.assert_allclose(end, [699.5, 133.5])


def test_packaged_copy_is_byte_identical_to_the_shared_annotations() -> None:
    if not SHARED_COPY.is_dir():
        pytest.skip(f"{SHARED_COPY} not present (only in the project's workspace)")
    originals = sorted(SHARED_COPY.glob("*_labels/*.json"))
    assert len(originals) == 10
    for original in originals:
        copy = endovis15.PACKAGED_ROOT / original.parent.name / (original.name + ".gz")
        assert gzip.decompress(copy.read_bytes()) == original.read_bytes(), copy
    assert (endovis15.PACKAGED_ROOT / "LICENSE").read_bytes() == (
        SHARED_COPY / "LICENSE"
    ).read_bytes()


def test_layout_is_the_papers() -> None:
    assert (endovis15.LANDMARK_NAMES, endovis15.REFERENCE_SIZE) == (
        ("left_clasper", "right_clasper"),
        (576, 720),
    )


# --- quirks on hand-made files ---------------------------------------------------------------


def write_json(path: Path, entries: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1))
    return path


def point(joint: str, x: float, y: float, tool: str | None = "tool1") -> dict[str, object]:
    out: dict[str, object] = {"class": joint, "x": x, "y": y}
    if tool is not None:
        out["id"] = tool
    return out


def entry(filename: str, points: list[dict[str, object]]) -> dict[str, object]:
    return {"annotations": points, "class": "image", "filename": filename}


def test_ambiguous_id_less_point_is_dropped(tmp_path: Path) -> None:
    # two tools lacking an EndPoint, both 100 px from the id-less one: no clear owner
    path = write_json(
        tmp_path / "a.json",
        [entry("/x/Dataset1/Raw/img_1.png", [
            point("HeadPoint", 100.5, 100.5, "tool1"),
            point("HeadPoint", 300.5, 100.5, "tool2"),
            point("EndPoint", 200.5, 100.5, None),
            point("TrackedPoint", 1.0, 1.0, "tool1"),
        ])],
    )  # fmt: skip
    read = endovis15.read_annotations(path)
    assert read.quirks["unsure_points_dropped"] == 1
    assert read.quirks["tracked_points_dropped"] == 1
    tools = read.frames[0].tools
    assert set(tools) == {"tool1", "tool2"}
    assert np.isnan(tools["tool1"][0]).all() and np.isnan(tools["tool2"][0]).all()
    np.testing.assert_allclose(tools["tool2"][2], [300.0, 100.0])
    assert read.quirks["incomplete_tools"] == 2


def test_broken_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train1_labels.json"
    path.write_text('[\n {"annotations": [],\n  "class": "image" "filename": "x"}\n]')
    with pytest.raises(ValueError, match=r"train1_labels\.json:3:20: broken JSON"):
        endovis15.read_annotations(path)


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "test1_labels.json.gz"
    path.write_bytes(gzip.compress(b'[{"annotations": []}]')[:-6])
    with pytest.raises(ValueError, match=r"test1_labels\.json\.gz: cannot be decoded"):
        endovis15.read_annotations(path)


def test_unknown_joint_class_names_file_and_entry(tmp_path: Path) -> None:
    path = write_json(tmp_path / "t.json", [entry("f.png", [point("TipPoint", 1, 2)])])
    with pytest.raises(ValueError, match=r"t\.json: frame entry 0, point 0 has unknown joint"):
        endovis15.read_annotations(path)


# --- the loader on a fixture folder ----------------------------------------------------------


def write_frame(root: Path, relative: str, colour: tuple[int, int, int]) -> None:
    """A uniformly resized 90 x 72 stand-in for a 720 x 576 frame, one flat colour."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    skio.imsave(path, np.full((72, 90, 3), colour, dtype=np.uint8), check_contrast=False)


def needle_driver(tool: str, left: tuple[float, float], right: tuple[float, float]) -> list:
    return [
        point("EndPoint", 700.0, 300.0, tool),
        point("ShaftPoint", 560.0, 300.0, tool),
        point("HeadPoint", 480.0, 300.0, tool),
        point("LeftClasperPoint", *left, tool),
        point("RightClasperPoint", *right, tool),
    ]


@pytest.fixture
def endovis_root(tmp_path: Path) -> Path:
    """10 annotated training frames (one video) and 3 test frames, the last with scissors."""
    train_entries = [entry(f"/a/Training/Dataset1/Raw/img_{i:06d}_raw.png", []) for i in (0, 99)]
    for i in range(1, 11):
        name = f"/Users/x/Tracking_Robotic_Training/Training/Dataset1/Raw/img_{i:06d}_raw.png"
        train_entries.append(entry(name, needle_driver("tool1", (360.5, 288.5), (10.0 * i, 20.0))))
        write_frame(tmp_path, f"Dataset1/Raw/img_{i:06d}_raw.png", (10 * i, 0, 0))
    write_json(tmp_path / "train_labels" / "train1_labels.json", train_entries)
    testing = "/Users/x/Tracking_Robotic_Testing/Dataset1/Raw"
    test_entries = [
        entry(f"{testing}/img_0001.png", needle_driver("tool1", (0.5, 0.5), (1, 1))),
        entry(f"{testing}/img_0002.png",
              needle_driver("tool2", (100.5, 50.5), (1, 1))
              + needle_driver("tool1", (720.0, 576.0), (1, 1))),
        entry("/u/Testing/Dataset5/Raw/img_0001.png",
              needle_driver("tool1", (5, 5), (6, 6)) + needle_driver("tool4", (7, 7), (8, 8))),
    ]  # fmt: skip
    write_json(tmp_path / "test_labels" / "test1_labels.json", test_entries)
    for relative in ("Dataset1/Raw/img_0001.png", "Dataset1/Raw/img_0002.png"):
        write_frame(tmp_path / "Tracking_Robotic_Testing", relative, (0, 200, 0))
    write_frame(tmp_path, "Dataset5/Raw/img_0001.png", (0, 0, 255))
    return tmp_path


def test_load_splits_points_and_subsets(endovis_root: Path) -> None:
    data = endovis15.load(endovis_root, (36, 45))
    train, val, test = (data.split(name) for name in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (9, 1, 3)  # last tenth of the video is val
    assert data.image_size == (36, 45) and data.channels == 3
    assert test.points.shape == (3, 2, 2, 2)  # at most two needle drivers in one frame
    # file (360.5, 288.5) -> pixel centres (360, 288) -> u = 360.5 * 45 / 720 - 0.5
    np.testing.assert_allclose(train.points[0, 0, 0].numpy(), [22.03125, 17.53125])
    # the right clasper of training frame i is at file x = 10 i: (10 i - 0.5 + 0.5) / 16 - 0.5
    np.testing.assert_allclose(val.points[0, 1, 0].numpy(), [100 / 16 - 0.5, 20 / 16 - 0.5])
    assert np.isnan(train.points[:, :, 1].numpy()).all()  # one needle driver in train frames
    # test frame 2: tool1 first, then tool2; (720, 576) is the far corner: 720 / 16 - 0.5
    np.testing.assert_allclose(test.points[1, 0, 0].numpy(), [44.5, 35.5])
    np.testing.assert_allclose(test.points[1, 0, 1].numpy(), [100.5 / 16 - 0.5, 50.5 / 16 - 0.5])
    # scissors never become targets: frame 3 has only tool1's claspers
    expected = [[5 / 16 - 0.5] * 2, [6 / 16 - 0.5] * 2]
    np.testing.assert_allclose(test.points[2, :, 0].numpy(), expected)
    assert np.isnan(test.points[2, :, 1].numpy()).all()
    assert test.subset_indices("with-scissors").tolist() == [2]
    assert test.subset_indices("no-scissors").tolist() == [0, 1]
    # flat colours survive the resize: red 10 i / 255 in training frame i, pure blue in test5
    np.testing.assert_allclose(train.images[3, 0].numpy(), 40 / 255, atol=1e-6)
    np.testing.assert_allclose(test.images[2].mean(dim=(1, 2)).numpy(), [0, 0, 1], atol=1e-6)


def test_missing_frame_names_the_frame_and_the_fix(endovis_root: Path) -> None:
    (endovis_root / "Dataset5" / "Raw" / "img_0001.png").unlink()
    with pytest.raises(
        ValueError, match=r"1 annotated frames not found, first .*Dataset5/Raw/img_0001\.png"
    ):
        endovis15.load(endovis_root, (36, 45))


def test_without_label_folders_the_packaged_annotations_are_used(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="846 annotated frames not found"):
        endovis15.load(tmp_path, (36, 45))
