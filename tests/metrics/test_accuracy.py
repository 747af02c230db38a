"""Accuracy metrics: hand-computed values, reduction order, NaN policy, torch/numpy parity, invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ups.metrics import brmse, crmse, max_err, nrmse, nrmse_at, nrmse_per_step, psnr, rel_l2, rmse
from ups.metrics.accuracy import accuracy_scores

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


def test_rmse_and_max_err_per_frame_then_mean():
    # frame 0: error [0, 3] -> rmse sqrt(4.5), max 3;  frame 1: error [1, 1] -> rmse 1, max 1.  Means over t.
    y = np.zeros((1, 2, 1, 2)) + 5.0
    p = y + np.array([[0.0, 3.0], [1.0, 1.0]]).reshape(1, 2, 1, 2)
    assert rmse(p, y) == pytest.approx((np.sqrt(4.5) + 1.0) / 2, rel=1e-15)
    assert max_err(p, y) == pytest.approx(2.0, rel=1e-15)
    assert max_err(y - np.array([0.0, 3.0, 1.0, 1.0]).reshape(1, 2, 1, 2), y) == pytest.approx(2.0)  # |.|, not max


def test_psnr_hand_computed_and_perfect_frame_is_infinite():
    # y = [0, 2] (range 2), p - y = [0.2, 0]: mse = 0.02, psnr = 10 log10(4 / 0.02) = 10 log10(200)
    y = frame(0.0, 2.0)
    assert psnr(y + np.array([0.2, 0.0]).reshape(y.shape), y) == pytest.approx(10 * np.log10(200), rel=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a perfect frame is exactly +inf, not a warning and not an eps-capped number
        assert psnr(y.copy(), y) == np.inf


def test_psnr_of_a_constant_target_frame_is_nan_with_warning():
    y = frame(1.0, 1.0)
    with pytest.warns(RuntimeWarning, match="zero denominator in psnr"):
        assert np.isnan(psnr(y + 0.1, y))


def test_crmse_is_rms_over_the_batch_of_mean_differences():
    # per (t, c): spatial-mean differences 1 (b = 0) and 3 (b = 1): sqrt((1 + 9) / 2) = sqrt(5).  B - 1 would give
    # sqrt(10); pooling |mean| without the square would give 2.
    y = np.zeros((2, 1, 1, 4))
    p = y + np.array([1.0, 3.0]).reshape(2, 1, 1, 1)
    assert crmse(p, y) == pytest.approx(np.sqrt(5.0), rel=1e-15)
    # a zero-mean error pattern has zero cRMSE however large it is
    assert crmse(y + np.array([1.0, -1.0, 5.0, -5.0]).reshape(1, 1, 1, 4), y) == 0.0


def test_brmse_uses_the_outermost_cells_of_every_axis_each_once():
    # 4 x 4 grid: 12 boundary cells (corners once), 4 interior cells.  Error 2 on the boundary, 100 inside.
    y = np.ones((1, 1, 1, 4, 4))
    err = np.full((4, 4), 2.0)
    err[1:3, 1:3] = 100.0
    assert brmse(y + err, y) == pytest.approx(2.0, rel=1e-15)
    # 1D: the two end cells
    assert brmse(frame(0.0, 9.0, 9.0, 4.0), frame(0.0, 0.0, 0.0, 0.0)) == pytest.approx(np.sqrt(8.0), rel=1e-15)


def test_accuracy_family_is_bitwise_equal_to_the_metrics_alone():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(2, 3, 2, 5, 4))
    p = y + 0.1 * rng.normal(size=y.shape)
    scores = accuracy_scores(p, y)
    alone = {f.__name__: f(p, y) for f in (nrmse, rel_l2, rmse, max_err, psnr, brmse)}
    assert scores == alone


@pytest.mark.parametrize("metric", [rmse, max_err, psnr, crmse, brmse])
def test_new_accuracy_metrics_agree_between_torch_and_numpy(metric):
    rng = np.random.default_rng(4)
    y = rng.normal(size=(3, 2, 2, 6)).astype(np.float32)
    p = (y + 0.1 * rng.normal(size=y.shape)).astype(np.float32)
    assert metric(torch.from_numpy(p), torch.from_numpy(y)) == metric(p, y)


@settings(deadline=None, max_examples=40)
@given(target=arrays(np.float64, SHAPE, elements=nonzero))
def test_perfect_prediction_scores_zero_on_every_error_metric(target):
    for metric in (rmse, max_err, crmse, brmse):
        assert metric(target.copy(), target) == 0.0


@pytest.mark.parametrize("scale", [1e-3, 0.5, 7.0, 1e4])
def test_psnr_is_invariant_to_a_common_rescaling(scale):
    rng = np.random.default_rng(5)
    y = rng.normal(size=SHAPE)
    p = y + 0.1 * rng.normal(size=SHAPE)
    assert psnr(scale * p, scale * y) == pytest.approx(psnr(p, y), rel=1e-12)
