"""Argmax decoding (integer, quarter-pixel, DARK) and multi-instance peak decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaloss.decode import _dark_offsets, decode_argmax, decode_peaks
from adaloss.targets import render_heatmaps


def one_map(values: list[list[float]]) -> torch.Tensor:
    """A (1, 1, H, W) heatmap from nested lists."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


def test_integer_argmax_and_scores() -> None:
    heatmaps = torch.zeros(2, 3, 5, 6)
    heatmaps[0, 0, 3, 4] = 0.9  # row 3, col 4 -> (x, y) = (4, 3)
    heatmaps[0, 1, 0, 5] = 2.0
    heatmaps[1, 2, 4, 0] = 0.5
    points, scores = decode_argmax(heatmaps, refine=False)
    assert points.shape == (2, 3, 2)
    assert points[0, 0].tolist() == [4.0, 3.0]
    assert points[0, 1].tolist() == [5.0, 0.0]
    assert points[1, 2].tolist() == [0.0, 4.0]
    assert scores[0, 0].item() == pytest.approx(0.9)
    assert scores[0, 1].item() == 2.0


@pytest.mark.parametrize("refine", [True, "quarter"])
def test_quarter_rule_hand_example(refine: bool | str) -> None:
    heatmaps = one_map(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.7, 0.0, 0.0],  # above the peak: higher than below -> y - 0.25
            [0.0, 0.5, 1.0, 0.6, 0.0],  # right higher than left -> x + 0.25
            [0.0, 0.0, 0.2, 0.0, 0.0],
        ]
    )
    points, scores = decode_argmax(heatmaps, refine=refine)
    assert points[0, 0].tolist() == [2.25, 1.75]
    assert scores[0, 0].item() == 1.0


def test_quarter_rule_no_move_on_ties_or_at_the_border() -> None:
    tie = one_map([[0.0, 0.0, 0.0], [0.3, 1.0, 0.3], [0.0, 0.4, 0.0]])
    assert decode_argmax(tie)[0][0, 0].tolist() == [1.0, 1.25]
    corner = one_map([[1.0, 0.9, 0.0], [0.8, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert decode_argmax(corner)[0][0, 0].tolist() == [0.0, 0.0]
    right_edge = one_map([[0.0, 0.0, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.9]])
    assert decode_argmax(right_edge)[0][0, 0].tolist() == [2.0, 1.25]


# A Gaussian centred exactly between two pixels gives those pixels equal values: a tie, which by
# design moves nothing, leaving an error of 0.5. Centres therefore stay clear of half pixels.
sub_pixel = st.floats(-0.45, 0.45)


@settings(max_examples=60, deadline=None)
@given(
    col=st.integers(8, 23),
    row=st.integers(8, 23),
    fx=sub_pixel,
    fy=sub_pixel,
    sigma=st.floats(1.5, 6.0),
)
def test_render_then_decode_quarter_and_integer_bounds(
    col: int, row: int, fx: float, fy: float, sigma: float
) -> None:
    # The argmax of a separable Gaussian is the nearest pixel on each axis (|f| <= 0.45 < 0.5).
    # The quarter rule then moves 0.25 towards the centre, so the error per axis is
    # |f - 0.25 sign(f)| <= 0.25; when |f| is so small that float32 cannot order the two
    # neighbours the move may go either way, adding at most that |f| (< 1e-5 for sigma <= 6).
    centre = torch.tensor([[[col + fx, row + fy]]])
    heatmaps = render_heatmaps(centre, sigma, (32, 32))
    integer, _ = decode_argmax(heatmaps, refine=False)
    assert integer[0, 0].tolist() == [col, row]
    quarter, score = decode_argmax(heatmaps, refine=True)
    assert (quarter - centre).abs().max().item() <= 0.25 + 1e-5
    assert score.item() == pytest.approx(math.exp(-(fx * fx + fy * fy) / (2 * sigma**2)), rel=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    x=st.floats(6.0, 25.0),
    y=st.floats(6.0, 25.0),
    sigma=st.floats(1.5, 6.0),
    blur=st.sampled_from([0.0, 1.0]),
)
def test_render_then_decode_dark_within_005_px(
    x: float, y: float, sigma: float, blur: float
) -> None:
    # log of a clean Gaussian is an exact quadratic, so the Taylor step lands on the centre;
    # blurring with a Gaussian keeps the centre of a Gaussian.
    centre = torch.tensor([[[x, y]]])
    heatmaps = render_heatmaps(centre, sigma, (32, 32))
    points, _ = decode_argmax(heatmaps, refine="dark", blur_sigma=blur)
    assert torch.linalg.vector_norm(points - centre).item() <= 0.05


def test_dark_falls_back_to_quarter_on_zero_neighbours_and_border() -> None:
    spike = torch.zeros(1, 2, 7, 7)
    spike[0, 0, 3, 3] = 1.0
    spike[0, 0, 3, 4] = 0.5  # a zero elsewhere in the 3 x 3 window: log undefined
    spike[0, 1, 0, 3] = 1.0  # on the top border
    spike[0, 1, 0, 2] = 0.4
    spike[0, 1, 1, 3] = 0.3
    dark, _ = decode_argmax(spike, refine="dark")
    quarter, _ = decode_argmax(spike, refine="quarter")
    assert torch.equal(dark, quarter)
    assert dark[0, 0].tolist() == [3.25, 3.0]
    assert dark[0, 1].tolist() == [2.75, 0.0]


def test_dark_falls_back_to_quarter_on_a_saddle_log_hessian() -> None:
    # Strong diagonal coupling: d2/dxdy of log = 0.25 * (2 log 0.9 - 2 log 0.1) = 1.10 while
    # d2/dx2 = log 0.85 + log 0.8 = -0.39 and d2/dy2 = 2 log 0.8 = -0.45, so det < 0.
    heatmaps = one_map([[0.9, 0.8, 0.1], [0.8, 1.0, 0.85], [0.1, 0.8, 0.9]])
    dark, _ = decode_argmax(heatmaps, refine="dark")
    assert dark[0, 0].tolist() == [1.25, 1.0]


def test_dark_falls_back_to_quarter_when_its_step_leaves_the_window() -> None:
    # log h = -A v^2 - B (u - |m|)^2 with u, v the coordinates along and across (3, 1) / sqrt(10):
    # a narrow ridge whose top m = (1.5, 0.5) lies 1.5 px from the centre in x, outside the
    # 3 x 3 window, while the centre is still the largest sample (A = 30 > 21 B). Central
    # differences are exact for a quadratic, so DARK's fit finds m, and must not trust it.
    a, b, top = 30.0, 1.0, math.sqrt(1.5**2 + 0.5**2)
    xs = torch.arange(-2.0, 3.0, dtype=torch.float64)
    x, y = xs[None, :], xs[:, None]
    along, across = (3 * x + y) / math.sqrt(10), (x - 3 * y) / math.sqrt(10)
    heatmap = torch.exp(-a * across**2 - b * (along - top) ** 2)  # centre (2, 2) of a 5 x 5 map
    heatmap[[0, -1], :] = 0.0
    heatmap[:, [0, -1]] = 0.0
    assert int(heatmap.argmax()) == 2 * 5 + 2
    dark, _ = decode_argmax(heatmap[None, None], refine="dark")
    # quarter: sign(h(1, 0) - h(-1, 0)) = +, sign(h(0, 1) - h(0, -1)) = + (exponents -3.4 > -9.4,
    # -28.6 > -30.6): (2.25, 2.25); the fit's (3.5, 2.5) would have been taken without the bound
    assert dark[0, 0].tolist() == [2.25, 2.25]
    # the fit itself did find the far top, and marked it untrusted
    offsets, valid = _dark_offsets(heatmap[None, None], torch.tensor([[2]]), torch.tensor([[2]]))
    torch.testing.assert_close(offsets[0, 0], torch.tensor([1.5, 0.5], dtype=torch.float64))
    assert not bool(valid)


def test_points_are_float32_for_half_heatmaps() -> None:
    heatmaps = render_heatmaps(torch.tensor([[[10.3, 7.6]]]), 2.0, (16, 16)).half()
    points, scores = decode_argmax(heatmaps, refine="dark")
    assert points.dtype == torch.float32
    assert scores.dtype == torch.float16
    assert torch.allclose(points, torch.tensor([[[10.3, 7.6]]]), atol=0.05)


def test_decode_argmax_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="refine"):
        decode_argmax(torch.zeros(1, 1, 4, 4), refine="parabola")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        decode_argmax(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="blur_sigma"):
        decode_argmax(torch.zeros(1, 1, 4, 4), refine="dark", blur_sigma=-1.0)


def render_one(centres: list[tuple[float, float]], sigma: float, size: int = 64) -> torch.Tensor:
    """An (H, W) multi-instance heatmap with unit Gaussians at (x, y) centres."""
    points = torch.tensor(centres, dtype=torch.float64)[None, None]
    return render_heatmaps(points, sigma, (size, size))[0, 0]


def as_sorted(points: np.ndarray) -> list[tuple[float, float]]:
    return sorted((float(x), float(y)) for x, y in points)


@settings(max_examples=25, deadline=None)
@given(
    centres=st.lists(
        st.tuples(st.integers(5, 58), st.integers(5, 58)),
        min_size=1,
        max_size=5,
        unique=True,
    ).filter(
        lambda cs: all(
            max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 16 for i, a in enumerate(cs) for b in cs[:i]
        )
    ),
    sigma=st.floats(3.0, 5.0),
)
def test_decode_peaks_finds_separated_gaussians_exactly(
    centres: list[tuple[int, int]], sigma: float
) -> None:
    # A Gaussian on a pixel centre, 16+ px from any other, is symmetric about its row and column
    # within reach of the 7 x 7 median; the filtered plateau is symmetric too, so its centroid is
    # the centre. The border replicates (mode "nearest"), which breaks the symmetry, so the
    # windows of the plateau's pixels (the centre +-1 here, reaching 4 px) stay inside the map.
    expected = sorted((float(x), float(y)) for x, y in centres)
    found = decode_peaks(render_one(expected, sigma))
    assert as_sorted(found) == expected


def test_decode_peaks_sub_pixel_centres_within_half_a_pixel() -> None:
    centres = [(12.3, 12.8), (47.6, 14.2), (14.5, 48.1), (50.2, 49.6)]
    found = decode_peaks(render_one(centres, 3.5), threshold=0.3)
    assert found.shape == (4, 2)
    for x, y in centres:
        nearest = np.abs(found - [x, y]).max(axis=1).min()
        assert nearest <= 0.5


def test_decode_peaks_merges_a_plateau_into_its_centroid() -> None:
    heatmap = np.zeros((40, 50))
    heatmap[20:25, 30:41] = 1.0  # rows 20..24, cols 30..40: centre (x, y) = (35, 22)
    heatmap[5, 5] = 0.8  # one isolated pixel, kept because no median filter runs
    found = decode_peaks(heatmap, median_size=1, min_distance=2, threshold=0.5)
    assert found.tolist() == [[35.0, 22.0], [5.0, 5.0]]


def test_decode_peaks_threshold_is_absolute_on_the_median_filtered_map() -> None:
    bright = render_one([(16.0, 16.0)], 3.0)
    dim = render_one([(44.0, 44.0)], 3.0) * 0.6
    heatmap = torch.maximum(bright, dim)
    # the filtered peak is the median of the 7 x 7 window around each centre
    bright_peak = float(np.median(bright.numpy()[13:20, 13:20]))
    dim_peak = float(np.median(dim.numpy()[41:48, 41:48]))
    assert dim_peak < bright_peak < 1.0
    both = decode_peaks(heatmap, threshold=dim_peak - 1e-9)
    assert both.tolist() == [[16.0, 16.0], [44.0, 44.0]]  # by descending score
    assert decode_peaks(heatmap, threshold=dim_peak).tolist() == [[16.0, 16.0]]
    assert decode_peaks(heatmap, threshold=bright_peak).shape == (0, 2)


def test_decode_peaks_median_removes_a_spike_and_accepts_arrays() -> None:
    heatmap = render_one([(30.0, 20.0)], 4.0)
    heatmap[50, 50] = 5.0
    from_tensor = decode_peaks(heatmap)
    assert from_tensor.tolist() == [[30.0, 20.0]]
    assert np.array_equal(decode_peaks(heatmap.numpy()), from_tensor)


def test_decode_peaks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        decode_peaks(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        decode_peaks(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="median_size"):
        decode_peaks(np.zeros((8, 8)), median_size=0)
