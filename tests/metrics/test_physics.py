"""Conservation gap and per-step budgets: hand-computed values, normaliser, not-applicable and NaN policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.metrics import conservation_budgets, conservation_gap, domain_integrals, nrmse

Y0 = np.array([1.0, 2.0, 3.0, 4.0])  # sum |y0| = 10


def test_constant_offset_gap_is_c_times_n_times_cell_volume_over_l1_mass():
    # y_0 = [1, 2, 3, 4], y_1 = 2 y_0, p = y + c with c = -0.5, N = 4 cells of volume 0.25.
    # |Q(p_t) - Q(y_t)| = |c| N dV = 0.5 * 4 * 0.25 = 0.5 at every t; the normaliser is the first predicted
    # target frame only: sum |y_0| dV = 10 * 0.25 = 2.5.  gap = 0.5 / 2.5 = 0.2 at t = 0 and t = 1 (a per-t
    # normaliser would give 0.1 at t = 1).
    y = np.stack([Y0, 2 * Y0]).reshape(1, 2, 1, 4)
    c, n, dv = -0.5, 4, 0.25
    gap = conservation_gap(y + c, y, conserved_channels=(0,), cell_volume=dv)
    assert gap == pytest.approx(abs(c) * n * dv / (10 * dv), rel=1e-15)
    assert gap == pytest.approx(0.2, rel=1e-15)


def test_gap_averages_over_samples_each_with_its_own_normaliser():
    # sample 0: sum |y0| = 10, sample 1: sum |y0| = 100; same offset 0.5 on 4 cells -> 2 / 10 and 2 / 100.
    y = np.stack([Y0, 10 * Y0]).reshape(2, 1, 1, 4)
    assert conservation_gap(y + 0.5, y, conserved_channels=[0]) == pytest.approx((0.2 + 0.02) / 2, rel=1e-15)


def test_gap_averages_over_conserved_quantities_and_ignores_other_channels():
    # channels: 0 = mass (offset 0.5 -> gap 0.2), 1 = not conserved (garbage), 2 = energy (exact -> 0).
    y = np.stack([Y0, Y0, Y0]).reshape(1, 1, 3, 4)
    p = y.copy()
    p[:, :, 0] += 0.5
    p[:, :, 1] = 1e6
    assert conservation_gap(p, y, conserved_channels=(0, 2)) == pytest.approx(0.1, rel=1e-15)


def test_mass_conserving_but_wrong_prediction_has_zero_gap_and_positive_nrmse():
    # a shifted field on a periodic grid keeps the integral exactly (integer values: exact float sums)
    y = np.array([0.0, 1.0, 3.0, 7.0, 2.0, 5.0, 4.0, 6.0]).reshape(1, 1, 1, 8)
    p = np.roll(y, 3, axis=-1)
    assert conservation_gap(p, y, conserved_channels=(0,), cell_volume=0.125) == 0.0
    assert nrmse(p, y) > 0.5


def test_gap_is_none_without_conserved_quantities():
    y = np.ones((1, 2, 1, 4))
    assert conservation_gap(y + 1, y, conserved_channels=()) is None


def test_zero_first_frame_gives_nan_with_warning():
    y = np.zeros((1, 2, 1, 4))
    y[:, 1] = 1.0
    with pytest.warns(RuntimeWarning, match="zero denominator in conservation_gap"):
        assert np.isnan(conservation_gap(y + 1, y, conserved_channels=(0,)))


def test_out_of_range_channel_is_rejected():
    y = np.ones((1, 2, 1, 4))
    with pytest.raises(ValueError, match="out of range"):
        conservation_gap(y, y, conserved_channels=(1,))


def test_torch_and_numpy_give_identical_gaps():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 3, 2, 4, 4)).astype(np.float32)
    p = (y + 0.1 * rng.normal(size=y.shape)).astype(np.float32)
    kw = {"conserved_channels": (1, 0), "cell_volume": 1 / 16}
    assert conservation_gap(torch.from_numpy(p), torch.from_numpy(y), **kw) == conservation_gap(p, y, **kw)


def test_domain_integrals_sum_cells_times_volume():
    x = np.arange(2 * 3 * 2 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2, 2)
    q = domain_integrals(x, (1,), 0.5)
    assert q.shape == (2, 3, 1)
    assert q[0, 0, 0] == (4 + 5 + 6 + 7) * 0.5


def test_budgets_per_step_delta_and_cumulative_drift():
    # target: y_t = roll(y_0, t), mass 10 at every step.  pred_t = y_t + 0.1 (t + 1) on 4 cells, dV = 1:
    # Q(p_t) = 10 + 0.4 (t + 1) -> per-step budget 0.4, drift 0.4, 0.8, 1.2 from the input frame's mass 10.
    y = np.stack([np.roll(Y0, t) for t in range(3)]).reshape(1, 3, 1, 4)
    p = y + 0.1 * np.arange(1, 4).reshape(1, 3, 1, 1)
    b = conservation_budgets(p, y, conserved_channels=(0,), initial=Y0.reshape(1, 1, 4))
    assert b.channels == (0,)
    for arr in (b.pred_total, b.target_total, b.pred_delta, b.target_delta, b.pred_drift, b.target_drift):
        assert arr.shape == (1, 3, 1)
    np.testing.assert_allclose(b.pred_total[0, :, 0], [10.4, 10.8, 11.2], rtol=1e-14)
    np.testing.assert_allclose(b.pred_delta[0, :, 0], [0.4, 0.4, 0.4], rtol=1e-12)
    np.testing.assert_allclose(b.pred_drift[0, :, 0], [0.4, 0.8, 1.2], rtol=1e-12)
    np.testing.assert_array_equal(b.target_delta, 0.0)
    np.testing.assert_array_equal(b.target_drift, 0.0)


def test_budgets_without_initial_frame_mark_first_delta_unknown():
    y = np.stack([np.roll(Y0, t) for t in range(3)]).reshape(1, 3, 1, 4)
    p = y + 0.1 * np.arange(1, 4).reshape(1, 3, 1, 1)
    b = conservation_budgets(p, y, conserved_channels=(0,))
    assert np.isnan(b.pred_delta[0, 0, 0]) and np.isnan(b.target_delta[0, 0, 0])
    np.testing.assert_allclose(b.pred_delta[0, 1:, 0], [0.4, 0.4], rtol=1e-12)
    # drift is measured from the truth's first predicted frame, so the first-step error shows
    np.testing.assert_allclose(b.pred_drift[0, :, 0], [0.4, 0.8, 1.2], rtol=1e-12)


def test_budgets_reject_a_misshaped_initial_frame():
    y = np.ones((1, 3, 1, 4))
    with pytest.raises(ValueError, match="initial must be"):
        conservation_budgets(y, y, conserved_channels=(0,), initial=np.ones((1, 4)))


def test_per_step_gaps_keep_each_conserved_quantity_apart():
    # channel 0 (mass) off by 0.5 on 4 cells -> 2 / 10; channel 2 (energy) exact -> 0; the scalar is their mean
    from ups.metrics import conservation_gap_per_step

    y = np.stack([Y0, Y0, Y0]).reshape(1, 1, 3, 4)
    p = y.copy()
    p[:, :, 0] += 0.5
    gaps = conservation_gap_per_step(p, y, conserved_channels=(0, 2))
    assert gaps.shape == (1, 1, 2)
    np.testing.assert_allclose(gaps.mean(axis=(0, 1)), [0.2, 0.0], rtol=1e-15)
    assert conservation_gap(p, y, conserved_channels=(0, 2)) == pytest.approx(0.1, rel=1e-15)
