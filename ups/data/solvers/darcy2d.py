"""Steady Darcy flow in 2D: −∇·(a ∇u) = f on the unit square, u = 0 on the boundary.

Data as in the FNO Darcy benchmark (Li et al., "Fourier Neural Operator for Parametric PDEs", ICLR 2021): a
piecewise-constant two-valued permeability, a thresholded Gaussian random field, and f = 1. The input is ``a`` and the
output is ``u``.

Grid: node-centred, N × N nodes x_i = i / (N − 1) including the boundary nodes, where u = 0 exactly; the (N − 2)²
interior nodes are the unknowns. Discretisation: the 5-point finite-volume stencil on the dual cells,
−[a_{i+½}(u_{i+1} − u_i) − a_{i−½}(u_i − u_{i−1})] / h² − (same along y) = f_i, with the face coefficient the harmonic
mean a_{i+½} = 2 a_i a_{i+1} / (a_i + a_{i+1}) (the exact flux coefficient of a 1D two-layer medium; Patankar,
*Numerical Heat Transfer and Fluid Flow*, 1980, §4.2). The matrix is symmetric positive definite and an M-matrix, so
the discrete solution obeys the maximum principle (f ≥ 0 ⇒ u ≥ 0). Solved by a sparse LU factorisation (SuperLU) of
the block-diagonal system of a batch of samples at once.

Stored grid and spec: the N nodes are stored as the cells of the box of dual cells [−h/2, 1 + h/2]² (side N h,
h = 1 / (N − 1)), so ``TaskSpec.spacing`` is the true node spacing h and the first and last stored cells along each
axis (the "boundary cells" of the metrics) are the boundary nodes, where u = 0. See docs/data_format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ups.data.solvers import TASKS
from ups.data.solvers.base import Task, draw_per_split, pack_splits
from ups.data.solvers.diffreact2d import gaussian_random_field
from ups.data.spec import TaskSpec
from ups.data.splits import SplitData

_BATCH = 8  # samples per block-diagonal factorisation; larger blocks were no faster, and bound SuperLU's fill-in memory


def darcy_matrix(a: np.ndarray) -> sp.csc_matrix:
    """The block-diagonal matrix of −∇·(a∇·) on the interior nodes of a batch of node grids on the unit square.

    Args:
        a: ``[B, N, N]`` positive coefficients at the nodes x_i = i / (N − 1), boundary nodes included.

    Returns:
        ``[B M², B M²]`` sparse matrix, M = N − 2; sample b, interior node (i, j) (1 ≤ i, j ≤ N − 2) is row
        ``b M² + (i − 1) M + (j − 1)``. Boundary neighbours are dropped (their u is 0).
    """
    n_b, n, _ = a.shape
    m = n - 2
    inv_h2 = float(n - 1) ** 2
    a = np.asarray(a, dtype=np.float64)
    ax = 2.0 * a[:, 1:, :] * a[:, :-1, :] / (a[:, 1:, :] + a[:, :-1, :]) * inv_h2  # [B, N−1, N] face (i+½, j)
    ay = 2.0 * a[:, :, 1:] * a[:, :, :-1] / (a[:, :, 1:] + a[:, :, :-1]) * inv_h2  # [B, N, N−1] face (i, j+½)
    idx = np.arange(n_b * m * m).reshape(n_b, m, m)  # row of interior node (i, j) at [b, i − 1, j − 1]
    diag = ax[:, :-1, 1:-1] + ax[:, 1:, 1:-1] + ay[:, 1:-1, :-1] + ay[:, 1:-1, 1:]  # [B, M, M]
    west = ax[:, 1:-1, 1:-1]  # [B, M − 1, M]: face between interior nodes (i, j) and (i + 1, j)
    south = ay[:, 1:-1, 1:-1]  # [B, M, M − 1]: face between interior nodes (i, j) and (i, j + 1)
    rows = [idx.ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel(), idx[:, :, :-1].ravel(), idx[:, :, 1:].ravel()]
    cols = [idx.ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel(), idx[:, :, 1:].ravel(), idx[:, :, :-1].ravel()]
    vals = [diag.ravel(), -west.ravel(), -west.ravel(), -south.ravel(), -south.ravel()]
    size = n_b * m * m
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size))


def solve_darcy(a: np.ndarray, f: float | np.ndarray = 1.0) -> np.ndarray:
    """Solve −∇·(a∇u) = f, u = 0 on the boundary, on the unit square for a batch of coefficients.

    Args:
        a: ``[B, N, N]`` (or ``[N, N]``) positive coefficients at the nodes, boundary nodes included.
        f: forcing, a scalar or node values broadcastable to ``a`` (only interior nodes are used).

    Returns:
        float64 u, same shape as ``a``, with u = 0 on the boundary nodes.
    """
    a = np.asarray(a, dtype=np.float64)
    squeeze = a.ndim == 2
    a = a[None] if squeeze else a
    f = np.broadcast_to(np.asarray(f, dtype=np.float64), a.shape)
    u = np.zeros_like(a)
    for lo in range(0, a.shape[0], _BATCH):
        sl = slice(lo, lo + _BATCH)
        matrix = darcy_matrix(a[sl])
        # The matrix is symmetric: minimum degree on A + Aᵀ has ~40% less fill-in than the default COLAMD here.
        lu = spla.splu(matrix, permc_spec="MMD_AT_PLUS_A")
        u[sl, 1:-1, 1:-1] = lu.solve(f[sl, 1:-1, 1:-1].ravel()).reshape(u[sl, 1:-1, 1:-1].shape)
    return u[0] if squeeze else u


def binary_coefficient(
    g: np.ndarray, a_low: float | np.ndarray, a_high: float | np.ndarray, threshold: float = 0.0
) -> np.ndarray:
    """FNO-style two-valued coefficient: ``a_high`` where the field ``g [B, N, N]`` is ≥ ``threshold``, else ``a_low``
    (``a_low``/``a_high`` scalars or one value per sample ``[B]``)."""
    lo = np.asarray(a_low, dtype=np.float64).reshape(-1, 1, 1)
    hi = np.asarray(a_high, dtype=np.float64).reshape(-1, 1, 1)
    return np.where(g >= threshold, hi, lo)


@dataclass(frozen=True)
class Darcy2DSize:
    """One size of the darcy2d dataset.

    Attributes:
        n: nodes per side, boundary nodes included (h = 1 / (n − 1)).
        counts: samples per split.
        a_low: the coefficient's lower value (FNO: 3).
        contrast_train: a_high / a_low range of train/val/test, drawn uniformly (FNO's 12 / 3 = 4 is its centre).
        contrast_ood: a_high / a_low range of ``ood_regime``, above the training range.
        forcing: the constant source f.
        grf_alpha, grf_tau: covariance (−Δ + τ²)^(−α) of the thresholded field (FNO: α = 2, τ = 3), with the constant
            mode removed so that the threshold 0 splits the square into comparable areas of a_low and a_high.
    """

    n: int
    counts: dict[str, int] = field(default_factory=dict)
    a_low: float = 3.0
    contrast_train: tuple[float, float] = (2.0, 6.0)
    contrast_ood: tuple[float, float] = (8.0, 12.0)
    forcing: float = 1.0
    grf_alpha: float = 2.0
    grf_tau: float = 3.0

    @property
    def h(self) -> float:
        return 1.0 / (self.n - 1)


@TASKS.register("darcy2d")
class Darcy2D(Task[Darcy2DSize]):
    """The ``darcy2d`` task (steady: input ``a``, output ``u``): sizes, :class:`TaskSpec` and the seeded generator."""

    name = "darcy2d"
    solver = "darcy2d/fv-harmonic-splu"
    sizes: dict[str, Darcy2DSize] = {
        # Generates in ≈ 1 s of one core (112 sparse LU solves of 62² unknowns).
        "small": Darcy2DSize(n=64, counts={"train": 64, "val": 16, "test": 16, "ood_regime": 16}),
        # PDEBench's Darcy resolution (128²) and sample count; ≈ 8 min of one core (44 ms per solve), ≈ 1.4 GB of
        # float32 fields, ≈ 6 GB peak memory.
        "full": Darcy2DSize(n=128, counts={"train": 9000, "val": 500, "test": 500, "ood_regime": 500}),
    }

    @classmethod
    def make_spec(cls, cfg: Darcy2DSize) -> TaskSpec:
        box = cfg.n * cfg.h  # side of the box of dual cells around the nodes (module docstring)
        return TaskSpec(
            task=cls.name,
            fields=("a", "u"),
            grid_shape=(cfg.n, cfg.n),
            domain=(box, box),
            dt=1.0,  # unused: a steady task stores one frame (TaskSpec.dt is required, steady=True marks it)
            bc="dirichlet",
            bc_value=0.0,
            param_names=("a_low", "a_high"),
            steady=True,
            bc_fields=("u",),
            # Node-centred grid: node i sits at x = i h = (stored coordinate) − h/2 on the unit square.
            extra={"centring": "node", "physical_domain": [1.0, 1.0], "input": ["a"], "output": ["u"]},
        )

    @classmethod
    def derived_config(cls, cfg: Darcy2DSize) -> dict:
        return {"h": cfg.h}

    @classmethod
    def sample(cls, cfg: Darcy2DSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws, in order, the Gaussian random fields of all samples and then their contrasts.

        Returns:
            split → :class:`SplitData` with ``fields["a"]`` and ``fields["u"]`` float32 ``[samples, 1, n, n]`` (one
            frame: the input ``a`` and the solution ``u``), ``params`` float32 ``[samples, 2]`` (a_low, a_high) and
            ``ids`` int64 ``[samples]``.
        """
        n_total = sum(cfg.counts.values())
        # The DCT-II points of the dual-cell box [−h/2, 1 + h/2] are exactly the nodes, so the field is sampled there.
        g = gaussian_random_field(
            rng, n_total, (cfg.n, cfg.n), length=cfg.n * cfg.h, alpha=cfg.grf_alpha, tau=cfg.grf_tau, zero_mean=True
        )
        contrast = draw_per_split(
            cfg.counts, cfg.contrast_train, cfg.contrast_ood, lambda r, n: rng.uniform(*r, size=n)
        )
        a_low = np.full(n_total, cfg.a_low)
        a_high = cfg.a_low * contrast
        # Rounded to float32 before the solve, so the stored u solves the PDE for exactly the stored a.
        params = np.stack([a_low, a_high], axis=1).astype(np.float32)  # [samples, 2]
        a = binary_coefficient(g, params[:, 0], params[:, 1]).astype(np.float32)  # [samples, n, n]
        u = solve_darcy(a, cfg.forcing).astype(np.float32)
        return pack_splits(cfg.counts, {"a": a[:, None], "u": u[:, None]}, params)
