"""diffreact2d solver: convergence orders, the discrete no-flux walls, the reaction against an ODE solver, and the
seeded split generator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from ups.data.solvers import TASKS
from ups.data.solvers.diffreact2d import (
    DiffReact2D,
    DiffReact2DSize,
    cosine_interpolate,
    fitzhugh_nagumo,
    gaussian_random_field,
    solve_reaction_diffusion,
)
from ups.data.store import validate_store, write_store
from ups.errors import UserInputError

COUNTS = {"train": 4, "val": 2, "test": 2, "ood_regime": 2, "ood_geometry": 2}
TINY = DiffReact2DSize(n=16, n_frames=5, dt=0.25, counts=COUNTS)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def cell_centres(n: int, length: float) -> np.ndarray:
    """Cell centres measured from the lower wall, (i + ½) L / n."""
    return (np.arange(n) + 0.5) * length / n


def ghost_cell_laplacian(n: int, h: float) -> sp.csr_matrix:
    """The 1D 3-point Laplacian with mirrored ghost cells, assembled entry by entry (independent of the DCT)."""
    main = np.full(n, -2.0)
    main[[0, -1]] = -1.0  # u_{-1} = u_0 and u_n = u_{n-1}: the ghost cancels one -1 of the boundary row
    return sp.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1]).tocsr() / h**2


def random_state(seed: int, n_traj: int, shape: tuple[int, int], length: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fields = [gaussian_random_field(rng, n_traj, shape, length=length, alpha=4.0, tau=5.0) for _ in range(2)]
    return 0.5 * np.stack(fields, axis=1)  # [B, 2, H, W]


def test_implicit_step_solves_the_ghost_cell_finite_difference_system():
    # One IMEX Euler step of pure diffusion is y1 = (I - h D Δ)^(-1) y0; check it against the sparse 5-point matrix
    # on a non-square grid, with per-channel diffusivities and per-trajectory domain sizes.
    nx, ny, h = 12, 9, 0.3
    y0 = np.random.default_rng(0).normal(size=(2, 2, nx, ny))
    d, lengths = np.array([[0.1, 0.5], [0.2, 0.05]]), np.array([2.0, 4.0])
    y1 = solve_reaction_diffusion(y0, d, lengths, h, 2, n_sub=1)[:, 1]
    for b in range(2):
        lap = sp.kron(ghost_cell_laplacian(nx, lengths[b] / nx), sp.eye(ny)) + sp.kron(
            sp.eye(nx), ghost_cell_laplacian(ny, lengths[b] / ny)
        )
        for c in range(2):
            residual = y1[b, c].ravel() - h * d[b, c] * (lap @ y1[b, c].ravel()) - y0[b, c].ravel()
            assert np.max(np.abs(residual)) < 1e-12


def test_diffusion_of_a_cosine_mode_converges_at_second_order_in_space():
    # cos(πx'/L) cos(2πy'/L) (x' from the wall) satisfies ∂n u = 0 and decays exactly as exp(-D π² (1 + 4) t / L²).
    d, length, t = 0.05, 2.0, 1.0
    errors = []
    for n in (16, 32, 64):
        x = cell_centres(n, length)
        mode = np.cos(np.pi * x / length)[:, None] * np.cos(2 * np.pi * x / length)[None, :]
        y0 = np.broadcast_to(mode, (1, 1, n, n))
        y = solve_reaction_diffusion(y0, d, length, t, 2, n_sub=400)[0, 1, 0]
        errors.append(rel_l2(y, mode * np.exp(-d * np.pi**2 * 5 * t / length**2)))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 1.9) & (orders < 2.1)), (errors, orders)
    assert errors[-1] < 1e-3


def test_pure_diffusion_conserves_mass_to_roundoff():
    # Mirrored ghost cells make the flux through every wall face exactly zero, so Σ u h² cannot change.
    y0 = random_state(1, 3, (24, 20)) + 1.0
    y = solve_reaction_diffusion(y0, np.array([0.3, 0.01]), np.array([1.0, 2.0, 5.0]), 0.5, 11, n_sub=10)
    mass = y.mean(axis=(3, 4))  # [B, T, C], ∝ the total mass on a uniform grid
    assert np.max(np.abs(mass - mass[:, :1])) < 1e-13
    assert rel_l2(y[:, -1], y[:, 0]) > 1e-2  # ... while the field itself really changed


def test_walls_let_nothing_out_with_reaction_either():
    # With reaction, one IMEX Euler step changes the mean by exactly h · mean R(y0): the walls add no flux.
    y0 = random_state(2, 3, (16, 16))
    reaction = fitzhugh_nagumo(np.array([0.0, 5e-3, 1e-2]))
    h = 0.05
    y1 = solve_reaction_diffusion(y0, np.array([1e-3, 5e-3]), 2.0, h, 2, n_sub=1, reaction=reaction)[:, 1]
    budget = y0.mean(axis=(2, 3)) + h * reaction(y0).mean(axis=(2, 3))
    np.testing.assert_allclose(y1.mean(axis=(2, 3)), budget, rtol=0, atol=1e-14)


def fhn_ode(t: float, y: np.ndarray, k: float) -> list[float]:
    u, v = y
    return [u - u**3 - k - v, u - v]


def test_uniform_state_follows_the_fitzhugh_nagumo_ode_at_second_order_in_time():
    # A spatially uniform state has Δy = 0 exactly, so the solver integrates the reaction ODE alone.
    k = np.array([0.0, 5e-3, 0.3])
    uv0 = np.array([[1.5, -0.5], [-0.8, 0.2], [0.1, 0.9]])
    y0 = np.broadcast_to(uv0[:, :, None, None], (3, 2, 4, 4))
    t_frames = np.arange(9) * 0.5
    exact = np.stack(
        [
            solve_ivp(fhn_ode, (0, t_frames[-1]), uv0[b], t_eval=t_frames, args=(k[b],), rtol=1e-12, atol=1e-12).y.T
            for b in range(3)
        ]
    )  # [B, T, 2]
    errors = []
    for n_sub in (25, 50):
        y = solve_reaction_diffusion(y0, 1e-3, 2.0, 0.5, 9, n_sub=n_sub, reaction=fitzhugh_nagumo(k))
        assert np.max(np.ptp(y, axis=(3, 4))) < 1e-12  # stays uniform
        errors.append(np.max(np.abs(y[:, :, :, 0, 0] - exact)))
    assert errors[1] < 2e-4
    assert 3.5 < errors[0] / errors[1] < 4.5, errors  # SBDF2: halving the step divides the error by ~4


def test_reaction_diffusion_converges_at_second_order_in_time():
    y0 = random_state(3, 2, (16, 16))
    run = {
        n_sub: solve_reaction_diffusion(
            y0, np.array([1e-3, 5e-3]), 2.0, 0.5, 5, n_sub=n_sub, reaction=fitzhugh_nagumo(5e-3)
        )[:, -1]
        for n_sub in (5, 10, 80)
    }
    ratio = rel_l2(run[5], run[80]) / rel_l2(run[10], run[80])
    assert 3.3 < ratio < 4.7, ratio


def test_is_registered_with_its_spec():
    assert TASKS.get("diffreact2d") is DiffReact2D
    spec = DiffReact2D.spec("small")
    assert (spec.fields, spec.grid_shape, spec.domain) == (("u", "v"), (64, 64), (2.0, 2.0))
    assert (spec.bc, spec.bc_value, spec.bc_fields, spec.param_names) == ("neumann", 0.0, ("u", "v"), ("D_u", "k"))
    assert spec.extra["split_domain"] == {"ood_geometry": [4.0, 4.0]}
    assert not spec.steady and spec.conserved == ()
    assert DiffReact2D.spec("full").grid_shape == (128, 128) and DiffReact2D.sizes["full"].n_frames == 101
    with pytest.raises(UserInputError, match="small"):
        DiffReact2D.spec("huge")


@pytest.fixture(scope="module")
def tiny():
    return DiffReact2D.generate(TINY, seed=0)


def test_generation_is_frozen_by_seed(tiny):
    again, other = DiffReact2D.generate(TINY, 0), DiffReact2D.generate(TINY, 1)
    for split in tiny:
        for f in ("u", "v"):
            np.testing.assert_array_equal(tiny[split].fields[f], again[split].fields[f])
            assert not np.allclose(tiny[split].fields[f], other[split].fields[f])
        np.testing.assert_array_equal(tiny[split].params, again[split].params)


def test_splits_are_disjoint_and_ood_regime_is_outside_the_train_range(tiny):
    assert {s: tiny[s].n_traj for s in tiny} == COUNTS
    ids = np.concatenate([tiny[s].ids for s in tiny])
    np.testing.assert_array_equal(ids, np.arange(len(ids)))
    for s in tiny:
        assert tiny[s].fields["u"].shape == (COUNTS[s], TINY.n_frames, TINY.n, TINY.n)
        assert tiny[s].fields["u"].dtype == np.float32 and tiny[s].params.dtype == np.float32
    train_d_u = np.concatenate([tiny[s].params[:, 0] for s in ("train", "val", "test", "ood_geometry")])
    lo, hi = np.float32(TINY.d_u_train)
    assert np.all((train_d_u >= lo) & (train_d_u <= hi))
    assert np.all(tiny["ood_regime"].params[:, 0] > hi)
    k = np.concatenate([tiny[s].params[:, 1] for s in tiny])
    assert np.all((k >= TINY.k_range[0]) & (k <= np.float32(TINY.k_range[1])))


def resolve_on_the_stored_grid(split, cfg: DiffReact2DSize, n_frames: int) -> np.ndarray:
    """Re-solve a stored split from its frame 0 on the stored grid with the stored D_u and k: ``[B, T, 2, n, n]``."""
    y0 = np.stack([split.fields["u"][:, 0], split.fields["v"][:, 0]], axis=1).astype(np.float64)
    d_u, k = split.params[:, 0].astype(np.float64), split.params[:, 1].astype(np.float64)
    diffusivity = np.stack([d_u, np.full_like(d_u, cfg.d_v)], axis=1)
    return solve_reaction_diffusion(
        y0, diffusivity, 2.0, cfg.dt, n_frames, n_sub=cfg.n_sub, reaction=fitzhugh_nagumo(k)
    )


def test_stored_frames_solve_the_pde_with_the_stored_parameters(tiny):
    # With refine = 1 the solver grid is the stored grid: re-solving from stored frame 0 with the stored D_u and k
    # reproduces the last frame, which catches a wrong parameter column, dt label or frame shift. (Frame 0 is float32,
    # so agreement is to float32 round-off, amplified a little.)
    cfg = replace(TINY, refine=1)
    split = DiffReact2D.generate(cfg, seed=0)["test"]
    redo = resolve_on_the_stored_grid(split, cfg, cfg.n_frames)
    assert rel_l2(redo[:, -1, 0], split.fields["u"][:, -1]) < 1e-5
    assert rel_l2(redo[:, -1, 1], split.fields["v"][:, -1]) < 1e-5
    assert rel_l2(split.fields["u"][:, -1], split.fields["u"][:, -2]) > 1e-3  # ... and the frames differ
    # The data (refine = 2) is a 2x finer solve: the stored-grid re-solve is off by that grid's discretisation error.
    split = tiny["test"]
    redo = resolve_on_the_stored_grid(split, TINY, TINY.n_frames)
    error = rel_l2(redo[:, -1, 0], split.fields["u"][:, -1])
    assert 1e-4 < error < 3e-2, error


def test_ood_geometry_is_the_same_pde_on_the_larger_square(tiny):
    # ood_geometry: the same PDE on a twice larger square, solved with the other splits' solver cells (on a 2 x 2 = 4x
    # finer grid at refine = 2) and stored as 4x4 block averages. Re-solving one frame on the stored grid with the
    # recorded side (4) reproduces v (which diffuses fastest) up to the coarse grid's discretisation error; a solve
    # with side 2 or 8 (the wrong cell size) does not.
    assert TINY.oversample("ood_geometry") == 4 and TINY.oversample("train") == 2
    assert TINY.ic_grid("ood_geometry") == 32 and TINY.split_length("ood_geometry") == 4.0
    assert DiffReact2D.derived_config(TINY)["solver_grid"] == {
        "train": 32,
        "val": 32,
        "test": 32,
        "ood_regime": 32,
        "ood_geometry": 64,
    }
    assert DiffReact2D.spec(TINY).extra["split_domain"] == {"ood_geometry": [4.0, 4.0]}
    split = tiny["ood_geometry"]
    y0 = np.stack([split.fields["u"][:, 0], split.fields["v"][:, 0]], axis=1).astype(np.float64)
    d_u, k = split.params[:, 0].astype(np.float64), split.params[:, 1].astype(np.float64)
    diffusivity = np.stack([d_u, np.full_like(d_u, TINY.d_v)], axis=1)
    errors = {}
    for side in (2.0, 4.0, 8.0):
        redo = solve_reaction_diffusion(
            y0, diffusivity, side, TINY.dt, 2, n_sub=TINY.n_sub, reaction=fitzhugh_nagumo(k)
        )
        errors[side] = rel_l2(redo[:, 1, 1], split.fields["v"][:, 1])
    assert errors[4.0] < 1e-2 and errors[4.0] < 0.5 * min(errors[2.0], errors[8.0]), errors


def test_tiny_dataset_round_trips_through_a_valid_store(tiny, tmp_path):
    spec = DiffReact2D.spec(TINY)
    path = tmp_path / "dr.zarr"
    write_store(path, spec, tiny, solver=DiffReact2D.solver, solver_config=DiffReact2D.solver_config(TINY), seed=0)
    summary = validate_store(path)
    assert summary["grid_shape"] == (16, 16) and summary["n_frames"] == TINY.n_frames


def test_cosine_interpolation_evaluates_the_same_series_on_the_finer_grid():
    # A field drawn as a cosine series on 12² cells, evaluated at the centres of 36² cells, equals the series itself.
    y = gaussian_random_field(np.random.default_rng(4), 2, (12, 12), length=2.0, alpha=4.0, tau=5.0)
    fine = cosine_interpolate(y, 36)
    basis = {m: np.cos(np.pi * np.arange(12)[None, :] * (np.arange(m)[:, None] + 0.5) / m) for m in (12, 36)}
    a = np.linalg.solve(basis[12], np.linalg.solve(basis[12], y).transpose(0, 2, 1)).transpose(0, 2, 1)  # amplitudes
    direct = basis[36] @ a @ basis[36].T
    np.testing.assert_allclose(fine, direct, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cosine_interpolate(y, 12), y)


@pytest.mark.parametrize("k", [0.0, 1e-2])
def test_stored_frames_converge_at_second_order_with_refine_at_the_smallest_d_u_of_each_split(k):
    # The generator at refine 1, 2, 4, 8 with every trajectory at the smallest D_u of its split (train's for
    # train/ood_geometry, ood_regime's) and k at one end of its range, over the small size's horizon t ∈ [0, 5]. The
    # initial fields are the same at every refine (a cosine series drawn on the stored grid), so the stored block
    # averages converge at the scheme's second order: against the 8x solve, the error of refine r is C (1/r² − 1/64),
    # ratios 4.2 (1 → 2) and 5 (2 → 4), at every frame up to the last and for every split.
    cfg = DiffReact2DSize(
        n=16,
        n_frames=21,
        dt=0.25,
        counts={"train": 1, "ood_regime": 1, "ood_geometry": 1},
        d_u_train=(5e-4, 5e-4),
        d_u_ood=(3e-3, 3e-3),
        k_range=(k, k),
    )
    frames = {}
    for r in (1, 2, 4, 8):
        data = DiffReact2D.generate(replace(cfg, refine=r), seed=0)
        frames[r] = np.stack([np.stack([data[s].fields["u"], data[s].fields["v"]], 2)[0] for s in cfg.counts])
    assert np.all(data["ood_regime"].params[:, 0] == np.float32(3e-3))

    def error(r: int) -> np.ndarray:  # [split, frame] relative L2 of (u, v) against the 8x solve
        diff = (frames[r] - frames[8]).reshape(3, cfg.n_frames, -1).astype(np.float64)
        return np.linalg.norm(diff, axis=-1) / np.linalg.norm(frames[8].reshape(3, cfg.n_frames, -1), axis=-1)

    e1, e2, e4 = error(1), error(2), error(4)
    assert np.all((e1 / e2 > 3.5) & (e1 / e2 < 7.0)), e1 / e2
    assert np.all((e2 / e4 > 3.5) & (e2 / e4 < 7.0)), e2 / e4
    assert e2[:, -1].max() < 3e-2  # the refine-2 data at n = 16 (the small size has n = 64: ≈ 3e-3)
