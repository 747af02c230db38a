"""burgers1d solver against the Cole–Hopf exact solution, its invariants, and the seeded split generator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ive

from ups.data.solvers import TASKS
from ups.data.solvers.burgers1d import Burgers1D, Burgers1DSize, solve_burgers
from ups.errors import UserInputError

COUNTS = {"train": 6, "val": 2, "test": 2, "ood_regime": 2}
TINY = Burgers1DSize(n_x=64, oversample=2, n_frames=5, dt=0.05, counts=COUNTS)


def cole_hopf_sine_fourier(x: np.ndarray, t: float, nu: float, n_modes: int = 400) -> np.ndarray:
    """Exact solution for u0 = sin(2πx) by Cole–Hopf with a Fourier–Bessel series for φ.

    u = -2ν φ_x / φ with φ_t = ν φ_xx and φ0 = exp(-(1/2ν) ∫_0^x u0) = exp(-a) exp(a cos 2πx), a = 1/(4πν);
    exp(a cos θ) = I_0(a) + 2 Σ_n I_n(a) cos nθ, so φ(x, t) = I_0 + 2 Σ_n I_n e^{-ν(2πn)² t} cos 2πnx. The common
    factor e^{-a} is carried by ``ive`` (scaled Bessel), which cancels in the ratio and avoids overflow.
    """
    n = np.arange(1, n_modes + 1)[:, None]
    w = ive(n, 1.0 / (4.0 * np.pi * nu)) * np.exp(-nu * (2.0 * np.pi * n) ** 2 * t)
    phi = ive(0, 1.0 / (4.0 * np.pi * nu)) + 2.0 * np.sum(w * np.cos(2.0 * np.pi * n * x), axis=0)
    phi_x = -2.0 * np.sum(w * 2.0 * np.pi * n * np.sin(2.0 * np.pi * n * x), axis=0)
    return -2.0 * nu * phi_x / phi


def cole_hopf_sine_quadrature(x: np.ndarray, t: float, nu: float, n_quad: int = 20001) -> np.ndarray:
    """Exact solution for u0 = sin(2πx) from the heat-kernel integral, an independent check of the series.

    u(x, t) = ∫ (x − y)/t · e^{−G/2ν} dy / ∫ e^{−G/2ν} dy with G(y) = (1 − cos 2πy)/2π + (x − y)²/2t; the trapezoid
    rule on y ∈ x ± 12√(νt) converges spectrally for this smooth, Gaussian-decaying integrand; G − min G keeps the
    exponentials in range.
    """
    half = 12.0 * np.sqrt(nu * t) + 0.5
    y = x[:, None] + np.linspace(-half, half, n_quad)[None, :]  # [x, quad]
    g = (1.0 - np.cos(2.0 * np.pi * y)) / (2.0 * np.pi) + (x[:, None] - y) ** 2 / (2.0 * t)
    w = np.exp(-(g - g.min(axis=1, keepdims=True)) / (2.0 * nu))
    return np.sum((x[:, None] - y) / t * w, axis=1) / np.sum(w, axis=1)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_cole_hopf_references_agree_with_each_other_and_the_initial_condition():
    x = np.arange(256) / 256
    for t in (0.25, 1.0):
        assert rel_l2(cole_hopf_sine_fourier(x, t, 0.01), cole_hopf_sine_quadrature(x, t, 0.01)) < 1e-9
    assert np.max(np.abs(cole_hopf_sine_fourier(x, 0.0, 0.01) - np.sin(2 * np.pi * x))) < 1e-8


def test_matches_cole_hopf_at_nu_0p01_n256_t1():
    x = np.arange(256) / 256
    u = solve_burgers(np.sin(2 * np.pi * x), 0.01, np.array([0.0, 0.5, 1.0]))
    # The brief's bar is 1e-4; the solver reaches ~4e-9, so a regression by orders of magnitude still fails here.
    assert rel_l2(u[2], cole_hopf_sine_fourier(x, 1.0, 0.01)) < 1e-6
    assert rel_l2(u[1], cole_hopf_sine_fourier(x, 0.5, 0.01)) < 1e-6


def test_per_trajectory_viscosity_matches_each_exact_solution():
    x = np.arange(256) / 256
    u0 = np.stack([np.sin(2 * np.pi * x)] * 2)
    u = solve_burgers(u0, np.array([0.01, 0.03]), np.array([0.7]))
    assert rel_l2(u[0, 0], cole_hopf_sine_fourier(x, 0.7, 0.01)) < 1e-6
    assert rel_l2(u[1, 0], cole_hopf_sine_fourier(x, 0.7, 0.03)) < 1e-6
    assert rel_l2(u[0, 0], u[1, 0]) > 1e-2  # the two viscosities really differ


def test_time_stepping_is_fourth_order():
    x = np.arange(512) / 512
    exact = cole_hopf_sine_fourier(x, 1.0, 0.01)
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
