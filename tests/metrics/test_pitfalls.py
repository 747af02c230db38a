"""Regression tests for mistakes other benchmarks have shipped: counted input frames, eps-padded denominators,
uncentred correlation, and B − 1 batch means. Each test fails on the wrong implementation, not just on a crash."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ups.data.spec import ConservedQuantity, TaskSpec
from ups.metrics import (
    bc_violation,
    compute_scoreboard,
    conservation_gap,
    crmse,
    div_free_error,
    nrmse,
    nrmse_at,
    pearson,
    pearson_at,
    pearson_per_step,
    psnr,
    rel_l2,
    rollout_horizon,
    shock_iou,
    spectral_error,
    spread_skill,
)

SPEC = TaskSpec(task="toy", fields=("u",), grid_shape=(6,), domain=(1.0,), dt=0.1)


# --- input frames are not counted -------------------------------------------------------------------------------


def test_every_given_frame_is_a_prediction_and_step_one_is_the_first_of_them():
    # the error grows with the step; a harness that prepended the (error-free) input frame would lower every mean
    rng = np.random.default_rng(0)
    target = rng.normal(size=(2, 4, 1, 6)) + 3.0
    pred = target + 0.1 * np.arange(1, 5).reshape(1, 4, 1, 1) * rng.normal(size=target.shape)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, SPEC, horizons=(1, 4))}
    assert rows["nrmse"] == pytest.approx(np.mean([nrmse_at(pred, target, k) for k in range(1, 5)]), rel=1e-14)
    assert rows["nrmse@1"] == nrmse(pred[:, :1], target[:, :1])  # step 1 = array index 0, the first prediction
    with_inputs = np.concatenate([target[:, :1], pred], axis=1), np.concatenate([target[:, :1], target], axis=1)
    assert nrmse(*with_inputs) < rows["nrmse"]  # what counting an input frame would have reported


def test_a_rollout_wrong_from_its_first_step_has_horizon_zero():
    target = np.tile(np.array([1.0, 2.0, 3.0, 4.0]), (1, 3, 1, 1))
    pred = target[..., ::-1].copy()  # anti-correlated from step 1
    assert rollout_horizon(pred, target) == 0.0  # not 1: there is no input frame at step 0 to be right about
    assert pearson_at(pred, target, 1) == -1.0


# --- no eps hides a zero denominator ----------------------------------------------------------------------------

ZERO = np.zeros((1, 2, 2, 4, 4))
ONES = np.ones((1, 2, 2, 4, 4))
CASES = {
    "nrmse": lambda: nrmse(ONES, ZERO),
    "rel_l2": lambda: rel_l2(ONES, ZERO),
    "psnr": lambda: psnr(ZERO, ONES),  # a constant target has no range
    "conservation_gap": lambda: conservation_gap(ONES, ZERO, conserved_channels=(0,)),
    "bc_violation": lambda: bc_violation(ONES, ZERO, bc="dirichlet"),
    "div_free_error": lambda: div_free_error(ZERO, ONES, velocity_channels=(0, 1), spacing=(1.0, 1.0)),
    "spectral_error": lambda: spectral_error(ONES, ONES),
    "shock_iou": lambda: shock_iou(ONES, ONES, channel=0, spacing=(1.0, 1.0)),
    "pearson": lambda: pearson(ONES, ONES),
    "spread_skill": lambda: spread_skill(ONES[None], ZERO),
}


@pytest.mark.parametrize("metric", sorted(CASES))
def test_zero_denominator_is_nan_with_a_warning_never_a_padded_number(metric):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = CASES[metric]()
    assert np.isnan(value)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any(m.startswith("zero denominator in") for m in messages), messages


def test_scoreboard_keeps_the_nan_and_the_warning():
    spec = TaskSpec(task="toy2", fields=("rho",), grid_shape=(4, 4), domain=(1.0, 1.0), dt=0.1,
                    conserved=(ConservedQuantity("mass", "rho"),))  # fmt: skip
    target = np.zeros((2, 2, 1, 4, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = {r.name: r.value for r in compute_scoreboard(target + 1.0, target, spec)}
    messages = {str(w.message) for w in caught}
    assert {"zero denominator in nrmse", "zero denominator in conservation_gap"} <= messages
    assert np.isnan(rows["nrmse"]) and np.isnan(rows["conservation_gap"])
    assert rows["crmse"] == 1.0  # an unnormalised metric is still defined


# --- correlation is centred, and exact for a perfect match ---------------------------------------------------------


def test_correlation_is_centred():
    y = (np.array([1.0, 2.0, 3.0, 4.0]) + 100.0).reshape(1, 1, 1, 4)
    reversed_ = (np.array([4.0, 3.0, 2.0, 1.0]) + 100.0).reshape(1, 1, 1, 4)
    # an uncentred cosine similarity would be ≈ 0.9998 here: the common offset dominates
    assert pearson_per_step(reversed_, y)[0, 0] == pytest.approx(-1.0, abs=1e-15)
    # an affine image of the truth is perfectly correlated
    assert pearson_per_step(3.0 * y - 50.0, y)[0, 0] == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e8, 1e12])
def test_correlation_stays_accurate_on_a_large_mean(offset):
    # a pressure-like field: a huge mean and O(1) fluctuations; moment formulas would cancel catastrophically here,
    # so such frames are centred explicitly
    rng = np.random.default_rng(2)
    y = rng.normal(size=(2, 3, 1, 64)) + offset
    p = y + 0.5 * rng.normal(size=y.shape)
    expected = np.array([[np.corrcoef(p[b, t].ravel(), y[b, t].ravel())[0, 1] for t in range(3)] for b in range(2)])
    np.testing.assert_allclose(pearson_per_step(p, y), expected, atol=1e-9)


def test_perfect_match_gives_exactly_one():
    rng = np.random.default_rng(1)
    y = 1e3 + rng.normal(size=(3, 5, 2, 7, 3))
    assert np.all(pearson_per_step(y.copy(), y) == 1.0)
    assert pearson(y.copy(), y) == 1.0
    assert rollout_horizon(y.copy(), y) == 5.0


# --- batch averages divide by B, not B − 1 -----------------------------------------------------------------------


def test_batch_means_divide_by_b():
    # two trajectories with per-sample nRMSE 1 and 0: the mean is 1/2 (a B − 1 divisor would give 1)
    y = np.ones((2, 1, 1, 4))
    p = y.copy()
    p[0] *= 2.0
    assert nrmse(p, y) == 0.5
    # cRMSE's batch RMS: per-trajectory mean errors 1 and 3 -> √((1 + 9) / 2); B − 1 would give √10
    q = np.zeros((2, 1, 1, 4)) + np.array([1.0, 3.0]).reshape(2, 1, 1, 1)
    assert crmse(q, np.zeros_like(q)) == pytest.approx(np.sqrt(5.0), rel=1e-15)
    # horizons 0 and 2 over B = 2 -> 1
    target = np.tile(np.array([1.0, 2.0, 3.0]), (2, 2, 1, 1))
    pred = target.copy()
    pred[0] = target[0, :, :, ::-1]
    assert rollout_horizon(pred, target) == 1.0
