"""advection1d exact-shift solver against np.roll and the analytic solution, its invariants, and the split generator."""

from __future__ import annotations

import numpy as np
import pytest

from ups.data.solvers import TASKS
from ups.data.solvers.advection1d import Advection1D, Advection1DSize, sine_series, solve_advection
from ups.errors import UserInputError

COUNTS = {"train": 6, "val": 2, "test": 2, "ood_regime": 2}
TINY = Advection1DSize(n_x=64, n_frames=5, dt=0.05, counts=COUNTS)


def random_band_limited(rng: np.random.Generator, n_traj: int, x: np.ndarray, k_max: int):
    """Random sine series with every integer wavenumber 1..k_max, and its coefficients for the analytic solution."""
    k = np.tile(np.arange(1, k_max + 1), (n_traj, 1))
    amp = rng.normal(size=k.shape)
    phase = rng.uniform(0, 2 * np.pi, size=k.shape)
    return sine_series(x, amp, k, phase) + 0.3, (amp, k, phase)


def test_whole_cell_shift_is_np_roll_bit_for_bit():
    rng = np.random.default_rng(0)
    u0 = rng.normal(size=(3, 256))  # not even band-limited: a whole-cell shift needs no interpolation
    beta = np.array([0.5, -0.25, 1.0])
    t = np.array([0.0, 0.25, 1.0, 2.5])  # β t N is a whole number of cells for every pair
    u = solve_advection(u0, beta, t)
    for b in range(3):
        for i, ti in enumerate(t):
            np.testing.assert_array_equal(u[b, i], np.roll(u0[b], int(round(beta[b] * ti * 256))))


def test_fractional_shift_of_a_band_limited_field_matches_the_analytic_solution():
    rng = np.random.default_rng(1)
    x = np.arange(256) / 256
    u0, (amp, k, phase) = random_band_limited(rng, 4, x, k_max=100)
    beta = np.array([0.1, 0.37, 1.0, -1.7])
    t = np.array([0.013, 0.5, 1.999, 7.3])  # shifts of 0.3 … 3200 cells with arbitrary remainders
    u = solve_advection(u0, beta, t)
    for b in range(4):
        for i, ti in enumerate(t):
            exact = sine_series(x - beta[b] * ti, amp[b : b + 1], k[b : b + 1], phase[b : b + 1])[0] + 0.3
            assert np.max(np.abs(u[b, i] - exact)) < 1e-12 * np.max(np.abs(exact))
    # A wrong sign (u0(x + βt)) or a wrong speed would miss by O(1):
    assert np.max(np.abs(u[1, 1] - (sine_series(x + 0.37 * 0.5, amp[1:2], k[1:2], phase[1:2])[0] + 0.3))) > 0.1


def test_mass_and_l2_are_conserved_to_roundoff():
    rng = np.random.default_rng(2)
    x = np.arange(128) / 128
    u0, _ = random_band_limited(rng, 5, x, k_max=40)
    u = solve_advection(u0, rng.uniform(-2, 2, 5), np.linspace(0, 3, 31))
    mass = u.mean(axis=-1)  # ∫_0^1 u dx on periodic nodes, [B, T]
    l2 = np.sqrt(np.mean(u**2, axis=-1))
    assert np.max(np.abs(mass - mass[:, :1])) < 1e-14
    assert np.max(np.abs(l2 / l2[:, :1] - 1)) < 1e-14


def test_is_registered_with_its_spec():
    assert TASKS.get("advection1d") is Advection1D
    spec = Advection1D.spec("small")
    assert (spec.fields, spec.grid_shape, spec.domain, spec.bc, spec.param_names) == (
        ("u",),
        (256,),
        (1.0,),
        "periodic",
        ("beta",),
    )
    assert [(q.name, q.field) for q in spec.conserved] == [("mass", "u")]
    assert Advection1D.spec("full").grid_shape == (1024,)
    with pytest.raises(UserInputError, match="small"):
        Advection1D.spec("huge")


def test_generation_is_frozen_by_seed():
    a, b, c = Advection1D.generate(TINY, 7), Advection1D.generate(TINY, 7), Advection1D.generate(TINY, 8)
    for split in a:
        np.testing.assert_array_equal(a[split].fields["u"], b[split].fields["u"])
        np.testing.assert_array_equal(a[split].params, b[split].params)
        assert not np.allclose(a[split].fields["u"], c[split].fields["u"])


@pytest.fixture(scope="module")
def small():
    return Advection1D.generate("small", seed=0)


def test_small_splits_are_disjoint_and_ood_is_outside_the_train_range(small):
    cfg = Advection1D.sizes["small"]
    assert {s: small[s].n_traj for s in small} == cfg.counts
    all_ids = np.concatenate([small[s].ids for s in small])
    assert len(np.unique(all_ids)) == len(all_ids)
    beta_train = np.concatenate([small[s].params[:, 0] for s in ("train", "val", "test")])
    beta_ood = small["ood_regime"].params[:, 0]
    assert cfg.beta_train[0] <= beta_train.min() and beta_train.max() <= cfg.beta_train[1]
    assert np.all(beta_ood > beta_train.max())
    first_frames = np.concatenate([small[s].fields["u"][:, 0] for s in small])
    assert len(np.unique(first_frames.round(6), axis=0)) == len(first_frames)


def test_stored_frames_are_the_stored_initial_condition_shifted_by_beta_t(small):
    # Shifting stored frame 0 by the stored β over 10 stored dt must give stored frame 10: catches a wrong β, a
    # wrong dt label, a frame shift or a sign error. Agreement is to float32 (the data itself is exact).
    split = small["test"]
    u = split.fields["u"].astype(np.float64)
    beta = split.params[:, 0].astype(np.float64)  # float32-rounded β: error ≤ 6e-8 · 0.5 · 2π k_max, ~1e-6
    dt = Advection1D.spec("small").dt
    redo = solve_advection(u[:, 0], beta, np.array([10 * dt]))[:, 0]
    assert np.max(np.abs(redo - u[:, 10])) < 1e-5
    assert np.max(np.abs(u[:, 11] - u[:, 10])) > 1e-2
    mass = u.mean(axis=-1)
    assert np.max(np.abs(mass - mass[:, :1])) < 1e-6  # float32 storage of an exactly conserved mass
