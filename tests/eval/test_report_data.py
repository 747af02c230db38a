"""The report's curves by value: spectra, correlation against time, central-interval coverage, rollout panels."""

from __future__ import annotations

import numpy as np
import pytest

from ups.data.spec import TaskSpec
from ups.eval.report_data import (
    NOMINAL,
    central_coverage,
    correlation_per_step,
    last_step_spectrum,
    panel_steps,
    rollout_panel_records,
    spectrum_channels,
    split_curves,
)
from ups.metrics import spectral_error

NS_SPEC = TaskSpec(
    task="ns2d", fields=("vorticity", "u", "v"), grid_shape=(16, 16), domain=(1.0, 1.0), dt=0.1,
    velocity=("u", "v"), incompressible=True,
)  # fmt: skip


@pytest.mark.parametrize(("grid", "mode", "shell"), [((64,), (5,), 5), ((32, 32), (3, 4), 5), ((32, 32), (0, 7), 7)])
def test_spectrum_of_one_fourier_mode_puts_all_energy_in_its_shell(grid, mode, shell):
    axes = np.meshgrid(*[np.arange(n) / n for n in grid], indexing="ij")
    u = np.cos(2 * np.pi * sum(k * x for k, x in zip(mode, axes, strict=True)))  # [*S]
    x = np.broadcast_to(u, (3, 2, 1, *grid))  # [B, T, C, *S]
    e = last_step_spectrum(x)
    assert e.shape == (min(grid) // 2,)
    # Parseval with the orthonormal FFT: Σ_k E(k) = Σ_S u² = N_S / 2 for a unit cosine, all of it in one shell
    assert e[shell - 1] == pytest.approx(np.prod(grid) / 2, rel=1e-12)
    assert np.delete(e, shell - 1) == pytest.approx(0.0, abs=1e-9)


def test_spectrum_is_the_last_step_mean_over_trajectories():
    n = 32
    x = np.zeros((2, 3, 1, n))
    grid = np.arange(n) / n
    x[0, -1, 0] = np.sin(2 * np.pi * 2 * grid)  # energy n/2 in shell 2, trajectory 0 only
    x[1, -1, 0] = 2 * np.sin(2 * np.pi * 3 * grid)  # energy 4 n/2 in shell 3, trajectory 1 only
    x[:, 0, 0] = np.sin(2 * np.pi * 9 * grid)  # an earlier step is not part of it
    e = last_step_spectrum(x)
    assert e[1] == pytest.approx(n / 4) and e[2] == pytest.approx(n) and e[8] == pytest.approx(0.0, abs=1e-12)


def test_spectrum_channels_are_the_ones_spectral_error_compares():
    assert spectrum_channels(NS_SPEC) == [1, 2]  # kinetic energy: u and v, not vorticity
    rng = np.random.default_rng(0)
    p, y = rng.normal(size=(1, 1, 3, 16, 16)), rng.normal(size=(1, 1, 3, 16, 16))
    e_p, e_y = last_step_spectrum(p, [1, 2]), last_step_spectrum(y, [1, 2])
    # one frame: spectral_error is the mean over shells of the relative gap between exactly these two curves
    assert spectral_error(p, y, channels=[1, 2]) == pytest.approx(np.mean(np.abs(e_p - e_y) / e_y), rel=1e-12)
    p[:, :, 0] *= 100  # vorticity is not part of the kinetic-energy spectrum
    np.testing.assert_array_equal(last_step_spectrum(p, [1, 2]), e_p)


def test_correlation_of_identical_fields_is_one_at_every_step():
    x = np.random.default_rng(1).normal(size=(3, 5, 2, 16))
    assert correlation_per_step(x, x) == pytest.approx(np.ones(5), abs=0)


def test_correlation_per_step_by_hand():
    y = np.random.default_rng(2).normal(size=(2, 3, 1, 64))
    p = y.copy()
    p[:, 1] = -y[:, 1]  # anti-correlated at step 2
    p[:, 2] = 3 * y[:, 2] + 5  # an affine map keeps ρ = 1
    assert correlation_per_step(p, y) == pytest.approx([1.0, -1.0, 1.0], abs=1e-12)


def _gaussian_case(
    spread: float, members: int = 16, shape: tuple[int, ...] = (4, 5, 1, 32, 32), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Truth ~ N(μ, 1) at every point; members ~ N(μ, spread²) with the same per-point μ."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=shape)
    target = mu + rng.normal(size=mu.shape)
    samples = mu + spread * rng.normal(size=(members, *mu.shape))
    return samples, target


def test_calibrated_gaussian_ensemble_lies_on_the_diagonal():
    samples, target = _gaussian_case(spread=1.0)
    coverage = central_coverage(samples, target)
    assert coverage == pytest.approx(np.array(NOMINAL), abs=0.015)


def test_over_confident_ensemble_lies_below_the_diagonal_and_a_wide_one_above():
    narrow = central_coverage(*_gaussian_case(spread=0.3))
    wide = central_coverage(*_gaussian_case(spread=3.0))
    assert np.all(narrow < np.array(NOMINAL) - 0.05)
    assert np.all(wide > np.array(NOMINAL) + 0.05)


def test_over_confident_coverage_approaches_the_gaussian_value_for_a_large_ensemble():
    # members with 0.3 of the true spread: as M grows, PIT → Φ(Z / 0.3), so the central α-interval covers the truth
    # with probability P(|Z| < 0.3 z_α) = 2 Φ(0.3 z_α) − 1 (z_α the (1 + α)/2 quantile)
    from scipy.stats import norm

    coverage = central_coverage(*_gaussian_case(spread=0.3, members=256, shape=(2, 4, 1, 32, 32)))
    expected = 2 * norm.cdf(0.3 * norm.ppf((1 + np.array(NOMINAL)) / 2)) - 1
    assert coverage == pytest.approx(expected, abs=0.015)


def test_coverage_of_a_truth_below_every_member_by_hand():
    target = np.zeros((1, 2, 1, 8))
    samples = np.ones((5, 1, 2, 1, 8))
    # rank 0 of 6: the randomised PIT is uniform on [0, 1/6], so the interval [(1 − α)/2, (1 + α)/2] holds it with
    # probability 6 · max(0, 1/6 − (1 − α)/2): 0.1, 0.4, 0.7 for α = 0.7, 0.8, 0.9 and 0 below
    alpha = np.array(NOMINAL)
    expected = np.clip(6 * (1 / 6 - (1 - alpha) / 2), 0, 1)
    assert central_coverage(samples, target) == pytest.approx(expected, abs=1e-12)
    assert expected[-3:] == pytest.approx([0.1, 0.4, 0.7])
    with pytest.raises(ValueError, match="nominal"):
        central_coverage(samples, target, nominal=[0.5, 1.0])


def test_panel_steps_spread_over_the_rollout():
    assert panel_steps(16) == [1, 6, 11, 16]
    assert panel_steps(2) == [1, 2]
    assert panel_steps(1) == [1]


def test_rollout_panels_1d_hold_the_first_trajectory_values():
    x = np.arange(2 * 3 * 2 * 4, dtype=float).reshape(2, 3, 2, 4)  # [B, T, C, X]
    records = rollout_panel_records({"target": x, "prediction": -x}, ("rho", "e"), [1, 3])
    assert len(records) == 2 * 2 * 2 * 4  # series × steps × fields × cells
    by_key = {(r["series"], r["step"], r["field"], r["x"]): r["value"] for r in records}
    assert by_key[("target", 3, "e", 2)] == x[0, 2, 1, 2]
    assert by_key[("prediction", 1, "rho", 0)] == -x[0, 0, 0, 0]


def test_rollout_panels_2d_are_strided_heatmaps_of_the_first_field():
    x = np.random.default_rng(3).normal(size=(1, 2, 2, 64, 40))  # [B, T, C, H, W]
    records = rollout_panel_records({"target": x}, ("w", "u"), [2])
    assert {r["field"] for r in records} == {"w"}
    assert len(records) == 32 * 20  # stride 2 on both axes: at most 32 cells each
    r = next(r for r in records if r["i"] == 10 and r["j"] == 6)
    assert r["value"] == x[0, 1, 0, 10, 6]


def test_split_curves_without_an_ensemble_has_no_coverage():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(2, 4, 3, 16, 16))
    persistence = np.repeat(y[:, :1], 4, axis=1)
    curves = split_curves("test", y, y, persistence, NS_SPEC)
    assert curves.coverage is None and curves.steps == (1, 2, 3, 4)
    assert curves.correlation["prediction"] == pytest.approx(np.ones(4))
    assert curves.correlation["persistence"][0] == pytest.approx(1.0)  # step 1 is compared with frame 1 itself
    np.testing.assert_array_equal(curves.spectrum["prediction"], curves.spectrum["target"])
    with_ensemble = split_curves("test", y, y, persistence, NS_SPEC, samples=np.stack([y, y + 1, y - 1]))
    assert with_ensemble.coverage is not None and with_ensemble.coverage.shape == (len(NOMINAL),)
