"""Sigma schedules: a hand-computed Adaloss trajectory and the rule's properties.

Expected values come from the rule written out by hand (fractions below) or from numpy's own
variance, never from the implementation.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaloss.schedules import Adaloss, FixedSigma, LinearDecay, SigmaSchedule, StepRecord

# Hand example: one landmark, w = 3, rho = 0.9, sigma0 = 3, sigma_min = 1.
# s' is sigma_{t+1}; V_t is the population variance of the window.
#
#  t  L_t  window       mean  V_t                               D_t                          s'
#  1  4    -            -     -                                 0 (t < w+1)                  3
#  2  3    -            -     -                                 0                            3
#  3  3.5  4, 3, 3.5    7/2   (1/4 + 1/4 + 0)/3 = 1/6           0 (t < w+1)                  3
#  4  2    3, 3.5, 2    17/6  (1/36 + 16/36 + 25/36)/3 = 7/18   .9(1 - (1/6)/(7/18)) = 18/35
#                                                                 > 0 but L fell -> 0          3
#  5  2.5  3.5, 2, 2.5  8/3   (25/36 + 16/36 + 1/36)/3 = 7/18   .9(1 - 1) = 0                3
#  6  3    2, 2.5, 3    5/2   (1/4 + 0 + 1/4)/3 = 1/6           .9(1 - (7/18)/(1/6)) = -6/5  9/5
#  7  2    2.5, 3, 2    5/2   1/6                               0                            9/5
#  8  2    3, 2, 2      7/3   (4/9 + 1/9 + 1/9)/3 = 2/9         .9(1 - 3/4) = 9/40
#                                                                 > 0, L_8 = L_7 -> 0          9/5
#  9  2    2, 2, 2      2     0                                 0 (V_t <= eps)               9/5
# 10  1    2, 2, 1      5/3   (1/9 + 1/9 + 4/9)/3 = 2/9         0 (V_{t-1} <= eps)           9/5
# 11  3    2, 1, 3      2     (0 + 1 + 1)/3 = 2/3               .9(1 - 1/3) = 3/5, V and L
#                                                                 rose -> kept                 12/5
# 12  2    1, 3, 2      2     2/3                               0                            12/5
# 13  2    3, 2, 2      7/3   2/9                               .9(1 - 3) = -9/5             1
#                                                               (12/5 - 9/5 = 3/5 < sigma_min)
HAND_LOSSES = [4, 3, 3.5, 2, 2.5, 3, 2, 2, 2, 1, 3, 2, 2]
HAND_VARIANCE = [math.nan, math.nan, 1 / 6, 7 / 18, 7 / 18, 1 / 6, 1 / 6, 2 / 9, 0, 2 / 9, 2 / 3]
HAND_VARIANCE += [2 / 3, 2 / 9]
HAND_DELTA = [0, 0, 0, 0, 0, -6 / 5, 0, 0, 0, 0, 3 / 5, 0, -9 / 5]
HAND_SIGMA = [3, 3, 3, 3, 3, 9 / 5, 9 / 5, 9 / 5, 9 / 5, 9 / 5, 12 / 5, 12 / 5, 1]
# restrict=False differs at t = 4 (+18/35, but sigma is already sigma0) and t = 8 (+9/40):
# sigma 9/5 -> 81/40, then 11: 81/40 + 3/5 = 105/40 = 21/8, 13: 21/8 - 9/5 = 33/40 < 1 -> 1.
UNRESTRICTED_DELTA = [0, 0, 0, 18 / 35, 0, -6 / 5, 0, 9 / 40, 0, 0, 3 / 5, 0, -9 / 5]
UNRESTRICTED_SIGMA = [3, 3, 3, 3, 3, 9 / 5, 9 / 5, 81 / 40, 81 / 40, 81 / 40, 21 / 8, 21 / 8, 1]

# Dyadic rationals: means and variances are exact enough that V is exactly 0 or far above eps,
# so the eps guard never depends on rounding.
dyadic_losses = st.integers(0, 4000).map(lambda i: i / 16)
any_finite_loss = st.floats(allow_nan=False, allow_infinity=False)


def run(schedule: SigmaSchedule, losses: list[list[float]]) -> np.ndarray:
    """(T, K) sigma after each step."""
    return np.array([schedule.step(row).tolist() for row in losses])


def history_array(records: list[StepRecord], field: str) -> np.ndarray:
    return np.array([getattr(r, field) for r in records], dtype=np.float64)


def numpy_variances(losses: np.ndarray, window: int) -> np.ndarray:
    """(T, K) losses -> (T, K) V_t, NaN for t < window; numpy's own population variance."""
    out = np.full(losses.shape, np.nan)
    for t in range(window, len(losses) + 1):
        out[t - 1] = np.var(losses[t - window : t], axis=0)
    return out


def test_hand_trajectory() -> None:
    schedule = Adaloss(1, 3.0, window=3, rho=0.9, sigma_min=1.0)
    sigma = run(schedule, [[x] for x in HAND_LOSSES])[:, 0]
    np.testing.assert_allclose(sigma, HAND_SIGMA, rtol=0, atol=1e-12)
    records = schedule.history
    assert [r.step for r in records] == list(range(1, 14))
    np.testing.assert_allclose(history_array(records, "loss")[:, 0], HAND_LOSSES)
    np.testing.assert_allclose(history_array(records, "variance")[:, 0], HAND_VARIANCE, atol=1e-12)
    np.testing.assert_allclose(history_array(records, "delta")[:, 0], HAND_DELTA, atol=1e-12)
    assert schedule.steps_taken == 13


def test_hand_trajectory_unrestricted() -> None:
    schedule = Adaloss(1, 3.0, restrict=False)
    sigma = run(schedule, [[x] for x in HAND_LOSSES])[:, 0]
    np.testing.assert_allclose(sigma, UNRESTRICTED_SIGMA, rtol=0, atol=1e-12)
    delta = history_array(schedule.history, "delta")[:, 0]
    np.testing.assert_allclose(delta, UNRESTRICTED_DELTA, atol=1e-12)


def test_restrict_false_lets_sigma_rise_while_the_loss_falls() -> None:
    # At t = 8 the loss stayed flat (2 -> 2) and the variance rose (1/6 -> 2/9).
    restricted, free = Adaloss(1, 3.0), Adaloss(1, 3.0, restrict=False)
    for loss in HAND_LOSSES[:8]:
        restricted.step([loss])
        free.step([loss])
    assert restricted.sigma.item() == pytest.approx(9 / 5)
    assert free.sigma.item() == pytest.approx(9 / 5 + 9 / 40)
    # A strict fall after sigma dropped to 9/5 at t = 6: V_7 = 1/6 (window 2.5, 3, 2).
    falling = Adaloss(1, 3.0, restrict=False)
    for loss in [4, 3, 3.5, 2, 2.5, 3, 2, 0]:  # t = 8: window (3, 2, 0), V = 14/9
        falling.step([loss])
    # D_8 = 0.9 (1 - (1/6) / (14/9)) = 0.9 * 25/28 = 45/56 while L_8 = 0 < L_7 = 2.
    assert falling.sigma.item() == pytest.approx(9 / 5 + 45 / 56)


def test_max_step_clips_the_hand_steps() -> None:
    schedule = Adaloss(1, 3.0, max_step=0.5)
    run(schedule, [[x] for x in HAND_LOSSES])
    delta = history_array(schedule.history, "delta")[:, 0]
    # -6/5 -> -0.5 at t=6, 3/5 -> 0.5 at t=11, -9/5 -> -0.5 at t=13.
    expected = [0, 0, 0, 0, 0, -0.5, 0, 0, 0, 0, 0.5, 0, -0.5]
    np.testing.assert_allclose(delta, expected, atol=1e-12)
    assert schedule.sigma.item() == pytest.approx(3 - 0.5 + 0.5 - 0.5)


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(2, 5),
    losses=st.lists(st.lists(dyadic_losses, min_size=2, max_size=2), min_size=1, max_size=5),
)
def test_no_update_before_window_plus_one(window: int, losses: list[list[float]]) -> None:
    losses = losses[:window]
    schedule = Adaloss(2, [7.0, 4.0], window=window)
    sigma = run(schedule, losses)
    np.testing.assert_array_equal(sigma, np.tile([7.0, 4.0], (len(losses), 1)))


@settings(max_examples=60, deadline=None)
@given(value=any_finite_loss, steps=st.integers(1, 12), window=st.integers(2, 4))
def test_constant_loss_keeps_sigma_constant(value: float, steps: int, window: int) -> None:
    schedule = Adaloss(1, 5.0, window=window)
    sigma = run(schedule, [[value]] * steps)
    assert np.isfinite(sigma).all()
    np.testing.assert_array_equal(sigma, 5.0)


@settings(max_examples=100, deadline=None)
@given(
    losses=st.lists(dyadic_losses, min_size=1, max_size=14),
    window=st.integers(2, 4),
    max_step=st.sampled_from([None, 0.3]),
)
def test_sigma_rises_only_when_variance_and_loss_rose(
    losses: list[float], window: int, max_step: float | None
) -> None:
    schedule = Adaloss(1, 8.0, window=window, sigma_min=0.5, max_step=max_step)
    sigma = np.concatenate([[8.0], run(schedule, [[x] for x in losses])[:, 0]])
    variance = numpy_variances(np.array(losses)[:, None], window)[:, 0]
    for t in range(1, len(losses) + 1):  # sigma[t] is sigma_{t+1}
        if sigma[t] > sigma[t - 1]:
            assert t >= window + 1
            assert losses[t - 1] > losses[t - 2]
            assert variance[t - 1] > variance[t - 2] * (1 - 1e-9)


@settings(max_examples=100, deadline=None)
@given(
    losses=st.lists(st.lists(any_finite_loss, min_size=2, max_size=2), min_size=1, max_size=12),
    window=st.integers(2, 4),
    restrict=st.booleans(),
)
def test_sigma_stays_within_bounds(losses: list[list[float]], window: int, restrict: bool) -> None:
    schedule = Adaloss(2, [6.0, 2.0], window=window, sigma_min=1.5, restrict=restrict)
    sigma = run(schedule, losses)
    assert np.isfinite(sigma).all()
    assert (sigma >= 1.5).all()
    assert (sigma <= np.array([6.0, 2.0])).all()


@settings(max_examples=100, deadline=None)
@given(
    losses=st.lists(st.lists(dyadic_losses, min_size=3, max_size=3), min_size=1, max_size=12),
    window=st.integers(2, 4),
    rho=st.sampled_from([0.9, 0.5, 2.0]),
    restrict=st.booleans(),
)
def test_step_is_rho_times_one_minus_variance_ratio(
    losses: list[list[float]], window: int, rho: float, restrict: bool
) -> None:
    table = np.array(losses)
    schedule = Adaloss(
        3, 10.0, window=window, rho=rho, sigma_min=0.1, max_step=None, restrict=restrict
    )
    sigma = np.concatenate([np.full((1, 3), 10.0), run(schedule, losses)])
    delta = history_array(schedule.history, "delta")
    variance = numpy_variances(table, window)
    for t in range(1, len(table) + 1):
        for lm in range(3):
            expected = 0.0
            if t >= window + 1:
                v, v_prev = variance[t - 1, lm], variance[t - 2, lm]
                if v > 1e-12 and v_prev > 1e-12:
                    expected = rho * (1 - v_prev / v)
                    if expected > 0 and restrict and not table[t - 1, lm] > table[t - 2, lm]:
                        expected = 0.0
            scale = 1.0 if expected == 0 else max(1.0, rho * v_prev / v)
            assert delta[t - 1, lm] == pytest.approx(expected, abs=1e-9 * scale)
            clipped = min(max(sigma[t - 1, lm] + delta[t - 1, lm], 0.1), 10.0)
            assert sigma[t, lm] == clipped


@settings(max_examples=50, deadline=None)
@given(
    prefix=st.lists(st.lists(dyadic_losses, min_size=2, max_size=2), min_size=0, max_size=5),
    position=st.integers(0, 1),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_non_finite_loss_raises_and_leaves_state(
    prefix: list[list[float]], position: int, bad: float
) -> None:
    schedule = Adaloss(2, 4.0)
    run(schedule, prefix)
    before = schedule.sigma
    row = [1.0, 1.0]
    row[position] = bad
    with pytest.raises(ValueError, match=rf"step {len(prefix) + 1} .*landmark {position}"):
        schedule.step(row)
    assert schedule.steps_taken == len(prefix)
    torch.testing.assert_close(schedule.sigma, before)


def test_wrong_loss_shape_raises() -> None:
    schedule = Adaloss(3, 4.0)
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(2,\) at step 1"):
        schedule.step([1.0, 2.0])
    with pytest.raises(ValueError, match=r"got shape \(1, 3\)"):
        schedule.step(torch.ones(1, 3))


@settings(max_examples=40, deadline=None)
@given(
    losses=st.lists(st.lists(dyadic_losses, min_size=2, max_size=2), min_size=2, max_size=14),
    data=st.data(),
)
def test_save_and_load_in_the_middle_gives_the_same_trajectory(
    losses: list[list[float]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(losses)))
    settings_ = {"window": 3, "rho": 0.9, "sigma_min": 1.0, "max_step": 2.0}
    straight = Adaloss(2, [9.0, 5.0], **settings_)
    expected = run(straight, losses)

    first = Adaloss(2, [9.0, 5.0], **settings_)
    run(first, losses[:cut])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Adaloss(2, [9.0, 5.0], **settings_)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.steps_taken == cut
    rest = run(resumed, losses[cut:])
    np.testing.assert_array_equal(rest.reshape(-1, 2), expected[cut:].reshape(-1, 2))
    for field in ("loss", "variance", "delta", "sigma"):
        np.testing.assert_array_equal(
            history_array(resumed.history, field), history_array(straight.history, field)
        )


def test_state_dict_is_a_snapshot() -> None:
    schedule = Adaloss(1, 3.0)
    run(schedule, [[x] for x in HAND_LOSSES[:6]])
    state = schedule.state_dict()
    run(schedule, [[x] for x in HAND_LOSSES[6:]])
    restored = Adaloss(1, 3.0)
    restored.load_state_dict(state)
    assert restored.steps_taken == 6
    assert restored.sigma.item() == pytest.approx(9 / 5)


def test_load_state_dict_rejects_other_settings() -> None:
    state = Adaloss(2, 4.0, window=3).state_dict()
    with pytest.raises(ValueError, match=r"window=3.*window=4"):
        Adaloss(2, 4.0, window=4).load_state_dict(state)
    with pytest.raises(ValueError, match="sigma0"):
        Adaloss(2, 5.0, window=3).load_state_dict(state)
    with pytest.raises(ValueError, match="'adaloss' schedule, not 'fixed'"):
        FixedSigma(2, 4.0).load_state_dict(state)


@settings(max_examples=40, deadline=None)
@given(losses=st.lists(st.lists(dyadic_losses, min_size=3, max_size=3), min_size=1, max_size=10))
def test_landmarks_are_independent(losses: list[list[float]]) -> None:
    sigma0 = [6.0, 3.0, 4.5]
    together = run(Adaloss(3, sigma0), losses)
    for lm in range(3):
        alone = run(Adaloss(1, sigma0[lm]), [[row[lm]] for row in losses])
        np.testing.assert_array_equal(together[:, lm], alone[:, 0])


@settings(max_examples=30, deadline=None)
@given(losses=st.lists(st.lists(any_finite_loss, min_size=2, max_size=2), max_size=8))
def test_fixed_sigma_never_moves(losses: list[list[float]]) -> None:
    schedule = FixedSigma(2, [5.0, 25.0])
    sigma = run(schedule, losses)
    np.testing.assert_array_equal(sigma.reshape(-1, 2), np.tile([5.0, 25.0], (len(losses), 1)))
    np.testing.assert_array_equal(schedule.sigma.numpy(), [5.0, 25.0])


@settings(max_examples=30, deadline=None)
@given(
    sigma0=st.floats(1.0, 100.0),
    k=st.floats(0.0, 10.0),
    sigma_min=st.floats(0.1, 1.0),
    steps=st.integers(1, 15),
)
def test_linear_decay_closed_form(sigma0: float, k: float, sigma_min: float, steps: int) -> None:
    schedule = LinearDecay(1, sigma0, k, sigma_min)
    sigma = run(schedule, [[1.0]] * steps)[:, 0]
    expected = [max(sigma0 - k * t, sigma_min) for t in range(1, steps + 1)]
    np.testing.assert_allclose(sigma, expected, rtol=1e-12, atol=1e-12)


def test_linear_decay_round_trips_and_rejects_bad_k() -> None:
    schedule = LinearDecay(2, [10.0, 4.0], 1.5)
    run(schedule, [[0.0, 0.0]] * 3)
    resumed = LinearDecay(2, [10.0, 4.0], 1.5)
    resumed.load_state_dict(schedule.state_dict())
    np.testing.assert_allclose(resumed.step([0.0, 0.0]).numpy(), [4.0, 1.0])
    with pytest.raises(ValueError, match="k must be"):
        LinearDecay(1, 10.0, -1.0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"window": 1}, "window"),
        ({"rho": 0.0}, "rho"),
        ({"rho": -1.0}, "rho"),
        ({"sigma_min": 0.0}, "sigma_min"),
        ({"sigma_min": 5.0}, "sigma0"),  # sigma0 = 4 < sigma_min
        ({"max_step": 0.0}, "max_step"),
        ({"max_step": math.inf}, "max_step"),
    ],
)
def test_invalid_constructor_arguments_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        Adaloss(2, 4.0, **kwargs)


def test_invalid_sigma0_and_landmark_count() -> None:
    with pytest.raises(ValueError, match=r"sigma0 .*landmark 1"):
        Adaloss(2, [4.0, 0.5])
    with pytest.raises(ValueError, match=r"sigma0 must be a number or have shape \(2,\)"):
        Adaloss(2, [4.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="num_landmarks"):
        Adaloss(0, 4.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        FixedSigma(1, 0.0)


def test_keep_history_false_records_nothing() -> None:
    schedule = Adaloss(1, 3.0, keep_history=False)
    sigma = run(schedule, [[x] for x in HAND_LOSSES])[:, 0]
    np.testing.assert_allclose(sigma, HAND_SIGMA, atol=1e-12)
    assert schedule.history == []


def malformed(change):
    """An Adaloss(2, 4.0) state after 5 hand steps, with `change(state)` applied."""
    schedule = Adaloss(2, 4.0, window=3)
    run(schedule, [[x, x / 2] for x in HAND_LOSSES[:5]])
    state = schedule.state_dict()
    change(state)
    return state


def set_history(field: str, value: torch.Tensor):
    return lambda state: state["history"].__setitem__(field, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.__setitem__("sigma", torch.ones(3)),
            r"state\['sigma'\] must be .*shape \(2,\)",
        ),
        (lambda s: s.__setitem__("sigma", torch.tensor([1.0, math.nan])), "must be finite"),
        (lambda s: s.__setitem__("steps", -1), r"state\['steps'\]"),
        (set_history("sigma", torch.ones(5, 3)), r"history\['sigma'\] has shape \(5, 3\)"),
        (set_history("loss", torch.ones(4, 2)), r"history\['loss'\] has shape \(4, 2\).*\(5,\)"),
        (set_history("step", torch.ones(5, 1)), r"history\['step'\] \(5, 1\)"),
        (lambda s: s.__setitem__("recent_losses", torch.ones(3)), r"recent_losses .*\(n, 2\)"),
        (lambda s: s.__setitem__("recent_losses", torch.ones(3, 1)), r"recent_losses .*\(n, 2\)"),
        # three rows of losses, but counts that say 1 + 1 = 2 of them
        (lambda s: s.__setitem__("recent_counts", torch.tensor([1, 1])), "do not add up to the 3"),
        (lambda s: s.__setitem__("recent_counts", torch.tensor([4, -1])), "at least one loss each"),
        (
            lambda s: (
                s.__setitem__("recent_losses", torch.ones(4, 2)),
                s.__setitem__("recent_counts", torch.ones(4, dtype=torch.int64)),
            ),
            "at most window=3",
        ),
        (
            lambda s: s.__setitem__("previous_variance", torch.ones(3)),
            r"previous_variance .*\(2,\)",
        ),
        (lambda s: s.__setitem__("age", torch.ones(2, 1)), r"age must have shape \(2,\)"),
    ],
)
def test_a_malformed_state_is_refused_and_leaves_the_schedule_as_it_was(change, message) -> None:
    state = malformed(change)
    schedule = Adaloss(2, 4.0, window=3)
    run(schedule, [[1.0, 2.0], [3.0, 1.0]])
    before = schedule.state_dict()
    with pytest.raises(ValueError, match=message):
        schedule.load_state_dict(state)
    after = schedule.state_dict()
    assert after["steps"] == 2 and torch.equal(after["sigma"], before["sigma"])
    for key in ("recent_losses", "recent_counts", "previous_variance", "previous_loss", "age"):
        torch.testing.assert_close(after[key], before[key], equal_nan=True, rtol=0, atol=0)
    assert len(schedule.history) == 2
    # and the unchanged state loads: the refusals above are about the damage alone
    Adaloss(2, 4.0, window=3).load_state_dict(malformed(lambda s: None))


def test_a_schedule_that_keeps_no_history_loads_none_from_a_state() -> None:
    keeping = Adaloss(1, 3.0)
    run(keeping, [[x] for x in HAND_LOSSES[:4]])
    light = Adaloss(1, 3.0, keep_history=False)
    light.load_state_dict(keeping.state_dict())
    assert light.history == [] and light.steps_taken == 4
