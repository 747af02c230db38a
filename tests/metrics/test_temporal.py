"""Per-step Pearson correlation and the rollout horizon: hand examples, censoring, exactness, NaN policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ups.metrics import pearson_at, pearson_per_step, rollout_horizon, rollout_horizon_details

SHAPE = (2, 4, 2, 6)  # [B, T, C, S]
wide = st.floats(-1e150, 1e150, allow_nan=False, allow_subnormal=False)
fields = arrays(np.float64, SHAPE, elements=wide, fill=st.nothing())  # every entry drawn: few constant frames

Y = np.array([1.0, 2.0, 3.0])
HALF = np.array([1.0, 3.0, 2.0])  # centred: y' = [-1, 0, 1], p' = [-1, 1, 0] -> rho = 1 / sqrt(2 * 2) = 0.5


def rollout(*frames: np.ndarray) -> np.ndarray:
    """Stack 1-channel frames into a [1, T, 1, S] rollout."""
    return np.stack(frames).reshape(1, len(frames), 1, -1)


def non_constant(x: np.ndarray) -> bool:
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return bool(np.all(flat.max(axis=-1) > flat.min(axis=-1)))


def test_pearson_hand_computed():
    assert pearson_per_step(rollout(HALF), rollout(Y))[0, 0] == 0.5


def test_pearson_centres_over_channels_and_space_together():
    # y = [[0, 1], [10, 11]], p = [[1, 0], [11, 10]]: joint mean 5.5, y' = [-5.5, -4.5, 4.5, 5.5],
    # p' = [-4.5, -5.5, 5.5, 4.5]; sum p'y' = 4 * 24.75 = 99, sum y'^2 = sum p'^2 = 101 -> rho = 99 / 101.
    # (Centring each channel separately would give -1.)
    y = np.array([[0.0, 1.0], [10.0, 11.0]]).reshape(1, 1, 2, 2)
    p = np.array([[1.0, 0.0], [11.0, 10.0]]).reshape(1, 1, 2, 2)
    assert pearson_per_step(p, y)[0, 0] == pytest.approx(99 / 101, rel=1e-14)


@settings(deadline=None, max_examples=80)
@given(target=fields)
def test_perfect_prediction_has_pearson_exactly_one_and_censored_horizon(target):
    assume(non_constant(target))
    rho = pearson_per_step(target.copy(), target)
    assert rho.shape == SHAPE[:2]
    assert np.all(rho == 1.0)
    assert np.all(pearson_per_step(-target, target) == -1.0)
    d = rollout_horizon_details(target.copy(), target)
    np.testing.assert_array_equal(d.steps, SHAPE[1])
    assert d.censored.all()
    assert rollout_horizon(target.copy(), target) == SHAPE[1]


@settings(deadline=None, max_examples=60)
@given(pred=fields, target=fields)
def test_pearson_stays_in_unit_interval(pred, target):
    assume(non_constant(pred) and non_constant(target))
    rho = pearson_per_step(pred, target)
    assert np.all((rho >= -1.0) & (rho <= 1.0))


def test_constant_frame_gives_nan_with_warning():
    y = rollout(Y, Y)
    p = rollout(Y, np.ones(3))
    with pytest.warns(RuntimeWarning, match="zero denominator in pearson"):
        rho = pearson_per_step(p, y)
    assert rho[0, 0] == 1.0 and np.isnan(rho[0, 1])


def test_horizon_counts_steps_before_the_first_drop():
    # rho = 1, 1, 0.5, 1: drops below 0.8 at step 3 -> horizon 2 (the later recovery does not count)
    y = rollout(Y, Y, Y, Y)
    p = rollout(Y, Y, HALF, Y)
    d = rollout_horizon_details(p, y, dt=0.1)
    np.testing.assert_array_equal(d.rho, [[1.0, 1.0, 0.5, 1.0]])
    assert d.steps.tolist() == [2.0] and d.censored.tolist() == [False]
    assert d.time.tolist() == pytest.approx([0.2])
    assert rollout_horizon(p, y) == 2.0
    assert rollout_horizon(p, y, dt=0.1) == pytest.approx(0.2)


def test_horizon_mean_over_trajectories_with_censoring_flag():
    # trajectory 0 drops at step 1 -> 0; trajectory 1 never drops -> T = 3, censored
    y = np.concatenate([rollout(Y, Y, Y), rollout(Y, Y, Y)])
    p = np.concatenate([rollout(HALF, Y, Y), rollout(Y, Y, Y)])
    d = rollout_horizon_details(p, y)
    assert d.steps.tolist() == [0.0, 3.0] and d.censored.tolist() == [False, True] and d.time is None
    assert rollout_horizon(p, y) == 1.5


def test_threshold_is_a_strict_drop():
    y = rollout(Y, Y)
    p = rollout(HALF, Y)  # rho = 0.5 exactly
    assert rollout_horizon(p, y, threshold=0.5) == 2.0
    assert rollout_horizon(p, y, threshold=0.6) == 0.0


def test_nan_correlation_before_the_drop_makes_the_horizon_unknown():
    y = rollout(Y, Y, Y)
    p = rollout(Y, np.ones(3), HALF)  # rho = 1, NaN, 0.5
    with pytest.warns(RuntimeWarning):
        d = rollout_horizon_details(p, y)
    assert np.isnan(d.steps[0]) and not d.censored[0]


def test_pearson_at_one_based_and_bounds():
    y = rollout(Y, Y, Y)
    p = rollout(Y, HALF, Y)
    assert pearson_at(p, y, 1) == 1.0
    assert pearson_at(p, y, 2) == 0.5
    with pytest.raises(ValueError, match="out of range"):
        pearson_at(p, y, 4)


def test_torch_and_numpy_give_identical_results():
    rng = np.random.default_rng(2)
    y = rng.normal(size=SHAPE).astype(np.float32)
    p = (y + rng.normal(size=SHAPE)).astype(np.float32)
    pt, yt = torch.from_numpy(p), torch.from_numpy(y)
    np.testing.assert_array_equal(pearson_per_step(pt, yt), pearson_per_step(p, y))
    assert rollout_horizon(pt, yt, threshold=0.7) == rollout_horizon(p, y, threshold=0.7)
    assert pearson_at(pt, yt, 3) == pearson_at(p, y, 3)
