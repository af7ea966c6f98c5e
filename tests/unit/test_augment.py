"""Rotation augmentation: the image and its points must move by exactly the same transform."""

from __future__ import annotations

import math

import pytest
import torch

from adaloss.decode import decode_argmax
from adaloss.targets import render_heatmaps
from bench.run.augment import random_angles, random_rotation, rotate, rotate_points


def centroid(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) non-negative maps -> (B, K, 2) intensity-weighted (x, y) centres."""
    height, width = heatmaps.shape[-2:]
    ys = torch.arange(height, dtype=heatmaps.dtype)[:, None]
    xs = torch.arange(width, dtype=heatmaps.dtype)[None, :]
    mass = heatmaps.sum(dim=(-2, -1))
    x = (heatmaps * xs).sum(dim=(-2, -1)) / mass
    y = (heatmaps * ys).sum(dim=(-2, -1)) / mass
    return torch.stack([x, y], dim=-1)


def test_quarter_turn_is_an_exact_pixel_permutation() -> None:
    # R(90 deg) maps (x, y) to (W - 1 - y, x) about the centre: out[i, j] = in[W - 1 - j, i],
    # which is numpy's clockwise rot90 (k = -1).
    images = torch.rand(2, 3, 9, 9, dtype=torch.float64).float()
    rotated, _ = rotate(images, torch.zeros(2, 1, 2), torch.full((2,), math.pi / 2))
    expected = torch.rot90(images, k=-1, dims=(-2, -1))
    torch.testing.assert_close(rotated, expected, atol=1e-5, rtol=0)


def test_quarter_turn_point_by_hand() -> None:
    points = torch.tensor([[[1.0, 2.0]]])  # x = 1, y = 2 in a 9 x 9 image, centre (4, 4)
    moved = rotate_points(points, torch.tensor([math.pi / 2]), (9, 9))
    torch.testing.assert_close(moved, torch.tensor([[[6.0, 1.0]]]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(48, 48), (40, 56)])
@pytest.mark.parametrize("degrees", [-30.0, -7.5, 12.0, 30.0])
def test_rendered_point_and_rotated_point_agree(size: tuple[int, int], degrees: float) -> None:
    height, width = size
    points = torch.tensor([[[20.3, 17.6], [28.0, 25.2]]])  # (1, K=2, 2)
    images = render_heatmaps(points, 2.5, size)  # the points drawn as images, (1, 2, H, W)
    angles = torch.tensor([math.radians(degrees)])
    rotated_images, rotated_points = rotate(images, points, angles)

    # A Gaussian's centroid survives bilinear resampling to well within a tenth of a pixel.
    torch.testing.assert_close(centroid(rotated_images), rotated_points, atol=0.05, rtol=0)
    decoded, _ = decode_argmax(rotated_images)
    assert (decoded - rotated_points).abs().max() <= 0.5
    # Independent check of the point map: rotation about the centre keeps the distance to it.
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2])
    torch.testing.assert_close(
        (rotated_points - centre).norm(dim=-1), (points - centre).norm(dim=-1)
    )


def test_points_leaving_the_frame_become_missing() -> None:
    points = torch.tensor([[[0.0, 0.0], [5.0, 5.0], [math.nan, math.nan]]])  # a corner, centre
    moved = rotate_points(points, torch.tensor([math.radians(45.0)]), (11, 11))
    assert torch.isnan(moved[0, 0]).all()  # the corner swings out (distance 7.07 > 5.5)
    torch.testing.assert_close(moved[0, 1], torch.tensor([5.0, 5.0]))
    assert torch.isnan(moved[0, 2]).all()


def test_multi_instance_points_move_like_single_ones() -> None:
    single = torch.tensor([[[3.0, 4.0], [6.0, 2.0]]])  # (1, 2, 2)
    multi = single.unsqueeze(2).expand(1, 2, 3, 2).clone()  # (1, 2, 3, 2)
    angles = torch.tensor([0.3])
    expected = rotate_points(single, angles, (10, 12)).unsqueeze(2).expand(1, 2, 3, 2)
    torch.testing.assert_close(rotate_points(multi, angles, (10, 12)), expected)


def test_angles_are_seeded_and_bounded() -> None:
    first = random_angles(1000, 30.0, torch.Generator().manual_seed(4))
    again = random_angles(1000, 30.0, torch.Generator().manual_seed(4))
    other = random_angles(1000, 30.0, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.abs().max() <= math.radians(30.0)
    assert first.min() < math.radians(-25.0) and first.max() > math.radians(25.0)


def test_random_rotation_moves_each_image_by_its_own_angle() -> None:
    points = torch.tensor([[[20.0, 12.0]], [[14.0, 22.0]]])  # (B=2, K=1, 2)
    images = render_heatmaps(points, 2.0, (32, 32))
    rotated_images, rotated_points = random_rotation(
        images, points, 30.0, torch.Generator().manual_seed(0)
    )
    angles = random_angles(2, 30.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(rotated_points, rotate_points(points, angles, (32, 32)))
    torch.testing.assert_close(centroid(rotated_images), rotated_points, atol=0.05, rtol=0)
