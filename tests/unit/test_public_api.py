"""The names docs/design.md promises import from `adaloss` and work together as documented."""

from __future__ import annotations

import math

import torch

import adaloss
from adaloss.io import read_pts, write_pts
from adaloss.metrics import auc, failure_rate, match_points, model_ntv, nme, ntv, point_error


def test_public_names_are_exported() -> None:
    for name in (
        "render_heatmaps",
        "Adaloss",
        "FixedSigma",
        "LinearDecay",
        "landmark_mse",
        "decode_argmax",
        "decode_peaks",
    ):
        assert callable(getattr(adaloss, name))
    for function in (
        point_error,
        nme,
        failure_rate,
        auc,
        match_points,
        ntv,
        model_ntv,
        read_pts,
        write_pts,
    ):
        assert callable(function)


def test_readme_loop_shrinks_sigma_only_through_the_rule() -> None:
    """The README's ten-line loop runs, and sigma never leaves [sigma_min, sigma0]."""
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 2, 5, padding=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, points = torch.rand(8, 1, 64, 64), torch.rand(8, 2, 2) * 63
    schedule = adaloss.Adaloss(num_landmarks=2, sigma0=16.0)
    for _ in range(10):
        target = adaloss.render_heatmaps(points, schedule.sigma, (64, 64))
        losses = adaloss.landmark_mse(model(images), target)
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
        schedule.step(losses.detach())
    assert schedule.sigma.shape == (2,)
    assert bool(((schedule.sigma >= 1.0) & (schedule.sigma <= 16.0)).all())


def test_render_then_decode_recovers_a_point_in_image_pixels() -> None:
    """Image point -> heatmap pixels -> render -> decode -> image pixels, at 1/4 resolution."""
    image_point = torch.tensor([[[101.0, 37.0]]])  # (B=1, K=1, 2) in a 256 x 256 image
    heatmap_point = adaloss.rescale_points(image_point, (256, 256), (64, 64))
    # (101 + 0.5) * 64 / 256 - 0.5 = 24.875 ; (37 + 0.5) / 4 - 0.5 = 8.875
    assert torch.allclose(heatmap_point, torch.tensor([[[24.875, 8.875]]]))
    heatmap = adaloss.render_heatmaps(heatmap_point, 2.0, (64, 64))
    decoded, score = adaloss.decode_argmax(heatmap, refine="dark")
    back = adaloss.rescale_points(decoded, (64, 64), (256, 256))
    assert math.dist(back[0, 0].tolist(), [101.0, 37.0]) < 4 * 0.05
    assert 0.9 < float(score) <= 1.0
