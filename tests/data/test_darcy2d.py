"""darcy2d solver: convergence order on a manufactured solution, the Dirichlet boundary, symmetry, the discrete
maximum principle, and the seeded split generator."""

from __future__ import annotations

import numpy as np
import pytest

from ups.data.solvers import TASKS
from ups.data.solvers.darcy2d import Darcy2D, Darcy2DSize, binary_coefficient, darcy_matrix, solve_darcy
from ups.data.solvers.diffreact2d import gaussian_random_field
from ups.data.store import validate_store, write_store
from ups.errors import UserInputError

COUNTS = {"train": 6, "val": 2, "test": 2, "ood_regime": 2}
TINY = Darcy2DSize(n=24, counts=COUNTS)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def manufactured(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth a = 1 + x y + ½ sin 2x cos 3y (≥ ½), u = sin πx sin πy, and f = −∇·(a∇u) at the n × n nodes."""
    x = np.linspace(0.0, 1.0, n)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    a = 1.0 + xx * yy + 0.5 * np.sin(2 * xx) * np.cos(3 * yy)
    a_x = yy + np.cos(2 * xx) * np.cos(3 * yy)
    a_y = xx - 1.5 * np.sin(2 * xx) * np.sin(3 * yy)
    u = np.sin(np.pi * xx) * np.sin(np.pi * yy)
    u_x = np.pi * np.cos(np.pi * xx) * np.sin(np.pi * yy)
    u_y = np.pi * np.sin(np.pi * xx) * np.cos(np.pi * yy)
    f = -(a_x * u_x + a_y * u_y) + a * 2 * np.pi**2 * u  # −∇·(a∇u) = −∇a·∇u − a Δu
    return a, u, f


def random_binary(seed: int, n_samples: int, n: int, contrast: float = 4.0) -> np.ndarray:
    g = gaussian_random_field(np.random.default_rng(seed), n_samples, (n, n), length=1.0, alpha=2.0, tau=3.0)
    return binary_coefficient(g, 3.0, 3.0 * contrast)


def test_manufactured_solution_converges_at_second_order():
    errors = []
    for n in (17, 33, 65):
        a, u_exact, f = manufactured(n)
        u = solve_darcy(a, f)
        errors.append(np.sqrt(np.mean((u - u_exact) ** 2)))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 1.9) & (orders < 2.1)), (errors, orders)
    assert errors[-1] < 2e-4


def test_batched_solve_equals_one_solve_per_sample():
    a = random_binary(0, 11, 20)  # 11 samples: more than one block of the batched factorisation, and a remainder
    f = np.random.default_rng(1).uniform(0.0, 2.0, size=a.shape)
    u = solve_darcy(a, f)
    for b in (0, 7, 10):
        np.testing.assert_allclose(u[b], solve_darcy(a[b], f[b]), rtol=1e-12, atol=1e-15)


def test_matrix_is_symmetric_with_a_dominant_positive_diagonal():
    matrix = darcy_matrix(random_binary(2, 2, 12, contrast=20.0)).toarray()
    np.testing.assert_array_equal(matrix, matrix.T)
    off = matrix - np.diag(np.diag(matrix))
    assert np.all(off <= 0) and np.all(np.diag(matrix) >= -off.sum(axis=1))  # M-matrix (→ maximum principle)
    assert np.all(matrix[:100, 100:] == 0)  # samples do not couple (100 = 10² interior nodes per sample)


def test_u_is_exactly_zero_on_the_boundary_nodes():
    u = solve_darcy(random_binary(3, 4, 20), 1.0)
    for edge in (u[:, 0, :], u[:, -1, :], u[:, :, 0], u[:, :, -1]):
        assert np.all(edge == 0.0)
    assert np.all(u[:, 1:-1, 1:-1] > 0)


def test_symmetric_coefficient_gives_a_symmetric_solution():
    g = gaussian_random_field(np.random.default_rng(4), 3, (33, 33), length=1.0, alpha=2.0, tau=3.0)
    a = binary_coefficient(g + np.swapaxes(g, 1, 2), 3.0, 12.0)  # a(x, y) = a(y, x)
    u = solve_darcy(a, 1.0)
    assert np.max(np.abs(u - np.swapaxes(u, 1, 2))) < 1e-12 * np.max(u)
    # ... and a mirrored coefficient gives the mirrored solution (no direction is preferred by the stencil or solver)
    a = random_binary(5, 3, 33)
    np.testing.assert_allclose(solve_darcy(a[:, ::-1, :], 1.0), solve_darcy(a, 1.0)[:, ::-1, :], rtol=0, atol=1e-13)


def test_nonnegative_forcing_gives_a_nonnegative_solution():
    rng = np.random.default_rng(6)
    a = random_binary(6, 8, 32, contrast=100.0)
    f = rng.uniform(0.0, 1.0, size=a.shape) * (rng.uniform(size=a.shape) < 0.1)  # sparse point sources, f ≥ 0
    u = solve_darcy(a, f)
    assert np.min(u) >= -1e-14 * np.max(u)
    assert np.min(solve_darcy(a, -f)) < 0 < np.max(u)  # the sign really follows f


def test_is_registered_as_a_steady_task_with_its_spec():
    assert TASKS.get("darcy2d") is Darcy2D
    spec = Darcy2D.spec("small")
    assert (spec.fields, spec.grid_shape, spec.steady) == (("a", "u"), (64, 64), True)
    assert (spec.bc, spec.bc_value, spec.bc_fields, spec.param_names) == ("dirichlet", 0.0, ("u",), ("a_low", "a_high"))
    assert spec.spacing == pytest.approx((1 / 63, 1 / 63))  # the node spacing of 64 nodes on [0, 1]
    assert spec.extra["centring"] == "node" and spec.extra["input"] == ["a"] and spec.extra["output"] == ["u"]
    assert Darcy2D.spec("full").grid_shape == (128, 128)
    with pytest.raises(UserInputError, match="small"):
        Darcy2D.spec("huge")


@pytest.fixture(scope="module")
def tiny():
    return Darcy2D.generate(TINY, seed=0)


def test_generation_is_frozen_by_seed(tiny):
    again, other = Darcy2D.generate(TINY, 0), Darcy2D.generate(TINY, 1)
    for split in tiny:
        for f in ("a", "u"):
            np.testing.assert_array_equal(tiny[split].fields[f], again[split].fields[f])
            assert not np.array_equal(tiny[split].fields[f], other[split].fields[f])
        np.testing.assert_array_equal(tiny[split].params, again[split].params)


def test_splits_are_disjoint_two_valued_and_ood_contrast_is_outside_the_train_range(tiny):
    assert {s: tiny[s].n_traj for s in tiny} == COUNTS
    ids = np.concatenate([tiny[s].ids for s in tiny])
    np.testing.assert_array_equal(ids, np.arange(len(ids)))
    for s, split in tiny.items():
        a = split.fields["a"]
        assert a.shape == split.fields["u"].shape == (COUNTS[s], 1, TINY.n, TINY.n) and a.dtype == np.float32
        for b in range(split.n_traj):  # a takes exactly the two stored values, both present
            assert set(np.unique(a[b])) == set(split.params[b].tolist())
    contrast = {s: tiny[s].params[:, 1] / tiny[s].params[:, 0] for s in tiny}
    train = np.concatenate([contrast[s] for s in ("train", "val", "test")])
    assert np.all((train >= 2.0 - 1e-5) & (train <= 6.0 + 1e-5))
    assert np.all(contrast["ood_regime"] > train.max())


def test_stored_u_solves_darcy_with_the_stored_a(tiny):
    split = tiny["test"]
    u = solve_darcy(split.fields["a"][:, 0].astype(np.float64), TINY.forcing)
    assert rel_l2(u, split.fields["u"][:, 0]) < 1e-7  # float32 rounding of u only: a was stored exactly as solved
    assert np.all(split.fields["u"][:, 0, [0, -1], :] == 0) and np.all(split.fields["u"][:, 0, :, [0, -1]] == 0)


def test_tiny_dataset_round_trips_through_a_valid_store(tiny, tmp_path):
    path = tmp_path / "darcy.zarr"
    spec = Darcy2D.spec(TINY)
    write_store(path, spec, tiny, solver=Darcy2D.solver, solver_config=Darcy2D.solver_config(TINY), seed=0)
    summary = validate_store(path)
    assert summary["n_frames"] == 1 and summary["grid_shape"] == (24, 24)
