"""ks1d ETDRK4 solver: coefficients, linear rates, order, ν scaling, invariants, chaos; and the split generator."""

from __future__ import annotations

import numpy as np
import pytest

from ups.data.solvers import TASKS
from ups.data.solvers.ks1d import KS1D, KS1DSize, etdrk4_coefficients, random_smooth_field, solve_ks
from ups.errors import UserInputError

COUNTS = {"train": 6, "val": 2, "test": 2, "ood_regime": 2}
TINY = KS1DSize(n_x=64, length=22.0, n_frames=3, dt=0.5, steps_per_frame=2, burn_in=5.0, counts=COUNTS)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def kassam_trefethen_ic(n: int = 128) -> tuple[np.ndarray, float]:
    """u0 = cos(x/16)(1 + sin(x/16)) on [0, 32π), the example of Kassam & Trefethen (2005), Fig. 3.1."""
    length = 32 * np.pi
    x = np.arange(n) * length / n
    return np.cos(x / 16) * (1 + np.sin(x / 16)), length


def test_etdrk4_coefficients_match_the_closed_forms_and_their_small_z_limits():
    h = 0.3
    lin = np.array([-20.0, -3.0, 1.5, 0.0])
    e, e2, q, f1, f2, f3 = etdrk4_coefficients(lin, h)
    z = h * lin[:3]  # |z| ≥ 0.45: the closed forms (Cox & Matthews 2002) lose at most a few digits here
    np.testing.assert_allclose(e[:3], np.exp(z), rtol=1e-14)
    np.testing.assert_allclose(e2[:3], np.exp(z / 2), rtol=1e-14)
    np.testing.assert_allclose(q[:3], h * (np.exp(z / 2) - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(f1[:3], h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3, rtol=1e-10)
    np.testing.assert_allclose(f2[:3], h * (2 + z + np.exp(z) * (z - 2)) / z**3, rtol=1e-10)
    np.testing.assert_allclose(f3[:3], h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3, rtol=1e-10)
    # z = 0, where the closed forms are 0/0: Q → h/2 and f1, f2, f3 → h/6 (the classical RK4 weights).
    np.testing.assert_allclose([e[3], q[3], f1[3], f2[3], f3[3]], [1, h / 2, h / 6, h / 6, h / 6], rtol=1e-13)


def test_small_amplitude_modes_grow_at_the_linear_rate():
    # For ε = 1e-9 the quadratic term is ~1e-9 of the linear one: u = ε cos(κx) e^{(κ² − νκ⁴) t} to ~1e-9.
    length, n = 64.0, 128
    x = np.arange(n) * length / n
    kappa = 2 * np.pi * np.array([3.0, 5.0, 11.0])[:, None] / length  # growing, growing, decaying at ν = 1 or 0.5
    nu = np.array([1.0, 0.5, 1.0])
    u = solve_ks(1e-9 * np.cos(kappa * x), nu, [3.0], length=length, h=0.1)[:, 0]
    exact = 1e-9 * np.cos(kappa * x) * np.exp((kappa**2 - nu[:, None] * kappa**4) * 3.0)
    for b in range(3):
        assert rel_l2(u[b], exact[b]) < 1e-8


def test_time_stepping_is_fourth_order():
    u0, length = kassam_trefethen_ic()
    ref = solve_ks(u0, 1.0, [2.0], length=length, h=2.0 / 1600)[0]
    errors = [rel_l2(solve_ks(u0, 1.0, [2.0], length=length, h=h)[0], ref) for h in (0.4, 0.2, 0.1)]
    assert errors[2] < 1e-8
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 13.0 < coarse / fine < 19.0  # halving h divides a fourth-order error by ~16


def test_nu_acts_as_a_domain_length():
    # x = √ν X, t = ν T, u = U / √ν maps the ν-equation on [0, L) onto the standard one on [0, L/√ν).
    length, n, nu = 64.0, 256, 0.5
    x = np.arange(n) * length / n
    u0 = random_smooth_field(np.random.default_rng(4), 1, x, length, k_max=6)[0]
    u = solve_ks(u0, nu, [4.0], length=length, h=0.01)[0]
    big = solve_ks(np.sqrt(nu) * u0, 1.0, [4.0 / nu], length=length / np.sqrt(nu), h=0.01 / nu)[0]
    assert rel_l2(u, big / np.sqrt(nu)) < 1e-10


def test_mass_is_conserved_to_roundoff():
    length, n = 64.0, 128
    x = np.arange(n) * length / n
    u0 = random_smooth_field(np.random.default_rng(5), 3, x, length, k_max=8) + np.array([[0.0], [0.4], [-1.0]])
    u = solve_ks(u0, np.array([0.5, 1.0, 1.5]), np.arange(0, 51, 5.0), length=length, h=0.05)
    mass = u.mean(axis=-1)  # (1/L) ∫ u dx, [B, T]
    assert np.max(np.abs(mass - mass[:, :1])) < 1e-13
    assert np.std(u[:, -1], axis=-1).min() > 0.5  # ... while the field itself is far from its initial state
    # 2/3 dealiasing: the modes k ≥ N/3 never receive energy.
    assert np.max(np.abs(np.fft.rfft(u[:, -1], axis=-1)[:, n // 3 + 1 :])) < 1e-12


def test_nearby_states_separate_at_a_positive_lyapunov_rate_and_stay_bounded():
    # Four pairs on the L = 64, ν = 1 attractor, 1e-8 apart. The leading Lyapunov exponent there is ≈ 0.08 per unit
    # time (L = 22: 0.043; it saturates near 0.1 for large L); log distance must grow linearly at such a rate.
    length, n, pairs = 64.0, 128, 4
    rng = np.random.default_rng(6)
    x = np.arange(n) * length / n
    on_attractor = solve_ks(random_smooth_field(rng, pairs, x, length, k_max=4), 1.0, [100.0], length=length, h=0.25)
    pert = rng.normal(size=(pairs, n))
    pert -= pert.mean(axis=-1, keepdims=True)  # keep the mass, which never changes
    pert *= 1e-8 / np.sqrt(np.mean(pert**2, axis=-1, keepdims=True))
    t = np.arange(0.0, 201.0)
    u = solve_ks(np.concatenate([on_attractor[:, 0], on_attractor[:, 0] + pert]), 1.0, t, length=length, h=0.25)
    log_dist = np.log(np.sqrt(np.mean((u[:pairs] - u[pairs:]) ** 2, axis=-1)))  # [pairs, T]
    window = slice(20, 201)  # after the perturbation has aligned with the unstable directions
    rates = np.array([np.polyfit(t[window], ld[window], 1)[0] for ld in log_dist])
    linearity = np.array([np.corrcoef(t[window], ld[window])[0, 1] for ld in log_dist])
    assert 0.04 < rates.mean() < 0.15, rates
    assert np.all(rates > 0.02) and linearity.mean() > 0.95
    assert np.all(log_dist[:, -1] - log_dist[:, 0] > np.log(1e4))
    assert np.max(np.abs(u)) < 6.0  # bounded on the attractor (|u| ≲ 3.5 at ν = 1)


def test_is_registered_with_its_spec():
    assert TASKS.get("ks1d") is KS1D
    spec = KS1D.spec("small")
    assert (spec.fields, spec.grid_shape, spec.domain, spec.bc, spec.param_names) == (
        ("u",),
        (256,),
        (64.0,),
        "periodic",
        ("nu",),
    )
    assert [(q.name, q.field) for q in spec.conserved] == [("mass", "u")]
    assert spec.dt == 0.5
    with pytest.raises(UserInputError, match="small"):
        KS1D.spec("huge")
    with pytest.raises(ValueError, match="whole number"):
        solve_ks(np.zeros(16), 1.0, [0.25], length=22.0, h=0.1)


def test_generation_is_frozen_by_seed():
    a, b, c = KS1D.generate(TINY, 7), KS1D.generate(TINY, 7), KS1D.generate(TINY, 8)
    for split in a:
        np.testing.assert_array_equal(a[split].fields["u"], b[split].fields["u"])
        np.testing.assert_array_equal(a[split].params, b[split].params)
        assert not np.allclose(a[split].fields["u"], c[split].fields["u"])


@pytest.fixture(scope="module")
def small():
    return KS1D.generate("small", seed=0)


def test_small_splits_are_disjoint_and_ood_is_outside_the_train_range(small):
    cfg = KS1D.sizes["small"]
    assert {s: small[s].n_traj for s in small} == cfg.counts
    all_ids = np.concatenate([small[s].ids for s in small])
    assert len(np.unique(all_ids)) == len(all_ids)
    nu_train = np.concatenate([small[s].params[:, 0] for s in ("train", "val", "test")])
    nu_ood = small["ood_regime"].params[:, 0]
    assert cfg.nu_train[0] <= nu_train.min() and nu_train.max() <= cfg.nu_train[1]
    assert np.all(nu_ood < nu_train.min())


def test_stored_frames_are_on_the_attractor_and_solve_ks_with_the_stored_nu_and_dt(small):
    cfg = KS1D.sizes["small"]
    u = np.concatenate([small[s].fields["u"] for s in small]).astype(np.float64)  # [traj, time, x]
    # Burn-in discarded: the random initial condition has no energy above k = 8; frame 0 already has the attractor's
    # broadband spectrum (energy above k = 8, its peak near k ≈ L / (2π √(2ν)) ≈ 7) and a statistically steady
    # amplitude.
    spectrum = np.abs(np.fft.rfft(u[:, 0], axis=-1)) ** 2
    assert np.all(spectrum[:, cfg.ic_k_max + 1 :].sum(-1) > 0.05 * spectrum.sum(-1))
    rms = np.sqrt(np.mean(u**2, axis=-1))  # [traj, time]
    assert abs(rms[:, :10].mean() / rms[:, -10:].mean() - 1) < 0.05  # without burn-in: 0.88
    assert np.median(np.abs(rms[:, :10].mean(1) / rms[:, -10:].mean(1) - 1)) < 0.15  # without burn-in: 0.22
    mass = u.mean(axis=-1)
    assert np.max(np.abs(mass)) < 1e-6  # zero-mean initial conditions, float32 storage
    # Re-solving two frames from a stored frame with the stored ν reproduces the stored frame: catches a wrong ν, a
    # wrong dt label or a frame shift (float32 storage, amplified by e^{λ t} over one time unit).
    split = small["test"]
    redo = solve_ks(split.fields["u"][:, 5], split.params[:, 0], [2 * cfg.dt], length=cfg.length, h=cfg.h)[:, 0]
    assert rel_l2(redo, split.fields["u"][:, 7]) < 1e-5
    assert rel_l2(split.fields["u"][:, 8], split.fields["u"][:, 7]) > 1e-2
