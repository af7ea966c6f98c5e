"""Learned sigma against closed forms: the mass of the target, the loss of an all-zero
prediction, and widths that no gradient can make non-positive."""

from __future__ import annotations

import math

import pytest
import torch

from adaloss.learned_sigma import LearnedSigma, constant_mass_heatmaps, learned_sigma_loss


@pytest.mark.parametrize(
    "sigma", [torch.tensor([3.0]), torch.tensor([[2.0, 4.0]]), torch.tensor([1.5])]
)
def test_a_target_integrates_to_gamma(sigma: torch.Tensor) -> None:
    # a sampled Gaussian of width >= 1.5 px sums to its integral within 1e-8 (Poisson
    # summation: the first correction is 2 exp(-2 pi^2 sigma^2)), far from the border
    maps = constant_mass_heatmaps(
        torch.tensor([[[31.0, 30.0]]]), sigma.double(), (64, 64), gamma=100.0
    )
    assert maps.sum().item() == pytest.approx(100.0, rel=1e-7)


def test_peak_and_axes_by_hand() -> None:
    maps = constant_mass_heatmaps(
        torch.tensor([[[5.0, 4.0]]]),
        torch.tensor([[2.0, 1.0]], dtype=torch.float64),
        (9, 11),
        gamma=1.0,
    )
    peak = 1 / (2 * math.pi * 2.0 * 1.0)
    assert maps[0, 0, 4, 5].item() == pytest.approx(peak)
    assert maps[0, 0, 4, 7].item() == pytest.approx(peak * math.exp(-(2**2) / (2 * 2.0**2)))  # x
    assert maps[0, 0, 5, 5].item() == pytest.approx(peak * math.exp(-1 / 2))  # y, sigma_y = 1


def test_an_unlabelled_point_renders_nothing() -> None:
    points = torch.tensor([[[5.0, 4.0], [math.nan, math.nan]]])
    maps = constant_mass_heatmaps(points, torch.tensor([2.0, 2.0]), (9, 11))
    assert maps[0, 1].abs().sum() == 0 and maps[0, 0].sum() > 0


def test_loss_of_an_all_zero_prediction_by_hand() -> None:
    # sum of target^2 = gamma^2 / (4 pi^2 sigma^4) * sum exp(-d^2 / sigma^2)
    #                 = gamma^2 / (4 pi^2 sigma^4) * pi sigma^2 = gamma^2 / (4 pi sigma^2)
    gamma, alpha, sigma = 100.0, 5.0, 3.0
    points = torch.tensor([[[31.0, 30.0]], [[math.nan, math.nan]]])  # image 1: not labelled
    loss = learned_sigma_loss(
        torch.zeros(2, 1, 64, 64), points, torch.tensor([sigma], dtype=torch.float64),
        gamma=gamma, alpha=alpha,
    )  # fmt: skip
    fit = gamma**2 / (4 * math.pi * sigma**2) / (64 * 64)
    assert loss.item() == pytest.approx(fit + alpha * sigma**2, rel=1e-7)


def test_the_penalty_is_the_product_of_the_widths_when_anisotropic() -> None:
    target = constant_mass_heatmaps(
        torch.tensor([[[8.0, 8.0]]]), torch.tensor([[2.0, 3.0]]), (16, 16)
    )
    loss = learned_sigma_loss(
        target, torch.tensor([[[8.0, 8.0]]]), torch.tensor([[2.0, 3.0]]), alpha=0.5
    )
    assert loss.item() == pytest.approx(0.5 * 2.0 * 3.0)  # a perfect prediction: the penalty only


def test_the_penalty_pulls_sigma_down_and_the_fit_pushes_it_towards_the_prediction() -> None:
    widths = LearnedSigma(1, 4.0)
    assert widths().item() == pytest.approx(4.0)
    prediction = constant_mass_heatmaps(
        torch.tensor([[[16.0, 16.0]]]), torch.tensor([2.0]), (32, 32)
    )
    loss = learned_sigma_loss(
        prediction.float(), torch.tensor([[[16.0, 16.0]]]), widths(), alpha=0.0
    )
    loss.sum().backward()
    assert widths.raw.grad.item() > 0  # the prediction is narrower: descending shrinks sigma


@pytest.mark.parametrize("anisotropic", [False, True])
def test_sigma_stays_above_its_floor_under_any_gradient(anisotropic: bool) -> None:
    widths = LearnedSigma(3, 4.0, sigma_min=0.5, anisotropic=anisotropic)
    optimizer = torch.optim.SGD(widths.parameters(), lr=1e12)
    for _ in range(3):
        optimizer.zero_grad()
        (widths().sum() * 1e6).backward()  # a huge push towards zero width
        optimizer.step()
    assert bool((widths() >= 0.5).all()) and bool(torch.isfinite(widths()).all())
    assert widths().shape == ((3, 2) if anisotropic else (3,))


def test_bad_widths_are_refused() -> None:
    with pytest.raises(ValueError, match="0 < sigma_min < sigma0"):
        LearnedSigma(2, 0.4, sigma_min=0.5)
    with pytest.raises(ValueError, match=r"sigma must be \(2,\) or \(2, 2\)"):
        constant_mass_heatmaps(torch.zeros(1, 2, 2), torch.ones(3), (4, 4))
