"""burgers1d solver against the Cole–Hopf exact solution, its invariants, and the seeded split generator."""

from __future__ import annotations

import numpy as np
import pytest

from ups.data.solvers import TASKS
from ups.data.solvers.burgers1d import (
    Burgers1D,
    Burgers1DSize,
    SineInitialConditions,
    front_resolving_grid,
    solve_burgers,
)
from ups.errors import UserInputError

COUNTS = {"train": 6, "val": 2, "test": 2, "ood_regime": 2}
TINY = Burgers1DSize(n_x=64, oversample=2, n_frames=5, dt=0.05, counts=COUNTS)


def cole_hopf_sine(x: np.ndarray, t: float, nu: float, c: float = 0.0) -> np.ndarray:
    """Exact solution for u0 = c + sin(2πx) from the Cole–Hopf heat-kernel integral (Whitham 1974, ch. 4).

    u(x, t) = ∫ (x − y)/t e^{−G/2ν} dy / ∫ e^{−G/2ν} dy with G(y) = Φ(y) + (x − y)²/2t and Φ(y) = ∫_0^y u0 =
    c y + (1 − cos 2πy)/2π. The integrand's mass sits at the characteristic feet, where s = (x − y)/t equals u0(y) ∈
    [c − 1, c + 1]; beyond that G grows at least like t Δs²/2, so a margin √(160ν/t) in s truncates at e^{−40}. The
    nodes follow the characteristics (y = x − t s), not a fixed window around x: with a mean c the feet drift by c t,
    which a window x ± O(1) misses late in the horizon. Spacing: a quarter of the narrowest peak √(2ν / max G''),
    max G'' = 2π + 1/t, so the trapezoid rule converges spectrally; G − min G keeps the exponentials in range.
    """
    pad = np.sqrt(160.0 * nu / t)
    s_lo, s_hi = c - 1.0 - pad, c + 1.0 + pad
    width = np.sqrt(2.0 * nu * t / (1.0 + 2.0 * np.pi * t))
    n_quad = int(np.ceil(t * (s_hi - s_lo) / (0.25 * width))) + 1
    y = x[:, None] - t * np.linspace(s_lo, s_hi, n_quad)[None, :]  # [x, quad]
    g = c * y + (1.0 - np.cos(2.0 * np.pi * y)) / (2.0 * np.pi) + (x[:, None] - y) ** 2 / (2.0 * t)
    w = np.exp(-(g - g.min(axis=1, keepdims=True)) / (2.0 * nu))
    return np.sum((x[:, None] - y) / t * w, axis=1) / np.sum(w, axis=1)


def cole_hopf_sine_series(x: np.ndarray, t: float, nu: float, n_modes: int = 200, digits: int = 60) -> np.ndarray:
    """Exact solution for u0 = sin(2πx) from a Fourier–Bessel series in high precision: a check of the quadrature.

    u = −2ν φ_x / φ with φ_t = ν φ_xx and φ0 = exp(a cos 2πx), a = 1/(4πν); exp(a cos θ) = I_0(a) + 2 Σ_n I_n(a)
    cos nθ, so φ(x, t) = I_0 + 2 Σ_n I_n e^{−ν(2πn)² t} cos 2πnx. Near the shock φ is ~e^{−2a} of the terms it sums
    (e^{−64} at ν = 0.0025), so float64 loses every digit there at early times; 60 digits leave ~30.
    """
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(digits):
        nu_mp = mpmath.mpf(nu)
        a = 1 / (4 * mpmath.pi * nu_mp)
        coef = [mpmath.besseli(n, a) * mpmath.exp(-nu_mp * (2 * mpmath.pi * n) ** 2 * t) for n in range(n_modes + 1)]
        out = []
        for xi in x:
            theta = 2 * mpmath.pi * mpmath.mpf(float(xi))
            phi = coef[0] + 2 * mpmath.fsum(coef[n] * mpmath.cos(n * theta) for n in range(1, n_modes + 1))
            phi_x = -4 * mpmath.pi * mpmath.fsum(n * coef[n] * mpmath.sin(n * theta) for n in range(1, n_modes + 1))
            out.append(float(-2 * nu_mp * phi_x / phi))
    return np.array(out)


def sine(c: float = 0.0, amp: float = 1.0, k: int = 1) -> SineInitialConditions:
    """One trajectory u0 = c + amp · sin(2πkx)."""
    return SineInitialConditions(np.array([[k]]), np.array([[amp]]), np.zeros((1, 1)), np.array([c]))


def rel_l2(a: np.ndarray, b: np.ndarray, axis=None) -> np.ndarray | float:
    return np.linalg.norm(a - b, axis=axis) / np.linalg.norm(b, axis=axis)


@pytest.mark.parametrize("nu", [0.0025, 0.005])
def test_cole_hopf_quadrature_agrees_with_a_high_precision_series(nu):
    x = np.concatenate([np.arange(16) / 16 + 1 / 64, [0.49, 0.499, 0.5, 0.501]])  # ... and nodes across the shock
    for t in (0.01, 0.16, 2.0):  # before, at (t = 1/2π) and long after shock formation
        np.testing.assert_allclose(cole_hopf_sine(x, t, nu), cole_hopf_sine_series(x, t, nu), rtol=0, atol=1e-12)
    # A mean c only translates the solution (Galilean invariance), which exercises the drifting nodes.
    for t in (0.3, 2.0):
        moved = 0.6 + cole_hopf_sine((x - 0.6 * t) % 1.0, t, nu)
        np.testing.assert_allclose(cole_hopf_sine(x, t, nu, c=0.6), moved, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cole_hopf_sine(x, 1e-6, nu), np.sin(2 * np.pi * x), atol=1e-5)


def test_matches_cole_hopf_at_nu_0p01_n256_t1():
    x = np.arange(256) / 256
    u = solve_burgers(np.sin(2 * np.pi * x), 0.01, np.array([0.0, 0.5, 1.0]))
    # The brief's bar is 1e-4; the solver reaches ~4e-9, so a regression by orders of magnitude still fails here.
    assert rel_l2(u[2], cole_hopf_sine(x, 1.0, 0.01)) < 1e-6
    assert rel_l2(u[1], cole_hopf_sine(x, 0.5, 0.01)) < 1e-6


def _smallest_nu(size: str, split: str) -> float:
    cfg = Burgers1D.sizes[size]
    return min(cfg.nu_ood if split == "ood_regime" else cfg.nu_train)


@pytest.mark.parametrize(
    ("size", "split"),
    [("small", "train"), ("small", "ood_regime"), ("full", "train"), ("full", "ood_regime")],
)
def test_generator_path_matches_cole_hopf_at_every_frame(size, split):
    # train, val and test share their ν values; ood_regime has its own. The initial condition has the largest
    # range the size can draw (Δu = 2 n_modes amp_max, the sharpest fronts) and its largest mean, so the shock moves.
    cfg = Burgers1D.sizes[size]
    nu, c, amp = _smallest_nu(size, split), cfg.mean_range[1], cfg.n_modes * cfg.amp_max
    u = Burgers1D.solve(size, sine(c, amp), np.array([nu]))[0]  # [time, n_x], the generator's own solver path
    x = np.arange(cfg.n_x) / cfg.n_x
    t = np.arange(cfg.n_frames) * cfg.dt
    exact = np.stack([c + amp * np.sin(2 * np.pi * x)] + [cole_hopf_sine(x, ti, nu, c) for ti in t[1:]])
    err = rel_l2(u, exact, axis=-1)  # [time]
    # Bar 1e-5, ten times below the brief's 1e-4: the old fixed 512-point grid of the small size gave 2.9e-5 here at
    # ν = 0.0025 (t = 0.25, near shock formation); the rule's 1024 gives 8e-8. Late frames are far easier (≤ 1e-9).
    assert err.max() < 1e-5, f"worst frame {err.argmax()} (t = {t[err.argmax()]:.2f}): {err.max():.2e}"


def test_front_resolving_grid_doubles_the_coarsest_grid_until_the_front_has_enough_nodes():
    nu = np.array([0.0025, 0.0025, 0.0025, 0.005, 0.001])
    u_range = np.array([1.4, 1.5, 2.0, 2.0, 2.0])
    # nodes needed = 3.5 Δu / 4ν: 490, 525, 700, 350, 1750
    np.testing.assert_array_equal(front_resolving_grid(512, nu, u_range, 3.5), [512, 1024, 1024, 512, 2048])


@pytest.mark.parametrize("k", [1, 4])
def test_doubling_the_chosen_grid_changes_stored_frames_by_under_1e_5(k):
    # A range Δu = 2 amp just inside the small size's coarsest grid at the ood ν (front_points nodes across 4ν/Δu):
    # the worst case the rule accepts. k = 4 steepens 4x sooner, so its shock forms between the first stored frames.
    cfg = Burgers1D.sizes["small"]
    nu = np.array([min(cfg.nu_ood)])
    amp = 0.5 * 4.0 * nu[0] * cfg.n_x * cfg.oversample / cfg.front_points - 1e-3
    chosen = Burgers1D.solve("small", sine(0.6, amp, k), nu)
    doubled = Burgers1D.solve("small", sine(0.6, amp, k), nu, refine=2)
    assert rel_l2(chosen, doubled, axis=-1).max() < 1e-5


def test_stride_returns_the_nodes_of_the_fine_solve():
    x = np.arange(128) / 128
    fine = solve_burgers(0.3 + np.sin(2 * np.pi * x), 0.01, np.array([0.0, 0.2]))
    np.testing.assert_array_equal(solve_burgers(0.3 + np.sin(2 * np.pi * x), 0.01, [0.0, 0.2], stride=4), fine[:, ::4])
    with pytest.raises(ValueError, match="stride"):
        solve_burgers(np.sin(2 * np.pi * x), 0.01, [0.1], stride=3)


def test_per_trajectory_viscosity_matches_each_exact_solution():
    x = np.arange(256) / 256
    u0 = np.stack([np.sin(2 * np.pi * x)] * 2)
    u = solve_burgers(u0, np.array([0.01, 0.03]), np.array([0.7]))
    assert rel_l2(u[0, 0], cole_hopf_sine(x, 0.7, 0.01)) < 1e-6
    assert rel_l2(u[1, 0], cole_hopf_sine(x, 0.7, 0.03)) < 1e-6
    assert rel_l2(u[0, 0], u[1, 0]) > 1e-2  # the two viscosities really differ


def test_time_stepping_is_fourth_order():
    x = np.arange(512) / 512
    exact = cole_hopf_sine(x, 1.0, 0.01)
    errors = [rel_l2(solve_burgers(np.sin(2 * np.pi * x), 0.01, [1.0], cfl=c)[0], exact) for c in (1.0, 0.5)]
    assert 11.0 < errors[0] / errors[1] < 22.0  # halving the step divides an RK4 error by ~16


def test_mass_is_conserved_to_roundoff_and_energy_decays():
    rng = np.random.default_rng(3)
    x = np.arange(256) / 256
    k = np.arange(1, 5)[:, None]
    u0 = 0.3 + np.einsum("bk,kx->bx", rng.normal(0, 0.2, (4, 4)), np.sin(2 * np.pi * k * x + rng.uniform(0, 6, (4, 1))))
    u = solve_burgers(u0, np.array([0.005, 0.01, 0.02, 0.04]), np.linspace(0, 2, 21))
    mass = u.mean(axis=-1)  # ∫_0^1 u dx on the periodic nodes, [B, T]
    assert np.max(np.abs(mass - mass[:, :1])) < 1e-13
    energy = np.mean(u**2, axis=-1)  # d/dt ∫u²/2 = -ν ∫u_x² < 0
    assert np.all(np.diff(energy, axis=1) < 0)


def test_is_registered_with_its_spec():
    assert TASKS.get("burgers1d") is Burgers1D
    spec = Burgers1D.spec("small")
    assert (spec.fields, spec.grid_shape, spec.bc, spec.param_names) == (("u",), (256,), "periodic", ("nu",))
    assert spec.conserved[0].name == "mass" and spec.conserved[0].field == "u"
    with pytest.raises(UserInputError, match="small"):
        Burgers1D.spec("huge")


def test_generation_is_frozen_by_seed():
    a, b, c = Burgers1D.generate(TINY, 7), Burgers1D.generate(TINY, 7), Burgers1D.generate(TINY, 8)
    for split in a:
        np.testing.assert_array_equal(a[split].fields["u"], b[split].fields["u"])
        np.testing.assert_array_equal(a[split].params, b[split].params)
        assert not np.allclose(a[split].fields["u"], c[split].fields["u"])


@pytest.fixture(scope="module")
def small():
    return Burgers1D.generate("small", seed=0)


def test_small_splits_are_disjoint_and_ood_is_outside_the_train_range(small):
    cfg = Burgers1D.sizes["small"]
    assert {s: small[s].n_traj for s in small} == cfg.counts
    all_ids = np.concatenate([small[s].ids for s in small])
    assert len(np.unique(all_ids)) == len(all_ids)
    nu_train = np.concatenate([small[s].params[:, 0] for s in ("train", "val", "test")])
    nu_ood = small["ood_regime"].params[:, 0]
    assert set(np.round(nu_train, 6)) <= set(np.round(np.float32(cfg.nu_train), 6))
    assert np.all((nu_ood < nu_train.min()) | (nu_ood > nu_train.max()))
    first_frames = np.concatenate([small[s].fields["u"][:, 0] for s in small])
    assert len(np.unique(first_frames.round(6), axis=0)) == len(first_frames)  # no initial condition repeats


def test_stored_frames_solve_burgers_with_the_stored_nu_and_dt(small):
    # Re-solving from a stored frame 0 with the stored ν must reproduce a later stored frame: catches a wrong ν,
    # a wrong dt label or a frame shift. (The data was made on 2x the grid, so agreement is to float32 and grid.)
    split = small["test"]
    u0, nu = split.fields["u"][:, 0].astype(np.float64), split.params[:, 0].astype(np.float64)
    dt = Burgers1D.spec("small").dt
    redo = solve_burgers(u0, nu, np.array([10 * dt]))[:, 0]
    assert rel_l2(redo, split.fields["u"][:, 10]) < 1e-4
    assert rel_l2(split.fields["u"][:, 11], split.fields["u"][:, 10]) > 1e-3  # ... and the frames differ
