"""Compressible Euler equations of an ideal gas in 2D, ∂_t U + ∂_x F(U) + ∂_y G(U) = 0 with U = (ρ, ρu, ρv, E) and
p = (γ − 1)(E − ½ρ(u² + v²)), on the periodic unit square.

Solver (:mod:`ups.data.solvers._finite_volume`): unsplit finite volumes, MUSCL reconstruction of the primitive
variables with the MC limiter along each axis, the HLLC Riemann solver (Toro, *Riemann Solvers and Numerical Methods
for Fluid Dynamics*, 3rd ed. 2009, §10.4) on every face, SSP-RK2 with steps h · Σ_a max(|u_a| + c)/Δx_a ≤ CFL and an
a-posteriori first-order fallback that keeps ρ and p positive. The same per-axis code serves 1D and 2D, so a 1D
problem embedded along x reproduces ``euler1d`` and transposing x and y transposes the solution.

Data: four-quadrant Riemann problems (Lax & Liu, SIAM J. Sci. Comput. 19, 1998; The Well's ``euler_multi_quadrants``)
on the periodic square: the lines x ∈ {x_lo, x_hi} and y ∈ {y_lo, y_hi} cut the domain into a 2 × 2 pattern of four
constant states (ρ, u, v, p random, with a set pressure ratio), so each corner of the inner rectangle is a
four-quadrant problem; γ per trajectory. Stored parameters: ``gamma`` and ``pressure_ratio``. ``ood_regime`` has
pressure ratios far above the training range; ``ood_bc`` has reflective walls. See docs/data_format.md.

Arrays are ``[..., n_x, n_y]`` (index [i, j] is the cell centred at (x_i, y_j) = (i·h, j·h)); ``mom_x`` is the
momentum along the first spatial axis. With walls (``ood_bc``) the walls are the outer cell faces at −h/2 and 1 − h/2.
"""

from __future__ import annotations

import numpy as np

from ups.data.solvers import TASKS
from ups.data.solvers._finite_volume import BoundaryType, FVScheme, solve_euler
from ups.data.solvers.euler1d import EulerSize, EulerTask, cell_fraction
from ups.data.spec import ConservedQuantity

__all__ = ["Euler2D", "Euler2DSize", "FVScheme", "solve_euler2d"]


def solve_euler2d(
    u0: np.ndarray,
    gamma: float | np.ndarray,
    t_out: np.ndarray,
    *,
    dx: float,
    dy: float | None = None,
    bc: BoundaryType = "periodic",
    scheme: FVScheme = FVScheme(),  # noqa: B008 - frozen dataclass, safe as a default
    max_step: float | None = None,
) -> np.ndarray:
    """Integrate 2D Euler from the conserved cell means ``u0`` ``[B, 4, n_x, n_y]`` (ρ, ρu, ρv, E) to ``t_out``.

    Returns:
        float64 ``[B, T, 4, n_x, n_y]``.
    """
    spacing = (dx, dx if dy is None else dy)
    return solve_euler(u0, gamma, t_out, spacing=spacing, bc=bc, scheme=scheme, max_step=max_step)


#: One size of the euler2d dataset: the :class:`~ups.data.solvers.euler1d.EulerSize` that ``euler1d`` shares, its
#: solver refinement ``refine`` (2 by default) included; the stored frames are ``refine × refine`` block averages.
Euler2DSize = EulerSize


@TASKS.register("euler2d")
class Euler2D(EulerTask):
    """The ``euler2d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "euler2d"
    solver = "euler2d/fv-muscl-hllc-ssprk2"
    fields = ("rho", "mom_x", "mom_y", "E")
    conserved = (
        ConservedQuantity("mass", "rho"),
        ConservedQuantity("momentum_x", "mom_x"),
        ConservedQuantity("momentum_y", "mom_y"),
        ConservedQuantity("energy", "E"),
    )
    sizes: dict[str, Euler2DSize] = {
        # 32² stored, solved on 64² (8× the work of a 32² solve: 4× the cells, half the CFL step): ≈ 15 s of one core
        # (2.4 s when solved on 32²).
        "small": Euler2DSize(
            n=32,
            n_frames=21,
            dt=0.01,
            counts={"train": 32, "val": 8, "test": 8, "ood_regime": 8, "ood_bc": 8},
            # per 32² of stored grid: the element-wise work is memory-bound, ~16 trajectories of 32² keep the arrays
            # in cache (4 of the 64² solver grid)
            batch=16,
        ),
        # PDEBench 2D compressible-flow resolution (128²) stored, solved on 256², 101 frames over t ∈ [0, 0.4];
        # ≈ 4 h of one core (extrapolated: 8× the ≈ 30 min of a 128² solve).
        "full": Euler2DSize(
            n=128,
            n_frames=101,
            dt=0.004,
            counts={"train": 256, "val": 32, "test": 32, "ood_regime": 32, "ood_bc": 32},
            batch=8,
        ),
    }

    @classmethod
    def initial_state(cls, cfg: EulerSize, rng: np.random.Generator, cons: np.ndarray) -> np.ndarray:
        """Four quadrant states around an inner rectangle: its centres along x and y, then its widths."""
        n_traj = cons.shape[0]
        centre = rng.uniform(*cfg.centre_range, size=(2, n_traj))
        width = rng.uniform(*cfg.width_range, size=(2, n_traj))
        r = cfg.refine
        fx, fy = (cell_fraction(c - 0.5 * w, c + 0.5 * w, cfg.n, r) for c, w in zip(centre, width, strict=True))
        fx, fy = fx[:, :, None], fy[:, None, :]  # [traj, n_x, 1], [traj, 1, n_y]
        weights = np.stack([fx * fy, fx * (1.0 - fy), (1.0 - fx) * fy, (1.0 - fx) * (1.0 - fy)], axis=1)
        return np.einsum("bcs,bsxy->bcxy", cons, weights)  # [traj, 4, n_x, n_y]
