"""Ensemble metrics: ECE from the randomised PIT, fair CRPS, spread-skill: calibrated vs over-confident ensembles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ups.metrics import crps, ece, pit_coverage, spread_skill, spread_skill_ratio
from ups.metrics.ensemble import LEVELS

SHAPE = (8, 4, 2, 32, 32)  # [B, T, C, H, W]: 65k points per ensemble


def draw(members: int, spread: float = 1.0, bias: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Truth y ~ N(μ, 1) and members ~ N(μ + bias, spread²) around a random per-point mean μ."""
    rng = np.random.default_rng(seed)
    mu = 3.0 * rng.normal(size=SHAPE)
    target = mu + rng.normal(size=SHAPE)
    samples = mu + bias + spread * rng.normal(size=(members, *SHAPE))
    return samples, target


@pytest.mark.parametrize("members", [1, 4, 16])
def test_ece_of_an_ensemble_from_the_true_predictive_distribution_is_near_zero(members):
    samples, target = draw(members)
    assert ece(samples, target) < 0.01  # sampling noise only, for any ensemble size (randomised PIT)


@settings(deadline=None, max_examples=25)
@given(
    members=st.integers(1, 16),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-100, 100),
    seed=st.integers(0, 2**32 - 1),
)
def test_ece_is_near_zero_for_any_ensemble_drawn_from_the_true_distribution(members, scale, shift, seed):
    # truth and members exchangeable: N(μ, σ²) around a random per-point mean, any σ, offset and ensemble size
    rng = np.random.default_rng(seed)
    shape = (4, 2, 2, 16, 16)  # 4096 points: coverage noise ~0.008 per level
    mu = shift + scale * 3.0 * rng.normal(size=shape)
    target = mu + scale * rng.normal(size=shape)
    samples = mu + scale * rng.normal(size=(members, *shape))
    assert ece(samples, target) < 0.03


@settings(deadline=None, max_examples=25)
@given(members=st.integers(4, 16), ratio=st.floats(0.01, 0.2), seed=st.integers(0, 2**32 - 1))
def test_ece_is_large_for_any_over_confident_ensemble(members, ratio, seed):
    # M members resolve the PIT only to 1/(M + 1): with M = 2 even a point-mass ensemble reaches ECE ≈ 0.09, so the
    # property is stated for M >= 4, where any spread under a fifth of the truth's gives ECE > 0.1
    rng = np.random.default_rng(seed)
    shape = (4, 2, 2, 16, 16)
    mu = 3.0 * rng.normal(size=shape)
    target = mu + rng.normal(size=shape)
    samples = mu + ratio * rng.normal(size=(members, *shape))  # spread a fraction of the true one
    assert ece(samples, target) > 0.1


def test_ece_of_an_over_confident_ensemble_is_large():
    calibrated = ece(*draw(8))
    samples, target = draw(8, spread=0.1)
    assert ece(samples, target) > max(0.15, 20 * calibrated)  # the truth falls outside the members: PIT at 0 and 1
    biased, target = draw(8, bias=2.0)
    assert ece(biased, target) > max(0.15, 20 * calibrated)


def test_plain_empirical_cdf_would_not_be_calibrated_but_the_randomised_pit_is():
    # with M = 4 the truth is below every member 1/5 of the time; the plain CDF #{x ≤ y}/M would put all of that mass
    # at PIT = 0 <= 0.05 and report coverage 0.2 at level 0.05
    samples, target = draw(4)
    coverage = pit_coverage(samples, target)
    np.testing.assert_allclose(coverage, LEVELS, atol=0.01)


def test_pit_coverage_by_hand():
    # M = 1, the member below the truth everywhere: rank r = 1 of {0, 1}, PIT = (1 + U) / 2, so
    # P(PIT <= p) = clip(2p − 1, 0, 1): 0 at p = 0.05, 0.5 at p = 0.75
    target = np.ones((1, 1, 1, 4))
    samples = np.zeros((1, 1, 1, 1, 4))
    coverage = pit_coverage(samples, target, levels=[0.05, 0.5, 0.75, 0.95])
    np.testing.assert_allclose(coverage, [0.0, 0.0, 0.5, 0.9], atol=1e-15)
    assert ece(samples, target, levels=[0.05, 0.75]) == pytest.approx((0.05 + 0.25) / 2)


def test_members_tied_with_the_truth_are_calibrated_not_over_confident():
    # every member equals the truth (a wall value every sample gets right): ties broken uniformly, PIT ~ U(0, 1)
    target = np.zeros((1, 1, 1, 8))
    samples = np.zeros((5, 1, 1, 1, 8))
    assert ece(samples, target) == pytest.approx(0.0, abs=1e-15)


def test_fair_crps_by_hand():
    # members [0, 2], truth 3: mean |x − y| = 2; Σ_{m≠m'} |x − x'| / (2 M (M − 1)) = 4 / 4 = 1  ->  1
    samples = np.array([0.0, 2.0]).reshape(2, 1, 1, 1, 1)
    target = np.full((1, 1, 1, 1), 3.0)
    assert crps(samples, target) == pytest.approx(1.0, rel=1e-15)
    # a deterministic "ensemble" of identical members reduces to the absolute error
    same = np.full((3, 1, 1, 1, 1), 5.0)
    assert crps(same, target) == pytest.approx(2.0, rel=1e-15)


@pytest.mark.parametrize("members", [2, 4, 32])
def test_fair_crps_is_unbiased_for_any_ensemble_size(members):
    # calibrated N(μ, 1) members and truth: E[CRPS] = E|X − Y| − E|X − X'| / 2 = 2/√π − 1/√π = 1/√π, for any M;
    # the plain estimator (2M² in the pair term) would overshoot by E|X − X'| / (2M) = 1 / (M √π)
    samples, target = draw(members, seed=members)
    expected = 1.0 / math.sqrt(math.pi)
    assert crps(samples, target) == pytest.approx(expected, rel=0.01)


def test_crps_needs_two_members():
    samples, target = draw(1)
    with pytest.warns(RuntimeWarning, match="zero denominator in crps"):
        assert np.isnan(crps(samples, target))


@pytest.mark.parametrize("members", [2, 5, 20])
def test_spread_skill_of_a_calibrated_ensemble_is_one(members):
    samples, target = draw(members, seed=10 + members)
    np.testing.assert_allclose(spread_skill_ratio(samples, target), 1.0, atol=0.03)
    assert spread_skill(samples, target) < 0.03


def test_spread_skill_penalises_over_and_under_dispersion_alike():
    under, target = draw(8, spread=0.5)
    over, _ = draw(8, spread=2.0)
    assert spread_skill(under, target) > 0.3 and spread_skill(over, target) > 0.3
    assert np.all(spread_skill_ratio(under, target) < 1) and np.all(spread_skill_ratio(over, target) > 1)


def test_spread_skill_of_a_collapsed_ensemble_is_infinite_and_one_member_is_undefined():
    target = np.random.default_rng(0).normal(size=(1, 2, 1, 8))
    collapsed = np.full((3, *target.shape), 0.5)  # three identical members: variance exactly 0
    assert spread_skill(collapsed, target) == np.inf
    with pytest.warns(RuntimeWarning, match="zero denominator in spread_skill"):
        assert np.isnan(spread_skill(collapsed[:1], target))


def test_ensemble_shape_is_checked():
    samples, target = draw(3)
    with pytest.raises(ValueError, match="samples must be"):
        ece(samples[:, :1], target)


def test_torch_and_numpy_agree():
    samples, target = draw(3)
    s32, y32 = samples.astype(np.float32), target.astype(np.float32)
    for metric in (ece, crps, spread_skill):
        assert metric(torch.from_numpy(s32), torch.from_numpy(y32)) == metric(s32, y32)
