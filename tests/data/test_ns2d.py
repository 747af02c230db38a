"""ns2d solver against exact solutions, its time order and invariants; the stored velocity; the split generator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ups.data.solvers import TASKS
from ups.data.solvers.ns2d import (
    NS2D,
    NS2DSize,
    fno_forcing,
    gaussian_random_field,
    solve_ns2d,
    truncate,
    velocity_from_vorticity,
    wavenumbers,
)
from ups.errors import UserInputError

COUNTS = {"train": 6, "val": 2, "test": 2, "ood_regime": 2}
TINY = NS2DSize(n=16, oversample=2, n_frames=3, dt=0.1, counts=COUNTS)


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")  # axis 0 = x, axis 1 = y, as stored


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def spectral_derivative(f: np.ndarray, axis: int) -> np.ndarray:
    """∂f/∂x (axis -2) or ∂f/∂y (axis -1) on [0, 1)², by FFT (Nyquist modes dropped)."""
    n = f.shape[-1]
    kx, ky = wavenumbers(n)
    k = kx if axis == -2 else ky
    k = np.where(np.abs(k) >= np.pi * n, 0.0, k)
    return np.fft.irfft2(1j * k * np.fft.rfft2(f), s=(n, n))


def test_taylor_green_vortices_decay_at_the_exact_viscous_rate():
    # ω0 = sin(2πkx) sin(2πky): ψ ∝ ω, so u·∇ω = 0 and ω(t) = ω0 e^{−2ν(2πk)² t}; the integrating factor makes the
    # viscous decay exact, so the match is to round-off at any step.
    x, y = grid(32)
    k = np.array([1, 2, 3])[:, None, None]
    nu = np.array([0.01, 0.003, 0.001])
    w0 = np.sin(2 * np.pi * k * x) * np.sin(2 * np.pi * k * y)
    t = np.array([0.5, 2.0, 5.0])
    w = solve_ns2d(w0, nu, t)
    exact = w0[:, None] * np.exp(-2 * nu[:, None, None, None] * (2 * np.pi * k[:, None]) ** 2 * t[:, None, None])
    assert np.max(np.abs(w - exact)) < 1e-13


def test_forced_shear_flow_grows_to_the_exact_saturation():
    # The FNO forcing f depends on x + y only, as does the flow it drives from rest, so u·∇ω = 0 and
    # ω = f (1 − e^{−λt}) / λ with λ = ν |κ|² = 8π² ν. Checks the forcing's sign, size and time integration.
    n = 32
    f = fno_forcing(n)
    nu = np.array([0.02, 0.002])
    lam = nu * 8 * np.pi**2
    t = np.array([0.5, 2.0, 5.0])
    w = solve_ns2d(np.zeros((2, n, n)), nu, t, forcing=f)
    exact = f * ((1 - np.exp(-lam[:, None] * t)) / lam[:, None])[:, :, None, None]
    assert rel(w, exact) < 1e-6


def test_time_derivative_matches_the_equation_for_an_analytic_state():
    # ω = cos 2πx + ½ cos 4πy: u = −sin(4πy)/(8π), v = sin(2πx)/(2π), so u ω_x + v ω_y = −¾ sin 2πx sin 4πy and
    # ω_t = ¾ sin 2πx sin 4πy + νΔω + f. A one-sided second-order difference of the solver's output must match it:
    # catches a wrong sign of the advection, of the velocity, of the viscosity or of the forcing.
    x, y = grid(32)
    nu, d = 0.01, 1e-3
    f = fno_forcing(32)
    w0 = np.cos(2 * np.pi * x) + 0.5 * np.cos(4 * np.pi * y)
    w = solve_ns2d(w0, nu, np.array([0.0, d, 2 * d]), forcing=f, h_max=d / 4)
    w_t = (-3 * w[0] + 4 * w[1] - w[2]) / (2 * d)
    lap = -((2 * np.pi) ** 2) * np.cos(2 * np.pi * x) - 0.5 * (4 * np.pi) ** 2 * np.cos(4 * np.pi * y)
    expected = 0.75 * np.sin(2 * np.pi * x) * np.sin(4 * np.pi * y) + nu * lap + f
    assert rel(w_t, expected) < 1e-5


def test_time_stepping_is_fourth_order_on_a_random_forced_flow():
    n, horizon = 32, 2.0
    w0 = gaussian_random_field(np.random.default_rng(0), 1, n)[0]
    f = fno_forcing(n)

    def run(steps: int) -> np.ndarray:  # cfl=inf: the step is horizon / steps exactly
        return solve_ns2d(w0, 1e-3, [horizon], forcing=f, cfl=np.inf, h_max=horizon / steps)[0]

    ref = run(256)
    errors = [np.linalg.norm(run(m) - ref) / np.linalg.norm(ref) for m in (8, 16, 32)]
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 13.0 < coarse / fine < 19.0  # integrating-factor RK4: halving h divides the error by ~16


def test_inviscid_unforced_flow_conserves_energy_and_enstrophy():
    # The dealiased Galerkin nonlinear term conserves both quadratic invariants; RK4 adds only O(h⁴) drift.
    w0 = gaussian_random_field(np.random.default_rng(1), 2, 32)
    w = solve_ns2d(w0, 0.0, [0.0, 2.0], h_max=0.01)
    u, v = velocity_from_vorticity(w)
    energy, enstrophy = np.mean(u**2 + v**2, axis=(-2, -1)), np.mean(w**2, axis=(-2, -1))
    assert np.max(np.abs(energy[:, 1] / energy[:, 0] - 1)) < 1e-10
    assert np.max(np.abs(enstrophy[:, 1] / enstrophy[:, 0] - 1)) < 1e-10
    assert rel(w[:, 1], w[:, 0]) > 0.1  # ... while the field itself has moved
    w_hat = np.fft.rfft2(w[:, 1])  # 2/3 dealiasing: modes with |k_x| or |k_y| ≥ n/3 stay empty
    k = np.abs(np.fft.fftfreq(32, d=1 / 32))
    outside = (k[:, None] >= 32 / 3) | (np.arange(17)[None, :] >= 32 / 3)
    assert np.max(np.abs(w_hat[:, outside])) < 1e-10


def test_truncation_keeps_the_resolved_modes_exactly():
    x, y = grid(64)
    w = np.sin(2 * np.pi * 3 * x) * np.cos(2 * np.pi * 7 * y) + np.cos(2 * np.pi * (5 * x - 2 * y))
    xs, ys = grid(16)
    expected = np.sin(2 * np.pi * 3 * xs) * np.cos(2 * np.pi * 7 * ys) + np.cos(2 * np.pi * (5 * xs - 2 * ys))
    assert np.max(np.abs(truncate(w, 16) - expected)) < 1e-13


def test_is_registered_with_its_spec():
    assert TASKS.get("ns2d") is NS2D
    spec = NS2D.spec("small")
    assert (spec.fields, spec.grid_shape, spec.domain, spec.bc, spec.param_names) == (
        ("w", "u", "v"),
        (32, 32),
        (1.0, 1.0),
        "periodic",
        ("nu",),
    )
    assert spec.velocity == ("u", "v") and spec.velocity_channels == (1, 2) and spec.incompressible
    assert [q.field for q in spec.conserved] == ["w", "u", "v"]
    assert NS2D.spec("full").grid_shape == (128, 128)
    with pytest.raises(UserInputError, match="small"):
        NS2D.spec("huge")


def test_generation_is_frozen_by_seed():
    a, b, c = NS2D.generate(TINY, 7), NS2D.generate(TINY, 7), NS2D.generate(TINY, 8)
    for split in a:
        for name in ("w", "u", "v"):
            np.testing.assert_array_equal(a[split].fields[name], b[split].fields[name])
        np.testing.assert_array_equal(a[split].params, b[split].params)
        assert not np.allclose(a[split].fields["w"], c[split].fields["w"])


@pytest.fixture(scope="module")
def small():
    return NS2D.generate("small", seed=0)


def test_small_splits_are_disjoint_and_ood_is_outside_the_train_range(small):
    cfg = NS2D.sizes["small"]
    assert {s: small[s].n_traj for s in small} == cfg.counts
    assert small["train"].fields["w"].shape == (32, 41, 32, 32)
    all_ids = np.concatenate([small[s].ids for s in small])
    assert len(np.unique(all_ids)) == len(all_ids)
    nu_train = np.concatenate([small[s].params[:, 0] for s in ("train", "val", "test")])
    nu_ood = small["ood_regime"].params[:, 0]
    assert cfg.nu_train[0] <= nu_train.min() * (1 + 1e-6) and nu_train.max() <= cfg.nu_train[1] * (1 + 1e-6)
    assert np.all(nu_ood < nu_train.min())


def divergence_and_curl_errors(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """RMS spectral divergence / RMS velocity gradient, and max |curl − w| / max |w|."""
    u_x, u_y, v_x, v_y = (spectral_derivative(f, axis) for f in (u, v) for axis in (-2, -1))
    grad_scale = np.sqrt(np.mean(u_x**2 + u_y**2 + v_x**2 + v_y**2))
    return float(np.sqrt(np.mean((u_x + v_y) ** 2)) / grad_scale), rel(v_x - u_y, w)


def test_velocity_from_vorticity_is_divergence_free_with_the_right_curl_in_float64():
    # What the generator does before the float32 cast: a band-limited float64 solver state → (u, v).
    w0 = gaussian_random_field(np.random.default_rng(2), 3, 32)
    w = solve_ns2d(w0, 2e-3, [0.0, 1.0], forcing=fno_forcing(32))
    u, v = velocity_from_vorticity(w)
    div_err, curl_err = divergence_and_curl_errors(u, v, w)
    assert div_err < 1e-12 and curl_err < 1e-12
    x, y = grid(32)  # and the sign convention on one mode: ω = cos 2πx → ψ = ω/4π², u = ψ_y = 0, v = −ψ_x
    u, v = velocity_from_vorticity(np.cos(2 * np.pi * x))
    assert np.max(np.abs(u)) < 1e-15 and rel(v, np.sin(2 * np.pi * x) / (2 * np.pi)) < 1e-14


def test_stored_velocity_is_divergence_free_and_its_curl_is_the_stored_vorticity(small):
    for split in small.values():
        u, v, w = (split.fields[name].astype(np.float64) for name in ("u", "v", "w"))
        div_err, curl_err = divergence_and_curl_errors(u, v, w)
        assert div_err < 1e-6 and curl_err < 1e-6  # float32 storage
        assert np.max(np.abs(u.mean(axis=(-2, -1)))) < 1e-7 and np.max(np.abs(w.mean(axis=(-2, -1)))) < 1e-6


def test_stored_frames_solve_ns2d_with_the_stored_nu_and_dt(small):
    # Re-solving from a stored frame with the stored ν over four stored dt reproduces the stored frame: catches a
    # wrong ν, a wrong dt label, a frame shift or a missing forcing (float32 storage, same grid).
    cfg = NS2D.sizes["small"]
    split = small["ood_regime"]
    w = split.fields["w"].astype(np.float64)
    redo = solve_ns2d(w[:, 10], split.params[:, 0], [4 * cfg.dt], forcing=fno_forcing(cfg.n))[:, 0]
    assert rel(redo, w[:, 14]) < 1e-4
    assert rel(w[:, 15], w[:, 14]) > 1e-3


def test_initial_condition_does_not_depend_on_oversample():
    # Drawn on the stored grid and interpolated spectrally onto the solver grid: a finer solve refines the same flow,
    # and from oversample 2 on (solver 2/3 band above the stored modes) frame 0 is the drawn field itself.
    a, b = (NS2D.generate(replace(TINY, oversample=o), 3) for o in (2, 4))
    for split in a:
        np.testing.assert_array_equal(a[split].params, b[split].params)
        np.testing.assert_allclose(a[split].fields["w"][:, 0], b[split].fields["w"][:, 0], rtol=0, atol=1e-6)


def test_stored_frames_converge_spectrally_with_oversample_at_the_smallest_nu_of_each_split():
    # The generator's path (NS2D.solve on a field drawn on the stored grid) at oversample 1, 2, 4, at the smallest ν of
    # train and of ood_regime, over the whole small-size horizon: against the 4x solve, the 1x solve (which dealiases
    # away the initial modes n/3 ≤ |k| < n/2 and under-resolves the cascade) is off by 1e-3..1e-1, the 2x solve by
    # < 1e-6 (time-step error of the CFL rule): spectral convergence, at every frame up to the last.
    cfg = NS2DSize(n=16, oversample=1, n_frames=41, dt=0.25)
    nu = np.array([cfg.nu_train[0], cfg.nu_ood[0]])
    w0 = gaussian_random_field(np.random.default_rng(0), 2, cfg.n)
    frames = {o: NS2D.solve(replace(cfg, oversample=o), w0, nu) for o in (1, 2, 4)}  # [2, T, 3, n, n]

    def error(o: int) -> np.ndarray:  # [traj, frame] relative L2 over (w, u, v) against the 4x solve
        diff = (frames[o] - frames[4]).reshape(2, cfg.n_frames, -1)
        return np.linalg.norm(diff, axis=-1) / np.linalg.norm(frames[4].reshape(2, cfg.n_frames, -1), axis=-1)

    e1, e2 = error(1)[:, 1:], error(2)[:, 1:]
    assert np.all(e1 > 1e-4) and np.all(e2 < 1e-6), (e1.min(), e2.max())
    assert np.all(e2 < 1e-3 * e1)
