"""The names docs/design.md promises import from `adaloss` and work together as documented."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

import adaloss
from adaloss.io import read_pts, write_pts
from adaloss.metrics import auc, nme, point_error


def test_public_names_are_exported() -> None:
    """`from adaloss import *` gives what the README and docs/design.md use, and nothing
    private; the metrics and io functions live in their submodules."""
    star: dict = {}
    exec("from adaloss import *", star)
    documented = {
        "render_heatmaps", "rescale_points", "Adaloss", "FixedSigma", "LinearDecay",
        "SigmaSchedule", "landmark_mse", "decode_argmax", "decode_peaks", "metrics", "io",
    }  # fmt: skip
    assert set(star) - {"__builtins__"} == documented == set(adaloss.__all__)
    assert star["metrics"].nme is nme and star["io"].read_pts is read_pts
    assert all(function.__module__ == "adaloss.metrics" for function in (point_error, nme, auc))
    assert all(function.__module__ == "adaloss.io" for function in (read_pts, write_pts))


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_loop() -> str:
    """The Python block under the README's "Adaloss in your own training loop"."""
    section = README.read_text(encoding="utf-8").split("## Adaloss in your own training loop")[1]
    return section.split("```python\n")[1].split("```")[0]


def rule_by_hand(losses: np.ndarray, sigma0: float, settings: dict) -> np.ndarray:
    """(T, K) losses -> (T + 1, K) sigma, the formula of docs/design.md written again in numpy:
    V_t over the last w losses, D_t = rho (1 - V_{t-1} / V_t), clipped to max_step, no growth
    unless the loss rose, sigma clipped to [sigma_min, sigma0]."""
    w, rho, floor, bound = (settings[k] for k in ("window", "rho", "sigma_min", "max_step"))
    sigma = [np.full(losses.shape[1], sigma0)]
    variance = [np.var(losses[max(0, t - w + 1) : t + 1], axis=0) for t in range(len(losses))]
    for t in range(len(losses)):
        step = np.zeros(losses.shape[1])
        if t >= w:  # V_t and V_{t-1} both exist: t + 1 >= w + 1 steps taken
            step = rho * (1 - variance[t - 1] / variance[t])
            step = np.clip(step, -bound, bound)
            step = np.where((step > 0) & ~(losses[t] > losses[t - 1]), 0.0, step)
        sigma.append(np.clip(sigma[-1] + step, floor, sigma0))
    return np.array(sigma)


def test_readme_loop_renders_every_batch_with_the_sigma_the_rule_gives() -> None:
    """The README's loop, run as written, with a spy on the renderer: the sigma each batch is
    rendered with is the rule's, replayed by hand from the losses the schedule saw."""
    rendered: list[torch.Tensor] = []

    def spy(points: torch.Tensor, sigma: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        rendered.append(torch.as_tensor(sigma).clone())
        return adaloss.render_heatmaps(points, sigma, size)

    torch.manual_seed(0)
    code = readme_loop()
    imports = "from adaloss import Adaloss, landmark_mse, render_heatmaps"
    assert imports in code
    namespace = {"render_heatmaps": spy, "__name__": "readme"}
    exec(
        compile(
            code.replace(imports, "from adaloss import Adaloss, landmark_mse"), "README", "exec"
        ),
        namespace,
    )
    schedule = namespace["schedule"]
    losses = np.array([record.loss for record in schedule.history])
    assert losses.shape == (10, 2) and len(rendered) == 10
    expected = rule_by_hand(losses, 16.0, schedule.config())
    used = np.array([sigma.tolist() for sigma in rendered])
    np.testing.assert_allclose(used, expected[:-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(schedule.sigma.numpy(), expected[-1], rtol=0, atol=1e-12)
    assert (expected[-1] < 16.0).all(), "the loop must move sigma for the replay to mean much"


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
