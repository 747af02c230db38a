"""nRMSE and relative L2: hand-computed values, reduction order, NaN policy, torch/numpy parity, invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ups.metrics import nrmse, nrmse_at, nrmse_per_step, rel_l2

SHAPE = (2, 3, 2, 5)  # [B, T, C, S]
finite = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)
nonzero = st.floats(0.5, 10)  # target entries bounded away from 0: every target frame has a nonzero norm


def frame(*values: float) -> np.ndarray:
    """A single [1, 1, 1, S] frame."""
    return np.array(values, dtype=np.float64).reshape(1, 1, 1, -1)


def test_nrmse_hand_computed_single_frame():
    # p = [1, 2], y = [1, 3]: mean_S (p - y)^2 = (0 + 1) / 2 = 0.5, mean_S y^2 = (1 + 9) / 2 = 5
    # nrmse = sqrt(0.5) / sqrt(5) = sqrt(0.1)
    assert nrmse(frame(1, 2), frame(1, 3)) == pytest.approx(np.sqrt(0.1), rel=1e-15)


def test_nrmse_averages_per_sample_ratios_not_pooled_errors():
    # sample 0: y = [1, 1], p = [2, 2] -> 1 / 1 = 1;  sample 1: y = p = [10, 10] -> 0.  Mean over b: 0.5.
    # Pooled over the batch it would be sqrt(mean err^2) / sqrt(mean y^2) = sqrt(1/2) / sqrt(101/2) ~ 0.0995.
    y = np.array([[1.0, 1.0], [10.0, 10.0]]).reshape(2, 1, 1, 2)
    p = np.array([[2.0, 2.0], [10.0, 10.0]]).reshape(2, 1, 1, 2)
    assert nrmse(p, y) == pytest.approx(0.5, rel=1e-15)


def test_nrmse_normalises_each_channel_then_averages_while_rel_l2_pools_channels():
    # channel 0: y = [1, 1], p = [2, 2] -> 1;  channel 1: y = p = [10, 10] -> 0.  nrmse = mean over c = 0.5.
    # rel_l2 pools (C, S): ||p - y|| / ||y|| = sqrt(2) / sqrt(2 + 200) = sqrt(1 / 101).
    y = np.array([[1.0, 1.0], [10.0, 10.0]]).reshape(1, 1, 2, 2)
    p = np.array([[2.0, 2.0], [10.0, 10.0]]).reshape(1, 1, 2, 2)
    assert nrmse(p, y) == pytest.approx(0.5, rel=1e-15)
    assert rel_l2(p, y) == pytest.approx(np.sqrt(1 / 101), rel=1e-15)


def test_nrmse_per_step_shape_and_values():
    y = np.ones((2, 3, 2, 4))
    p = y + np.arange(3.0).reshape(1, 3, 1, 1)  # error t at step t (0-based); target norm 1
    e = nrmse_per_step(p, y)
    assert e.shape == (2, 3, 2)
    np.testing.assert_allclose(e, np.broadcast_to(np.arange(3.0).reshape(1, 3, 1), (2, 3, 2)), rtol=1e-15)
    assert nrmse(p, y) == pytest.approx(1.0, rel=1e-15)


def test_nrmse_at_uses_one_based_predicted_steps():
    y = np.ones((1, 3, 1, 4))
    p = y + np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)
    assert nrmse_at(p, y, 1) == pytest.approx(0.1, rel=1e-12)
    assert nrmse_at(p, y, 3) == pytest.approx(0.3, rel=1e-12)


@pytest.mark.parametrize("k", [0, 4, -1])
def test_nrmse_at_rejects_steps_outside_the_rollout(k):
    y = np.ones((1, 3, 1, 4))
    with pytest.raises(ValueError, match="out of range"):
        nrmse_at(y, y, k)


def test_rel_l2_hand_computed_mean_over_frames():
    # frame (b=0, t=0): y = [3, 4] (norm 5), p - y = [0, 5] -> 1;  frame (0, 1): y = [3, 4], p = y -> 0.  Mean 0.5.
    y = np.array([[3.0, 4.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    p = np.array([[3.0, 9.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    assert rel_l2(p, y) == pytest.approx(0.5, rel=1e-15)


@pytest.mark.parametrize("metric", [nrmse, rel_l2], ids=["nrmse", "rel_l2"])
def test_zero_target_gives_nan_and_exactly_one_warning(metric):
    y = np.ones((2, 2, 1, 3))
    y[1, 1] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = metric(y + 1.0, y)
    assert np.isnan(value)
    zero = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(zero) == 1 and "zero denominator" in str(zero[0].message)
    with pytest.warns(RuntimeWarning, match=f"zero denominator in {metric.__name__}"):
        metric(y + 1.0, y)


@pytest.mark.parametrize("metric", [nrmse, rel_l2, lambda p, y: nrmse_at(p, y, 2)], ids=["nrmse", "rel_l2", "at2"])
def test_torch_and_numpy_inputs_give_identical_results(metric):
    rng = np.random.default_rng(0)
    y = rng.normal(size=SHAPE).astype(np.float32)
    p = (y + 0.1 * rng.normal(size=SHAPE)).astype(np.float32)
    pt = torch.from_numpy(p).requires_grad_(True)
    assert metric(pt, torch.from_numpy(y)) == metric(p, y)


def test_shape_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        nrmse(np.ones((1, 1, 1, 2)), np.ones((1, 1, 1, 3)))
    with pytest.raises(ValueError, match="ndim >= 4"):
        nrmse(np.ones((1, 1, 2)), np.ones((1, 1, 2)))


@settings(deadline=None, max_examples=60)
@given(
    pred=arrays(np.float64, SHAPE, elements=finite),
    target=arrays(np.float64, SHAPE, elements=nonzero),
    scale=st.floats(1e-3, 1e3),
)
def test_nrmse_and_rel_l2_are_invariant_to_common_rescaling(pred, target, scale):
    assert nrmse(scale * pred, scale * target) == pytest.approx(nrmse(pred, target), rel=1e-12, abs=1e-14)
    assert rel_l2(scale * pred, scale * target) == pytest.approx(rel_l2(pred, target), rel=1e-12, abs=1e-14)


@settings(deadline=None, max_examples=60)
@given(target=arrays(np.float64, SHAPE, elements=nonzero))
def test_perfect_prediction_has_zero_error(target):
    assert nrmse(target, target) == 0.0
    assert rel_l2(target, target) == 0.0
    assert nrmse_at(target.copy(), target, 3) == 0.0
