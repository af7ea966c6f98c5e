"""Image-formation primitives against closed forms: areas, line integrals, variances."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.synthetic import imaging


def test_ellipse_coverage_has_the_ellipse_area() -> None:
    cover = imaging.ellipse_coverage((40.3, 31.7), (17.0, 9.0), 0.6, (80, 80))
    assert cover.sum() == pytest.approx(np.pi * 17 * 9, rel=0.01)
    assert cover[32, 40] == 1.0 and cover[0, 0] == 0.0


def test_polygon_coverage_has_the_shoelace_area() -> None:
    vertices = np.array([[10.3, 10.2], [50.7, 14.0], [44.0, 40.5], [20.0, 52.1]])
    x, y = vertices.T
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    cover = imaging.polygon_coverage(vertices, (64, 64))
    assert cover.sum() == pytest.approx(area, rel=0.01)
    # clockwise or counter-clockwise, the same shape
    np.testing.assert_array_equal(cover, imaging.polygon_coverage(vertices[::-1], (64, 64)))


def test_thick_polyline_covers_length_times_width_plus_round_caps() -> None:
    points = np.stack([np.linspace(8, 56, 25), np.full(25, 30.3)], axis=1)
    cover = imaging.polyline_coverage(points, 4.0, (64, 64))
    assert cover.sum() == pytest.approx(48 * 4 + np.pi * 2**2, rel=0.01)


def test_thin_polyline_keeps_its_line_integral() -> None:
    # a 0.4 px wire over 40 px integrates to 16 px^2 of full attenuation, not to nothing
    cover = imaging.polyline_coverage([[10.0, 20.2], [50.0, 20.2]], 0.4, (40, 64))
    assert cover.sum() == pytest.approx(0.4 * 40, rel=0.05)
    assert cover.max() <= 0.4


def test_shapes_outside_the_canvas_draw_nothing() -> None:
    size = (16, 16)
    assert imaging.ellipse_coverage((-30, -30), (5, 5), 0.0, size).sum() == 0
    assert imaging.polygon_coverage([[40, 40], [50, 40], [45, 50]], size).sum() == 0
    assert imaging.polyline_coverage([[-20, 5], [-10, 5]], 2.0, size).sum() == 0


def test_paint_composites_colour_by_coverage() -> None:
    canvas = np.zeros((3, 2, 2), np.float32)
    cover = np.array([[1.0, 0.5], [0.0, 0.25]], np.float32)
    imaging.paint(canvas, cover, [1.0, 0.5, 0.0], opacity=0.8)
    np.testing.assert_allclose(canvas[0], 0.8 * cover)
    np.testing.assert_allclose(canvas[1], 0.4 * cover)
    np.testing.assert_allclose(canvas[2], 0.0)


def test_smooth_field_is_standardised_with_the_requested_correlation() -> None:
    rng = np.random.default_rng(0)
    corr = 4.0
    fields = imaging.smooth_field(rng, 64, (128, 128), corr)
    np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(fields.std(axis=(1, 2)), 1.0, rtol=1e-4)
    # white noise filtered by a Gaussian of std c has autocorrelation exp(-d^2 / (4 c^2))
    for lag in (2, 4, 8):
        rho = (fields * np.roll(fields, lag, axis=2)).mean()
        assert rho == pytest.approx(np.exp(-(lag**2) / (4 * corr**2)), abs=0.04)


def test_noise_variance_is_signal_over_photons_plus_read_noise() -> None:
    rng = np.random.default_rng(1)
    level = np.full((4, 100, 100), 0.4, np.float32)
    photons = np.array([50.0, 200.0, 800.0, 3200.0])
    noisy = imaging.poisson_gaussian_noise(rng, level, photons, 0.02)
    expected = 0.4 / photons + 0.02**2
    np.testing.assert_allclose(noisy.var(axis=(1, 2)), expected, rtol=0.05)
    np.testing.assert_allclose(noisy.mean(axis=(1, 2)), 0.4, atol=0.005)


def test_gaussian_blur_keeps_the_mean_and_spreads_a_point() -> None:
    images = np.zeros((2, 1, 41, 41), np.float32)
    images[:, 0, 20, 20] = 1.0
    out = imaging.gaussian_blur(images, [0.0, 3.0])
    np.testing.assert_array_equal(out[0], images[0])  # sigma 0: unchanged
    assert out[1].sum() == pytest.approx(1.0, rel=1e-4)
    xs = np.arange(41)[None, :]
    variance = (out[1, 0] * ((xs - 20) ** 2)).sum()
    assert variance == pytest.approx(9.0, rel=0.02)


def test_resample_and_splat_keep_the_line_integral() -> None:
    path = np.array([[4.0, 4.0], [20.0, 4.0], [20.0, 12.0]])
    samples = imaging.resample_polyline(path, 0.5)
    steps = np.linalg.norm(np.diff(samples, axis=0), axis=1)
    np.testing.assert_allclose(steps[steps > 0.49], 0.5, atol=0.3)  # the corner shortcut
    np.testing.assert_allclose(samples[[0, -1]], path[[0, -1]])
    density = imaging.splat_points(
        2, (16, 24), np.zeros(len(samples), int), samples, np.full(len(samples), 0.5)
    )
    assert density[0].sum() == pytest.approx(0.5 * len(samples))
    assert density[1].sum() == 0.0
    # bilinear: a sample at (2.25, 3.5) splits 0.75/0.25 across x and 0.5/0.5 across y
    one = imaging.splat_points(1, (8, 8), [0], [[2.25, 3.5]], [1.0])[0]
    np.testing.assert_allclose(one[3:5, 2:4], [[0.375, 0.125], [0.375, 0.125]])
