"""fRMSE bands and the energy-spectrum error: Parseval, radial shells, single modes, skipped shells, NaN policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ups.metrics import (
    energy_spectrum,
    frmse_high,
    frmse_low,
    frmse_mid,
    frmse_per_step,
    spectral_error,
)
from ups.metrics.spectral import k_max, radial_shells, spectral_scores

finite = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)


def mode_2d(kx: int, ky: int, n: int = 32, amplitude: float = 1.0) -> np.ndarray:
    """``A cos(2π (kx x + ky y))`` on an n × n periodic unit grid, as [1, 1, 1, n, n]."""
    x = np.arange(n) / n
    field = amplitude * np.cos(2 * np.pi * (kx * x[:, None] + ky * x[None, :]))
    return field.reshape(1, 1, 1, n, n)


@settings(deadline=None, max_examples=40)
@given(
    shape=st.sampled_from([(2, 2, 2, 8, 8), (1, 3, 1, 31), (1, 1, 2, 6, 5, 7), (1, 2, 1, 32, 9)]),
    data=st.data(),
)
def test_band_energies_add_up_to_the_mse_parseval(shape, data):
    pred = data.draw(arrays(np.float64, shape, elements=finite))
    target = data.draw(arrays(np.float64, shape, elements=finite))
    bands = frmse_per_step(pred, target)  # [B, T, C, 3]
    mse = np.mean((pred - target) ** 2, axis=tuple(range(3, len(shape))))
    np.testing.assert_allclose((bands**2).sum(axis=-1), mse, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kx", "ky", "band"),
    [
        (3, 0, "low"),  # |k| = 3
        (3, 2, "low"),  # √13 = 3.61: shell ⌊|k|⌋ = 3 (rounding would put it in shell 4, the mid band)
        (3, 4, "mid"),  # √25 = 5 exactly
        (8, 8, "mid"),  # √128 = 11.3
        (8, 9, "high"),  # √145 = 12.04
        (16, 0, "high"),  # Nyquist
    ],
)
def test_a_single_mode_error_lands_in_its_radial_band(kx, ky, band):
    amplitude = 0.5
    y = mode_2d(1, 1, amplitude=2.0)
    p = y + mode_2d(kx, ky, amplitude=amplitude)
    mse = np.mean((p - y) ** 2)  # A²/2, or A² at the Nyquist (cos = ±1)
    values = {"low": frmse_low(p, y), "mid": frmse_mid(p, y), "high": frmse_high(p, y)}
    assert values[band] == pytest.approx(np.sqrt(mse), rel=1e-12)
    for other in set(values) - {band}:
        assert values[other] < 1e-13


def test_radial_shells_and_parseval_weights():
    shell, weight = radial_shells((4, 4))  # half spectrum 4 × 3: ky = 0, 1, 2
    assert shell.reshape(4, 3).tolist() == [[0, 1, 2], [1, 1, 2], [2, 2, 2], [1, 1, 2]]
    assert weight.reshape(4, 3)[0].tolist() == [1.0, 2.0, 1.0]  # ky = 0 and the Nyquist are stored once
    assert k_max((64, 32)) == 16 and k_max((9,)) == 4


def test_energy_spectrum_of_a_cosine():
    # cos(2π 3 x) on 16 points: Σ y² = 8, all of it in shell 3 (orthonormal FFT)
    x = np.arange(16) / 16
    y = np.cos(2 * np.pi * 3 * x).reshape(1, 1, 1, 16)
    e = energy_spectrum(y)
    assert e.shape == (1, 1, 8)
    np.testing.assert_allclose(e[0, 0], np.eye(8)[2] * 8.0, atol=1e-12)


def test_spectral_error_hand_values():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 3, 2, 16, 16))
    assert spectral_error(y.copy(), y) == 0.0
    # √2 · y has twice the energy in every shell: |2E − E| / E = 1 everywhere
    assert spectral_error(np.sqrt(2.0) * y, y) == pytest.approx(1.0, rel=1e-12)
    # a spatial shift keeps the spectrum: zero spectral error although nRMSE is large
    assert spectral_error(np.roll(y, 5, axis=-1), y) == pytest.approx(0.0, abs=1e-12)


def test_spectral_error_skips_shells_where_the_truth_has_no_energy():
    # truth: shells 1 and 3 only; prediction adds energy in shell 2 (no truth energy there: skipped, not infinite)
    y = mode_2d(1, 0) + mode_2d(3, 0)
    p = y + mode_2d(2, 0, amplitude=0.3)
    assert spectral_error(p, y) == pytest.approx(0.0, abs=1e-12)
    # and a wrong amplitude in a valid shell counts, averaged over the 2 valid shells: (|1.21 − 1| / 1) / 2
    q = mode_2d(1, 0, amplitude=1.1) + mode_2d(3, 0)
    assert spectral_error(q, y) == pytest.approx(0.21 / 2, rel=1e-10)


def test_spectral_error_sums_only_the_energy_channels():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(1, 2, 2, 8, 8))
    p = y.copy()
    p[:, :, 1] *= 3.0  # channel 1 is not an energy channel
    assert spectral_error(p, y, channels=[0]) == 0.0
    assert spectral_error(p, y) > 0.5


def test_spectral_error_of_a_constant_target_is_nan_with_warning():
    y = np.ones((1, 1, 1, 8, 8))
    with pytest.warns(RuntimeWarning, match="zero denominator in spectral_error"):
        assert np.isnan(spectral_error(y + mode_2d(1, 0, n=8), y))


def test_spectral_family_matches_the_metrics_alone():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(2, 2, 3, 12, 10))
    p = y + 0.3 * rng.normal(size=y.shape)
    scores = spectral_scores(p, y, channels=[1, 2])
    assert scores["frmse_low"] == pytest.approx(frmse_low(p, y), rel=1e-12)
    assert scores["frmse_mid"] == pytest.approx(frmse_mid(p, y), rel=1e-12)
    assert scores["frmse_high"] == pytest.approx(frmse_high(p, y), rel=1e-12)
    assert scores["spectral_error"] == pytest.approx(spectral_error(p, y, channels=[1, 2]), rel=1e-12)


def test_torch_and_numpy_give_identical_spectral_metrics():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(2, 2, 2, 8, 8)).astype(np.float32)
    p = (y + 0.1 * rng.normal(size=y.shape)).astype(np.float32)
    for metric in (frmse_low, frmse_mid, frmse_high, spectral_error):
        assert metric(torch.from_numpy(p), torch.from_numpy(y)) == metric(p, y)
