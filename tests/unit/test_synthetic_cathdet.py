"""Synthetic CathDet: layout, a thin catheter from the border to the tip, jitter, wires."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data.dataset import LandmarkDataset
from bench.data.synthetic import cathdet
from bench.tasks import fixed_layout

SMOKE = cathdet.PROFILES["smoke"]


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """A scene stream and a pixel stream, as `cathdet.generate` makes them."""
    return np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])


@pytest.fixture(scope="module")
def smoke() -> LandmarkDataset:
    return cathdet.generate(SMOKE, seed=0)


def test_layout_shapes_and_value_ranges(smoke: LandmarkDataset) -> None:
    assert smoke.landmark_names == ("tip",) == fixed_layout("cathdet").landmark_names
    assert smoke.reference_size == (256, 256)
    counts = {"train": SMOKE.n_train, "val": SMOKE.n_val, "test": SMOKE.n_test}
    for name, count in counts.items():
        split = smoke.split(name)
        assert split.images.shape == (count, 1, 32, 32)
        assert split.images.dtype == torch.float32
        assert split.points.shape == (count, 1, 2)
        assert not torch.isnan(split.points).any()  # every frame has its tip
        assert split.images.min() >= 0.0 and split.images.max() <= 1.0
        # the tip is kept tip_margin of the frame from the border, +-4 jitter std (~3 px at 256)
        margin = SMOKE.tip_margin * 32 - 0.5 - 4 * SMOKE.annotation_jitter * 32 / 256
        assert (split.points >= margin).all() and (split.points <= 31 - margin).all()


def test_test_subsets_partition_by_distractor_wires(smoke: LandmarkDataset) -> None:
    test = smoke.split("test")
    with_wires, without = test.subset_indices("with-wires"), test.subset_indices("no-wires")
    assert len(with_wires) > 0 and len(without) > 0
    joined = torch.cat([with_wires, without]).sort().values
    assert torch.equal(joined, torch.arange(len(test)))


def test_annotation_jitter_is_about_one_reference_pixel() -> None:
    params = replace(SMOKE, image_size=(32, 32))
    frames = cathdet.render_frames(params, *streams(3), 600)
    offsets = (frames.labels - frames.tips) * 256 / 32  # back to reference pixels
    # per-axis normal with std s: mean radial offset s * sqrt(pi / 2)
    expected = params.annotation_jitter * np.sqrt(np.pi / 2)
    radial = np.linalg.norm(offsets, axis=1)
    assert radial.mean() == pytest.approx(expected, rel=0.1)
    assert abs(offsets.mean(axis=0)).max() < 0.15  # unbiased


def catheter_only(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W) darkening caused by the catheter alone, and (n, 2) its drawn tips.

    The same seed renders the scene twice, once with an invisible catheter (same number of
    random draws), so every other structure and the noise pattern match.
    """
    params = replace(SMOKE, image_size=(size, size), wire_probability=0.0, read_noise=0.0)
    with_cath = cathdet.render_frames(params, *streams(seed), 6)
    invisible = replace(params, catheter_contrast=(0.0, 0.0))
    without = cathdet.render_frames(invisible, *streams(seed), 6)
    np.testing.assert_allclose(with_cath.tips, without.tips)
    return (without.images - with_cath.images)[:, 0], with_cath.tips


def test_catheter_is_thin_faint_and_runs_from_the_border_to_the_tip() -> None:
    size = 128
    darkening, tips = catheter_only(seed=5, size=size)
    ys, xs = np.mgrid[0:size, 0:size]
    for image, tip in zip(darkening, tips, strict=True):
        assert 0 < image.max() < 0.5  # low contrast: dims a mid-grey frame by well under half
        drawn = image > 0.25 * image.max()
        # thin: a curve of 1-2 px at 256 covers a small share of the frame
        assert drawn.mean() < 0.05
        distance_to_tip = np.hypot(xs - tip[0], ys - tip[1])
        assert distance_to_tip[drawn].min() <= 1.0  # drawn up to the tip ...
        # ... and no further: the catheter arrives from direction d, nothing lies across the tip
        ring = drawn & (distance_to_tip > 3) & (distance_to_tip < 5)
        incoming = np.array([xs[ring].mean(), ys[ring].mean()]) - tip
        incoming /= np.linalg.norm(incoming)
        for sign, dark in ((1.0, True), (-1.0, False)):
            x, y = np.rint(tip + sign * 4.0 * incoming).astype(int)
            assert (image[y - 1 : y + 2, x - 1 : x + 2].max() > 0.25 * image.max()) == dark
        on_border = drawn[0].any() or drawn[-1].any() or drawn[:, 0].any() or drawn[:, -1].any()
        assert on_border  # ... and it enters from the border


def test_distractor_wires_cross_the_frame_from_border_to_border() -> None:
    rng = np.random.default_rng(0)
    starts, headings = cathdet._border_starts(rng, 50)
    for wire in cathdet._trace(SMOKE, rng, starts, headings):
        for end in (wire[0], wire[-1]):
            to_border = min(end[0] + 0.5, end[1] + 0.5, 255.5 - end[0], 255.5 - end[1])
            assert to_border <= 1.0  # both ends on (or one step past) the frame border
        assert len(wire) > 10


def test_quick_profile_renders_at_64_with_the_reference_geometry() -> None:
    quick = cathdet.PROFILES["quick"]
    assert quick.image_size == (64, 64)
    assert (quick.n_train, quick.n_val, quick.n_test) == (2000, 100, 300)  # docs/data.md
    paper = cathdet.PROFILES["paper"]
    assert (paper.image_size, paper.n_train, paper.n_test) == ((256, 256), 3000, 300)
    # the same scene at 64 and at 256: tips map by docs/design.md's u = (x + 0.5) * 64 / 256 - 0.5
    small = cathdet.generate(replace(quick, n_train=200, n_val=1, n_test=1), seed=9)
    large = cathdet.generate(
        replace(quick, image_size=(256, 256), n_train=200, n_val=1, n_test=1), seed=9
    )
    # over more than one chunk of frames, so the chunks' texture draws must not shift the scenes
    labels_small = small.split("train").points.double()
    labels_large = large.split("train").points.double()
    torch.testing.assert_close(labels_small, (labels_large + 0.5) * 64 / 256 - 0.5)
