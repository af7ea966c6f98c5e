"""Gaussian target rendering and point rescaling, checked against closed forms worked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaloss.targets import render_heatmaps, rescale_points

NAN = float("nan")


def gaussian(dx: float, dy: float, sigma: float, dz: float = 0.0) -> float:
    return math.exp(-(dx * dx + dy * dy + dz * dz) / (2 * sigma * sigma))


def test_render_2d_matches_closed_form_at_chosen_pixels() -> None:
    points = torch.tensor([[[3.3, 5.7]]], dtype=torch.float64)  # x = 3.3, y = 5.7
    heatmaps = render_heatmaps(points, 2.0, (8, 10))
    assert heatmaps.shape == (1, 1, 8, 10)
    # pixel (row i, col j) sits at x = j, y = i
    for row, col in [(5, 3), (6, 4), (0, 0), (7, 9), (2, 8)]:
        expected = gaussian(col - 3.3, row - 5.7, 2.0)
        assert heatmaps[0, 0, row, col].item() == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_render_peak_is_one_on_a_pixel_centre() -> None:
    heatmaps = render_heatmaps(torch.tensor([[[4.0, 2.0]]]), 1.5, (6, 7))
    assert heatmaps[0, 0, 2, 4].item() == 1.0
    assert heatmaps.max().item() == 1.0


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(-3.0, 12.0),
    y=st.floats(-3.0, 9.0),
    sigma=st.floats(0.5, 8.0),
    row=st.integers(0, 5),
    col=st.integers(0, 8),
)
def test_render_2d_any_pixel_matches_closed_form(
    x: float, y: float, sigma: float, row: int, col: int
) -> None:
    heatmaps = render_heatmaps(torch.tensor([[[x, y]]], dtype=torch.float64), sigma, (6, 9))
    expected = gaussian(col - x, row - y, sigma)
    assert heatmaps[0, 0, row, col].item() == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_far_tail_is_exact_where_normal_and_zero_where_float32_underflows() -> None:
    # sigma 1, point at x = y = 0, row 0: the value at column j is exp(-j^2 / 2). float32's
    # smallest normal number is 1.18e-38 = exp(-87.3), and the renderer flushes values below
    # twice exp(-86.3) to zero: column 13 (exp(-84.5) = 2.1e-37) must be exact, column 14
    # (exp(-98) = 2.7e-43, subnormal in float32) and everything beyond exactly zero.
    heatmaps = render_heatmaps(torch.zeros(1, 1, 2), 1.0, (1, 40))[0, 0, 0]
    for col in range(14):
        assert heatmaps[col].item() == pytest.approx(math.exp(-col * col / 2), rel=1e-5)
    assert heatmaps[14:].eq(0).all()
    assert heatmaps[13].item() > 0


def test_render_3d_points_are_xyz_over_depth_height_width() -> None:
    points = torch.tensor([[[2.5, 1.0, 3.0]]], dtype=torch.float64)  # x, y, z
    heatmaps = render_heatmaps(points, 1.5, (4, 5, 6))  # (D, H, W)
    assert heatmaps.shape == (1, 1, 4, 5, 6)
    for depth, row, col in [(3, 1, 2), (3, 1, 3), (0, 4, 5), (1, 2, 0)]:
        expected = gaussian(col - 2.5, row - 1.0, 1.5, dz=depth - 3.0)
        assert heatmaps[0, 0, depth, row, col].item() == pytest.approx(expected, rel=1e-12)


def test_a_cubic_volume_keeps_each_coordinate_on_its_axis() -> None:
    # equal extents take the path that builds every axis's factor in one chain
    points = torch.tensor([[[2.5, 1.0, 3.0]]], dtype=torch.float64)  # x, y, z
    heatmaps = render_heatmaps(points, 1.5, (5, 5, 5))
    for depth, row, col in [(3, 1, 2), (3, 1, 3), (0, 4, 4), (1, 2, 0), (4, 0, 1)]:
        expected = gaussian(col - 2.5, row - 1.0, 1.5, dz=depth - 3.0)
        assert heatmaps[0, 0, depth, row, col].item() == pytest.approx(expected, rel=1e-12)


def test_per_landmark_sigma() -> None:
    points = torch.tensor([[[5.0, 5.0], [5.0, 5.0]]], dtype=torch.float64)
    heatmaps = render_heatmaps(points, torch.tensor([1.0, 3.0]), (11, 11))
    # pixel two columns right of the point
    assert heatmaps[0, 0, 5, 7].item() == pytest.approx(math.exp(-4 / 2), rel=1e-12)
    assert heatmaps[0, 1, 5, 7].item() == pytest.approx(math.exp(-4 / 18), rel=1e-12)


def test_instances_combine_by_max_not_sum() -> None:
    points = torch.tensor([[[[2.0, 2.0], [6.0, 2.0]]]], dtype=torch.float64)  # (1, 1, 2, 2)
    heatmaps = render_heatmaps(points, 1.5, (5, 9))
    assert heatmaps.shape == (1, 1, 5, 9)
    # x = 4 is 2 px from both instances: a sum would give twice this
    assert heatmaps[0, 0, 2, 4].item() == pytest.approx(gaussian(2, 0, 1.5), rel=1e-12)
    # x = 3 is 1 px from the first and 3 px from the second
    assert heatmaps[0, 0, 2, 3].item() == pytest.approx(gaussian(1, 0, 1.5), rel=1e-12)
    assert heatmaps[0, 0, 2, 2].item() == 1.0
    assert heatmaps[0, 0, 2, 6].item() == 1.0


def test_nan_points_render_nothing() -> None:
    points = torch.tensor(
        [[[[3.0, 2.0], [NAN, NAN]], [[NAN, 1.0], [NAN, NAN]], [[1.0, NAN], [4.0, 4.0]]]]
    )  # (1, 3, 2, 2)
    heatmaps = render_heatmaps(points, 1.0, (6, 6))
    alone = render_heatmaps(torch.tensor([[[3.0, 2.0], [4.0, 4.0]]]), 1.0, (6, 6))
    assert torch.equal(heatmaps[0, 0], alone[0, 0])
    assert torch.count_nonzero(heatmaps[0, 1]) == 0
    assert torch.equal(heatmaps[0, 2], alone[0, 1])
    assert not torch.isnan(heatmaps).any()


def test_normalize_mean_gives_unit_mean_and_keeps_empty_maps_zero() -> None:
    points = torch.tensor([[[3.0, 2.0], [NAN, NAN], [0.4, 7.9]]])
    heatmaps = render_heatmaps(points, 2.0, (9, 8), normalize="mean")
    means = heatmaps.double().mean(dim=(-1, -2))
    assert means[0, 0].item() == pytest.approx(1.0, rel=1e-6)
    assert means[0, 2].item() == pytest.approx(1.0, rel=1e-6)
    assert torch.count_nonzero(heatmaps[0, 1]) == 0
    # dividing by the mean keeps the shape: the ratio of two pixels is unchanged
    plain = render_heatmaps(points, 2.0, (9, 8))
    ratio = heatmaps[0, 0, 2, 3] / heatmaps[0, 0, 2, 5]
    assert ratio.item() == pytest.approx((plain[0, 0, 2, 3] / plain[0, 0, 2, 5]).item(), rel=1e-6)


def test_normalize_rejects_unknown_values_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'mean'"):
        render_heatmaps(torch.zeros(1, 1, 2), 1.0, (4, 4), normalize="max")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_output_dtype_follows_points(dtype: torch.dtype) -> None:
    points = torch.tensor([[[200.3, 100.6]]], dtype=torch.float64)
    reference = render_heatmaps(points, 4.0, (256, 256))
    heatmaps = render_heatmaps(points.to(dtype), 4.0, (256, 256))
    assert heatmaps.dtype == dtype
    # the only loss is the input rounding of the point and the output rounding of the values
    shifted = render_heatmaps(points.to(dtype).double(), 4.0, (256, 256))
    tolerance = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-6)
    assert torch.allclose(heatmaps.double(), shifted, atol=tolerance)
    if dtype in (torch.float32, torch.float64):
        assert torch.allclose(heatmaps.double(), reference, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_normalize_mean_in_every_dtype(dtype: torch.dtype) -> None:
    points = torch.tensor([[[[3.0, 2.0], [9.0, 9.0]]]], dtype=dtype)
    heatmaps = render_heatmaps(points, 2.0, (12, 12), normalize="mean")
    assert heatmaps.dtype == dtype
    # 144 values each rounded to the dtype (bfloat16 keeps 8 bits: relative error 2^-9)
    assert heatmaps.double().mean().item() == pytest.approx(1.0, abs=4e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    points = torch.tensor([[[[3.2, 4.1], [9.0, 1.5]], [[NAN, 0.0], [7.7, 7.7]]]])
    cpu = render_heatmaps(points, torch.tensor([1.5, 2.5]), (12, 14), normalize="mean")
    cuda = render_heatmaps(points.cuda(), torch.tensor([1.5, 2.5]), (12, 14), normalize="mean")
    assert cuda.device.type == "cuda"
    assert torch.allclose(cuda.cpu(), cpu, atol=1e-5)


@pytest.mark.parametrize(
    ("points", "sigma", "size", "message"),
    [
        (torch.zeros(1, 1, 3), 1.0, (4, 4), r"\(B, K, 2\)"),
        (torch.zeros(1, 2, 2), torch.ones(3), (4, 4), r"\(2,\) tensor"),
        (torch.zeros(1, 1, 2), 0.0, (4, 4), "positive"),
        (torch.zeros(1, 1, 2), float("inf"), (4, 4), "positive"),
        (torch.zeros(1, 1, 2, dtype=torch.int64), 1.0, (4, 4), "float16"),
        (torch.zeros(1, 1, 2), 1.0, (4,), r"\(H, W\)"),
        (torch.zeros(1, 1, 2), 1.0, (4, 0), r"\(H, W\)"),
    ],
)
def test_render_rejects_bad_input(
    points: torch.Tensor, sigma: float | torch.Tensor, size: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_heatmaps(points, sigma, size)


def test_rescale_hand_examples() -> None:
    # 64 -> 256 is a factor 4: pixel 0 of the small grid covers pixels 0..3 of the large one,
    # whose centre is 1.5; the outer edge -0.5 stays -0.5.
    points = torch.tensor([[0.0, 0.0], [63.0, 63.0], [-0.5, -0.5]])
    assert rescale_points(points, (64, 64), (256, 256)).tolist() == [
        [1.5, 1.5],
        [253.5, 253.5],
        [-0.5, -0.5],
    ]
    # non-square: x follows the widths (64 -> 256), y the heights (32 -> 64)
    assert rescale_points(torch.tensor([1.0, 1.0]), (32, 64), (64, 256)).tolist() == [5.5, 2.5]
    # volumes: z follows the depths (10 -> 5)
    moved = rescale_points(torch.tensor([1.0, 1.0, 1.0]), (10, 4, 4), (5, 8, 4))
    assert moved.tolist() == [1.0, 2.5, 0.25]


def test_rescale_keeps_nan() -> None:
    moved = rescale_points(torch.tensor([[NAN, 3.0]]), (64, 64), (256, 256))
    assert math.isnan(moved[0, 0].item())
    assert moved[0, 1].item() == 13.5


@settings(max_examples=50, deadline=None)
@given(
    x=st.floats(-1.0, 600.0),
    y=st.floats(-1.0, 600.0),
    src=st.tuples(st.integers(1, 600), st.integers(1, 600)),
    dst=st.tuples(st.integers(1, 600), st.integers(1, 600)),
)
def test_rescale_round_trip(x: float, y: float, src: tuple[int, int], dst: tuple[int, int]) -> None:
    points = torch.tensor([[x, y]], dtype=torch.float64)
    there = rescale_points(points, src, dst)
    # the forward map by hand, x with widths and y with heights
    assert there[0, 0].item() == pytest.approx((x + 0.5) * dst[1] / src[1] - 0.5, abs=1e-9)
    assert there[0, 1].item() == pytest.approx((y + 0.5) * dst[0] / src[0] - 0.5, abs=1e-9)
    back = rescale_points(there, dst, src)
    assert torch.allclose(back, points, atol=1e-9)


def test_rescale_keeps_dtype_and_rejects_mismatched_axes() -> None:
    assert rescale_points(torch.zeros(2, 2, dtype=torch.float16), (4, 4), (8, 8)).dtype == (
        torch.float16
    )
    with pytest.raises(ValueError, match="same number of axes"):
        rescale_points(torch.zeros(1, 2), (4, 4), (4, 4, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        rescale_points(torch.zeros(1, 2), (4, 4, 4), (8, 8, 8))


def test_render_is_differentiable_in_the_points() -> None:
    # d/dx exp(-((j - x)^2 + (i - y)^2) / (2 s^2)) = value * (j - x) / s^2, likewise for y
    points = torch.tensor([[[[2.3, 1.6], [7.0, 7.0]]]], dtype=torch.float64, requires_grad=True)
    heatmaps = render_heatmaps(points, 1.5, (6, 8), normalize="mean")
    plain = render_heatmaps(points, 1.5, (6, 8))
    plain[0, 0, 2, 3].backward()
    value = gaussian(3 - 2.3, 2 - 1.6, 1.5)
    assert points.grad is not None
    expected = [[value * (3 - 2.3) / 1.5**2, value * (2 - 1.6) / 1.5**2], [0.0, 0.0]]
    assert torch.allclose(points.grad[0, 0], torch.tensor(expected, dtype=torch.float64))
    assert heatmaps.requires_grad


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_autograd_and_in_place_paths_render_the_same(dtype: torch.dtype) -> None:
    # Without autograd the factors are computed in place; with it (through the points or the
    # widths), out of place. Same steps, so the same bits, for one and several instances, 2-D
    # and 3-D, a missing point and per-landmark widths; the caller's tensors stay as they were.
    generator = torch.Generator().manual_seed(3)
    points = (torch.rand(2, 3, 2, 3, generator=generator) * 11).to(dtype)
    points[0, 1, 0] = math.nan
    sigma = torch.tensor([0.7, 2.0, 5.0], dtype=dtype)
    cases = [
        (points[..., :2], (12, 16)),  # 2 instances
        (points[:, :, 0, :2], (12, 16)),  # one
        (points, (5, 12, 16)),  # 3-D
        (points[..., :2], (12, 12)),  # equal extents: one chain for both axes
        (points, (12, 12, 12)),
    ]
    for batch, size in cases:
        before = (batch.clone(), sigma.clone())
        in_place = render_heatmaps(batch, sigma, size)
        through_points = render_heatmaps(batch.clone().requires_grad_(True), sigma, size)
        through_sigma = render_heatmaps(batch, sigma.clone().requires_grad_(True), size)
        assert not in_place.requires_grad
        assert through_points.requires_grad and through_sigma.requires_grad
        assert torch.equal(in_place, through_points.detach())
        assert torch.equal(in_place, through_sigma.detach())
        assert torch.equal(torch.nan_to_num(batch), torch.nan_to_num(before[0]))  # NaN != NaN
        assert torch.equal(sigma, before[1])
