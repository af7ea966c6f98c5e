"""The readings of the Adaloss rule the paper leaves open: variance_of, loss_scale,
reset_on_change, and the paper-literal constructor. Expected values are worked out by hand in
the comments (fractions) or come from numpy's variance, never from the implementation."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from adaloss.schedules import Adaloss

# variance_of="iteration_losses", w = 2, rho = 0.9, sigma0 = 5, one landmark.
#  t  iteration losses  L_t  rows of the window  V_t                           D_t             s'
#  1  1, 3              2    -                   -                             0               5
#  2  2, 4              3    1, 3, 2, 4          (9+1+1+9)/16 = 5/4 (mean 5/2)  0               5
#  3  3, 3              3    2, 4, 3, 3          (1+1+0+0)/4 = 1/2 (mean 3)     .9(1 - 5/2)
#                                                                              = -27/20  5 - 27/20
# The epoch-means reading of the same means (2, 3, 3): V_2 = 1/4, V_3 = 0 -> no step.
ITERATION_ROWS = [[[1.0], [3.0]], [[2.0], [4.0]], [[3.0], [3.0]]]


def test_iteration_losses_variance_by_hand() -> None:
    schedule = Adaloss(1, 5.0, window=2, variance_of="iteration_losses")
    sigma = [schedule.step(torch.tensor(rows)).item() for rows in ITERATION_ROWS]
    assert sigma == pytest.approx([5, 5, 5 - 27 / 20])
    records = schedule.history
    assert [r.loss[0] for r in records] == pytest.approx([2, 3, 3])
    assert records[1].variance[0] == pytest.approx(5 / 4)
    assert records[2].variance[0] == pytest.approx(1 / 2)
    assert records[2].delta[0] == pytest.approx(-27 / 20)

    literal = Adaloss(1, 5.0, window=2)
    for rows in ITERATION_ROWS:
        literal.step([float(np.mean(rows))])
    assert literal.sigma.item() == 5.0
    assert literal.history[2].variance[0] == 0.0


def test_iteration_losses_match_numpy_over_uneven_steps() -> None:
    rng = np.random.default_rng(3)
    steps = [rng.uniform(0.5, 2.0, size=(n, 3)) for n in (4, 2, 5, 3, 1, 6)]
    schedule = Adaloss(3, 10.0, window=3, variance_of="iteration_losses", restrict=False)
    for t, rows in enumerate(steps, start=1):
        schedule.step(torch.from_numpy(rows))
        if t >= 3:
            expected = np.var(np.concatenate(steps[t - 3 : t]), axis=0)
            np.testing.assert_allclose(schedule.history[-1].variance, expected, rtol=1e-12)


def test_a_mean_vector_counts_as_one_iteration() -> None:
    by_rows = Adaloss(2, 4.0, variance_of="iteration_losses")
    by_means = Adaloss(2, 4.0)
    for losses in ([3.0, 1.0], [2.0, 1.5], [2.5, 0.5], [1.0, 0.25], [1.5, 0.5]):
        assert torch.equal(by_rows.step(losses), by_means.step(losses))


# loss_scale="relative", w = 2, rho = 0.9, sigma0 = 5: raw losses 2, 2, 2 with target energies
# 1, 2, 4 are seen as 2, 1, 1/2: V_2 = var(2, 1) = 1/4, V_3 = var(1, 1/2) = 1/16,
# D_3 = .9 (1 - 4) = -27/10, sigma 5 - 2.7 = 2.3. Raw, the constant loss has V = 0: no step.
def test_relative_loss_scale_by_hand() -> None:
    relative = Adaloss(1, 5.0, window=2, loss_scale="relative")
    raw = Adaloss(1, 5.0, window=2)
    for energy in (1.0, 2.0, 4.0):
        relative.step([2.0], target_energy=[energy])
        raw.step([2.0], target_energy=[energy])  # ignored by the raw scale
    assert relative.sigma.item() == pytest.approx(2.3)
    assert [r.loss[0] for r in relative.history] == pytest.approx([2, 1, 0.5])
    assert raw.sigma.item() == 5.0


def test_relative_loss_scale_is_invariant_to_the_energy_unit() -> None:
    losses = [[4.0, 1.0], [3.0, 0.8], [3.5, 0.2], [1.0, 0.1], [2.0, 0.3]]
    energies = [[0.5, 0.25]] * len(losses)
    scaled = Adaloss(2, 6.0, loss_scale="relative")
    plain = Adaloss(2, 6.0)
    for row, energy in zip(losses, energies, strict=True):
        scaled.step(row, target_energy=energy)
        plain.step([x / e for x, e in zip(row, energy, strict=True)])
    assert torch.allclose(scaled.sigma, plain.sigma, rtol=0, atol=1e-12)


@pytest.mark.parametrize("energy", [None, [0.0], [-1.0], [math.nan], [1.0, 2.0]])
def test_relative_loss_scale_needs_a_positive_energy_per_landmark(energy: object) -> None:
    schedule = Adaloss(1, 5.0, loss_scale="relative")
    with pytest.raises(ValueError, match="target_energy"):
        schedule.step([1.0], target_energy=energy)  # type: ignore[arg-type]
    assert schedule.steps_taken == 0


# reset_on_change, w = 2, rho = 0.9, sigma0 = 5, sigma_min = 1, losses 4, 2, 1, 1/2, 1/4, 1/8:
#  t  L     V_t (window of 2)    literal D / s'             with reset D / s'
#  2  2     var(4, 2) = 1        0 / 5                      0 / 5
#  3  1     var(2, 1) = 1/4      .9(1 - 4) = -2.7 / 2.3     -2.7 / 2.3, then the window restarts
#  4  1/2   var(1, 1/2) = 1/16   -2.7 / 1 (floor)           V undefined (1 step of 2) / 2.3
#  5  1/4   1/64                 -2.7 / 1                   V = 1/64, no V_4: 0 / 2.3
#  6  1/8   1/256                -2.7 / 1                   .9(1 - 4) = -2.7 / 1 (floor)
RESET_LOSSES = [4.0, 2.0, 1.0, 0.5, 0.25, 0.125]


def test_reset_on_change_by_hand() -> None:
    literal = Adaloss(1, 5.0, window=2)
    reset = Adaloss(1, 5.0, window=2, reset_on_change=True)
    literal_sigma = [literal.step([x]).item() for x in RESET_LOSSES]
    reset_sigma = [reset.step([x]).item() for x in RESET_LOSSES]
    assert literal_sigma == pytest.approx([5, 5, 2.3, 1, 1, 1])
    assert reset_sigma == pytest.approx([5, 5, 2.3, 2.3, 2.3, 1])
    variance = [r.variance[0] for r in reset.history]
    assert math.isnan(variance[3])
    assert variance[4] == pytest.approx(1 / 64)


def test_reset_is_per_landmark() -> None:
    # landmark 0 follows RESET_LOSSES; landmark 1's constant loss never moves its sigma, so its
    # window never restarts and its variance is defined from t = 2 on.
    schedule = Adaloss(2, 5.0, window=2, reset_on_change=True)
    for x in RESET_LOSSES:
        schedule.step([x, 1.0])
    variance = np.array([r.variance for r in schedule.history])
    assert math.isnan(variance[3, 0])
    assert np.all(variance[1:, 1] == 0)


OPTIONS = [
    {"variance_of": "iteration_losses"},
    {"loss_scale": "relative"},
    {"reset_on_change": True},
    {"variance_of": "iteration_losses", "loss_scale": "relative", "reset_on_change": True},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_state_dict_round_trip_follows_the_same_trajectory(options: dict) -> None:
    rng = np.random.default_rng(7)
    steps = [
        torch.from_numpy(rng.uniform(0.1, 3.0, size=(int(rng.integers(1, 4)), 2)))
        for _ in range(12)
    ]
    energies = [torch.from_numpy(rng.uniform(0.5, 2.0, size=2)) for _ in steps]

    def feed(schedule: Adaloss, t: int) -> torch.Tensor:
        losses = steps[t] if options.get("variance_of") else steps[t].mean(dim=0)
        return schedule.step(losses, target_energy=energies[t])

    whole = Adaloss(2, 8.0, window=3, sigma_min=0.5, restrict=False, **options)
    expected = [feed(whole, t) for t in range(12)]
    first = Adaloss(2, 8.0, window=3, sigma_min=0.5, restrict=False, **options)
    for t in range(5):
        feed(first, t)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = Adaloss(2, 8.0, window=3, sigma_min=0.5, restrict=False, **options)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    for t in range(5, 12):
        assert torch.equal(feed(second, t), expected[t])
    assert len({float(s.min()) for s in expected}) > 1  # the trajectory did move


def test_load_state_dict_rejects_another_reading() -> None:
    saved = Adaloss(1, 5.0, reset_on_change=True).state_dict()
    with pytest.raises(ValueError, match="reset_on_change"):
        Adaloss(1, 5.0).load_state_dict(saved)


def test_state_saved_before_the_readings_existed_still_loads() -> None:
    whole = Adaloss(1, 3.0)
    first = Adaloss(1, 3.0)
    losses = [4, 3, 3.5, 2, 2.5, 3, 2, 2]
    for loss in losses[:5]:
        whole.step([loss])
        first.step([loss])
    old = first.state_dict()
    for key in ("recent_counts", "previous_loss", "age"):
        del old[key]
    for key in ("variance_of", "loss_scale", "reset_on_change"):
        del old["config"][key]
    second = Adaloss(1, 3.0)
    second.load_state_dict(old)
    for loss in losses[5:]:
        assert torch.equal(second.step([loss]), whole.step([loss]))


def test_paper_constructor_is_the_literal_rule() -> None:
    paper = Adaloss.paper(2, 16.0)
    default = Adaloss(2, 16.0).config()
    assert torch.equal(paper.config().pop("sigma0"), default.pop("sigma0"))
    # the default is the selected reading: the literal rule with a bounded step
    assert {k: v for k, v in paper.config().items() if k != "sigma0"} == default | {
        "max_step": None
    }
    assert default["max_step"] == 4.0
    assert (paper.window, paper.rho, paper.max_step, paper.restrict) == (3, 0.9, None, True)
    assert (paper.variance_of, paper.loss_scale, paper.reset_on_change) == (
        "epoch_means",
        "raw",
        False,
    )
    assert Adaloss.paper(1, 4.0, sigma_min=0.5).sigma_min == 0.5
    with pytest.raises(ValueError, match="max_step"):
        Adaloss.paper(1, 4.0, max_step=1.0)


def test_the_default_bounds_the_step_that_takes_the_literal_rule_to_its_floor() -> None:
    # L = 10, 1, 1, 1.3 with w = 3: V_3 = var(10, 1, 1) = 18, V_4 = var(1, 1, 1.3) = 0.02, so
    # D_4 = 0.9 * (1 - 18 / 0.02) = -809.1: the literal rule lands on the floor (64 -> 1),
    # the default moves 4 px (64 -> 60)
    paper, default = Adaloss.paper(1, 64.0), Adaloss(1, 64.0)
    for loss in (10.0, 1.0, 1.0):
        assert paper.step([loss]).item() == default.step([loss]).item() == 64.0
    assert paper.step([1.3]).item() == 1.0
    assert default.step([1.3]).item() == pytest.approx(60.0)


@pytest.mark.parametrize(("option", "value"), [("variance_of", "epochs"), ("loss_scale", "log")])
def test_unknown_readings_are_refused(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        Adaloss(1, 4.0, **{option: value})
