"""Compressible Euler equations of an ideal gas in 1D, ∂_t(ρ, ρu, E) + ∂_x(ρu, ρu² + p, u(E + p)) = 0, with
p = (γ − 1)(E − ½ρu²), on the periodic unit interval.

Solver (:mod:`ups.data.solvers._finite_volume`): finite volumes, MUSCL reconstruction of the primitive variables with
the MC limiter, the HLLC Riemann solver (Toro, *Riemann Solvers and Numerical Methods for Fluid Dynamics*, 3rd ed.
2009, §10.4) and SSP-RK2 with CFL-limited steps, positivity kept by an a-posteriori first-order fallback.

Data: Riemann problems on the periodic domain (a slab [x_lo, x_hi) of one constant state inside another, so both of
its edges are Sod-type shock tubes whose waves later interact), random ρ, u and p of each state with a set pressure
ratio, γ per trajectory. Stored parameters: ``gamma`` and ``pressure_ratio`` (max p / min p of the initial states).
``ood_regime`` has pressure ratios far above the training range; ``ood_bc`` has reflective walls instead of periodic
boundaries. See docs/data_format.md.

Cells are centred at the stored coordinates x_j = j·h (h = 1/N), so cell j covers [(j − ½)h, (j + ½)h); with walls
(``ood_bc``), the walls are the outer faces x = −h/2 and x = 1 − h/2. The data is solved on a grid ``refine`` times
finer (:class:`EulerSize`) whose cells subdivide the stored ones, and stored as its block averages.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from ups.data.solvers import TASKS
from ups.data.solvers._finite_volume import (
    BoundaryType,
    FVScheme,
    conserved_to_primitive,
    primitive_to_conserved,
    solve_euler,
)
from ups.data.solvers._restart import (
    block_mean,
    check_coarsen,
    check_frames,
    check_step,
    in_batches,
    march,
    prolong_linear,
)
from ups.data.solvers.base import Task, pack_splits
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData

__all__ = [
    "Euler1D",
    "EulerSize",
    "EulerTask",
    "FVScheme",
    "conserved_to_primitive",
    "primitive_to_conserved",
    "solve_euler1d",
]


def solve_euler1d(
    u0: np.ndarray,
    gamma: float | np.ndarray,
    t_out: np.ndarray,
    *,
    dx: float,
    bc: BoundaryType = "periodic",
    scheme: FVScheme = FVScheme(),  # noqa: B008 - frozen dataclass, safe as a default
    max_step: float | None = None,
) -> np.ndarray:
    """Integrate 1D Euler from the conserved cell means ``u0`` ``[B, 3, N]`` (ρ, ρu, E) to the times ``t_out``.

    Returns:
        float64 ``[B, T, 3, N]``.
    """
    return solve_euler(u0, gamma, t_out, spacing=(dx,), bc=bc, scheme=scheme, max_step=max_step)


@dataclass(frozen=True)
class EulerSize:
    """One size of an Euler dataset (shared by ``euler1d`` and ``euler2d``).

    Attributes:
        n: cells along each spatial axis.
        n_frames: stored frames t = 0, dt, …, (n_frames − 1)·dt (frame 0 is the initial condition).
        dt: time between stored frames.
        counts: trajectories per split.
        gamma_range: γ ~ U(gamma_range) per trajectory, in every split.
        rho_range: density of each constant state ~ U(rho_range).
        u_max: each velocity component of each state ~ U(−u_max, u_max); non-zero so the momentum is a real
            conserved quantity (its initial integral of |ρu| normalises the conservation gap).
        p_high_range: the highest pressure of a trajectory ~ U(p_high_range). Fixing the high end bounds the sound
            speed (and so the step count) while the ratio sets the shock strength.
        ratio_train: pressure ratio max p / min p of train/val/test/ood_bc, log-uniform.
        ratio_ood: pressure ratio of ``ood_regime``, log-uniform, above ``ratio_train``: stronger shocks.
        centre_range, width_range: the inner slab (1D) or rectangle (2D, per axis) of the initial data has its centre
            ~ U(centre_range) and width ~ U(width_range); the defaults keep it inside [0.1, 0.9], clear of the walls.
        ood_bc: wall type of the ``ood_bc`` split.
        scheme: finite-volume scheme.
        batch: trajectories solved together on a ``refine = 1`` grid (bounds the float64 working memory of the full
            size); a finer solver grid takes ``batch / refine^ndim`` at a time.
        refine: solver cells per stored cell along each axis. The initial cell means are exact on the solver grid,
            the CFL step shrinks with its cells, and the stored frames are its block averages: cell means of a
            ``refine`` times better resolved solution, so the task's own solver restarted on the stored grid
            (:meth:`EulerTask.solve_from`) carries a real discretisation error. ``refine = 1`` solves on the stored
            grid (the data as it was before the refinement, bit for bit).
    """

    n: int
    n_frames: int
    dt: float
    counts: dict[str, int] = field(default_factory=dict)
    gamma_range: tuple[float, float] = (1.3, 1.7)
    rho_range: tuple[float, float] = (0.1, 1.0)
    u_max: float = 0.5
    p_high_range: tuple[float, float] = (0.5, 1.0)
    ratio_train: tuple[float, float] = (2.0, 10.0)
    ratio_ood: tuple[float, float] = (30.0, 100.0)
    centre_range: tuple[float, float] = (0.35, 0.65)
    width_range: tuple[float, float] = (0.2, 0.5)
    ood_bc: BoundaryType = "reflective"
    scheme: FVScheme = FVScheme()
    batch: int = 128
    refine: int = 2


def sample_riemann_data(
    rng: np.random.Generator, cfg: EulerSize, n_states: int, ndim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw γ and the constant states of every trajectory of every split, in ``cfg.counts`` order.

    Draws, in order and one call each: γ, ρ, velocities, the highest pressure, a log-position of every state's
    pressure between the lowest and the highest, and the pressure ratio's position in its (per-split) range.

    Returns:
        gamma ``[n_total]``, primitive states ``[n_total, 2 + ndim, n_states]`` (ρ, u_0.., p), the pressure
        ratio ``[n_total]``, and the split name of each trajectory ``[n_total]``.
    """
    names = np.repeat(np.asarray(list(cfg.counts)), list(cfg.counts.values()))
    n_total = names.size
    gamma = rng.uniform(*cfg.gamma_range, size=n_total)
    rho = rng.uniform(*cfg.rho_range, size=(n_total, n_states))
    vel = rng.uniform(-cfg.u_max, cfg.u_max, size=(n_total, ndim, n_states))
    p_high = rng.uniform(*cfg.p_high_range, size=n_total)
    z = rng.uniform(size=(n_total, n_states))
    z = (z - z.min(axis=1, keepdims=True)) / (z.max(axis=1, keepdims=True) - z.min(axis=1, keepdims=True))
    v = rng.uniform(size=n_total)
    lo, hi = np.log(
        np.where(names == "ood_regime", np.asarray(cfg.ratio_ood)[:, None], np.asarray(cfg.ratio_train)[:, None])
    )
    ratio = np.exp(lo + v * (hi - lo))
    p = p_high[:, None] * ratio[:, None] ** (z - 1.0)  # one state at p_high, one at p_high / ratio
    states = np.concatenate([rho[:, None], vel, p[:, None]], axis=1)
    return gamma, states, ratio, names


def cell_fraction(lo: np.ndarray, hi: np.ndarray, n: int, refine: int = 1) -> np.ndarray:
    """Fraction inside [lo, hi) of each cell of the stored grid [(j − ½)h, (j + ½)h), h = 1/n, or, for ``refine`` > 1,
    of each of its ``refine`` equal sub-cells, sub-cell q = j·refine + m covering [−h/2 + q h/refine, −h/2 + (q + 1)
    h/refine): the solver grid whose block averages are the stored cells. ``lo``, ``hi`` ``[B]`` → ``[B, n·refine]``.
    """
    h = 1.0 / n
    h_sub = h / refine
    # [n·refine] centres; the stored grid's (j h) computed as they always were, so its data is unchanged bit for bit
    centres = np.arange(n) * h if refine == 1 else (np.arange(n * refine) + 0.5) * h_sub - 0.5 * h
    overlap = np.minimum(centres + 0.5 * h_sub, hi[:, None]) - np.maximum(centres - 0.5 * h_sub, lo[:, None])
    return np.clip(overlap / h_sub, 0.0, 1.0)


def split_bc(cfg: EulerSize, split: str) -> BoundaryType:
    """The walls of ``split``: ``cfg.ood_bc`` for ``ood_bc``, periodic for every other split."""
    return cfg.ood_bc if split == "ood_bc" else "periodic"


def solve_splits(
    u0: np.ndarray, gamma: np.ndarray, names: np.ndarray, cfg: EulerSize, *, refine: int = 1
) -> np.ndarray:
    """Solve every trajectory (``ood_bc`` between ``cfg.ood_bc`` walls, the rest periodic) in batches.

    Args:
        u0: conserved cell means ``[traj, C, *S]`` on the solver grid, ``refine`` cells per stored cell and axis.
        refine: the stored frames are the solver's ``refine``-cell block averages.

    Returns:
        float32 ``[C, traj, time, *space]`` on the stored grid: channel-first, so each field of each split is a
        contiguous view (the full 2D size is ~10 GB; per-field copies would double it).
    """
    ndim = u0.ndim - 2
    t_out = np.arange(cfg.n_frames) * cfg.dt
    spacing = (1.0 / (cfg.n * refine),) * ndim
    batch = max(1, cfg.batch // refine**ndim)  # the same float64 working memory on any solver grid
    out = np.empty((u0.shape[1], u0.shape[0], cfg.n_frames, *(cfg.n,) * ndim), dtype=np.float32)
    bcs = np.array([split_bc(cfg, str(name)) for name in names])
    for bc in np.unique(bcs):
        idx = np.flatnonzero(bcs == bc)
        for lo in range(0, idx.size, batch):
            sel = idx[lo : lo + batch]
            u = solve_euler(u0[sel], gamma[sel], t_out, spacing=spacing, bc=str(bc), scheme=cfg.scheme)
            out[:, sel] = np.moveaxis(block_mean(u, refine, ndim), 2, 0)  # [B, T, C, *S] → [C, B, T, *S]
    return out


def _solve_frame(
    u: np.ndarray, gamma: np.ndarray, dt: float, spacing: tuple[float, ...], bc: BoundaryType, scheme: FVScheme
) -> np.ndarray:
    """``u`` ``[B, C, *S]`` advanced by ``dt``; a trajectory whose first-order fallback lost positivity (a step rule
    beyond the scheme's stability bound) comes back NaN instead of raising for the whole batch."""
    try:
        return solve_euler(u, gamma, [dt], spacing=spacing, bc=bc, scheme=scheme)[:, 0]
    except FloatingPointError:
        if len(u) == 1:
            return np.full_like(u, np.nan)
        return np.concatenate(
            [_solve_frame(u[b : b + 1], gamma[b : b + 1], dt, spacing, bc, scheme) for b in range(len(u))]
        )


class EulerTask(Task[EulerSize]):
    """What ``euler1d`` and ``euler2d`` share: the spec, and a generator that solves :meth:`initial_state` by
    :func:`solve_splits`. A subclass names its ``fields`` (ρ, the momenta, E) and ``conserved`` integrals."""

    fields: ClassVar[tuple[str, ...]]
    conserved: ClassVar[tuple[ConservedQuantity, ...]]

    @classmethod
    def ndim(cls) -> int:
        return len(cls.fields) - 2  # ρ, one momentum per axis, E

    @classmethod
    def derived_config(cls, cfg: EulerSize) -> dict:
        """``n_internal``, the solver's cells per axis."""
        return {"n_internal": cfg.n * cfg.refine}

    @classmethod
    def make_spec(cls, cfg: EulerSize) -> TaskSpec:
        return TaskSpec(
            task=cls.name,
            fields=cls.fields,
            grid_shape=(cfg.n,) * cls.ndim(),
            domain=(1.0,) * cls.ndim(),
            dt=cfg.dt,
            bc="periodic",
            conserved=cls.conserved,
            param_names=("gamma", "pressure_ratio"),
            shock_field="rho",
            extra={"split_bc": {"ood_bc": cfg.ood_bc}},
        )

    @classmethod
    def sample(cls, cfg: EulerSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws the Riemann data of all trajectories (:func:`sample_riemann_data`), then the geometry of
        their constant states (:meth:`initial_state`). Initial cell means are the exact averages of the
        piecewise-constant conserved state.

        Returns:
            split → :class:`SplitData` with one float32 ``[traj, n_frames, *grid]`` array per name of ``fields``,
            ``params`` float32 ``[traj, 2]`` (γ, pressure ratio) and ``ids`` int64 ``[traj]``.
        """
        gamma, states, ratio, names = sample_riemann_data(rng, cfg, n_states=2 ** cls.ndim(), ndim=cls.ndim())
        u0 = cls.initial_state(cfg, rng, primitive_to_conserved(states, gamma))
        frames = solve_splits(u0, gamma, names, cfg, refine=cfg.refine)
        return pack_splits(cfg.counts, dict(zip(cls.fields, frames, strict=True)), np.stack([gamma, ratio], axis=1))

    @classmethod
    @abstractmethod
    def initial_state(cls, cfg: EulerSize, rng: np.random.Generator, cons: np.ndarray) -> np.ndarray:
        """Conserved cell means ``[traj, C, *grid]`` on the solver grid (``cfg.refine`` cells per stored cell and
        axis, see :func:`cell_fraction`) from the constant states ``cons`` ``[traj, C, 2^ndim]``; the random draws
        must not depend on the solver grid."""

    @classmethod
    def solve_from(
        cls,
        cfg: str | EulerSize,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """:func:`solve_euler` restarted from stored frames (see :meth:`Task.solve_from`); ``ood_bc`` between its walls.

        The stored conserved cell means are block-averaged to the ``n / coarsen`` grid (exact cell means of the
        coarse cells), solved there with the CFL number scaled by ``step`` (each trajectory its own steps, cut to land
        on every stored time), and brought back by conservative linear prolongation with the scheme's own slope
        limiter (MC by default; :func:`~ups.data.solvers._restart.prolong_linear`, zero gradient at walls), so every
        coarse cell's mean, and the domain totals, are kept. The data is solved on a grid ``cfg.refine`` times finer
        than the stored one, so even ``coarsen = 1`` carries the stored grid's discretisation error. Far beyond the
        scheme's stability bound (CFL 2 in 2D) the positivity fallback can fail: that trajectory returns NaN from then
        on.
        """
        cfg = cls.size(cfg)
        frames0, params = check_frames(cls.name, cls.spec(cfg), frames0, params, n_steps)
        ndim = cls.ndim()
        check_coarsen(cls.name, (cfg.n,) * ndim, coarsen)
        step = check_step(cls.name, step)
        u0 = block_mean(frames0, coarsen, ndim)  # [B, C, *S / coarsen]
        gamma = params[:, 0]
        bc = split_bc(cfg, split)
        scheme = replace(cfg.scheme, cfl=cfg.scheme.cfl * step)
        spacing = (coarsen / cfg.n,) * ndim
        batch = cfg.batch * coarsen**ndim  # the generator's working memory on the coarse grid

        def solve_batch(sl: slice) -> np.ndarray:
            return march(u0[sl], n_steps, lambda u, idx: _solve_frame(u, gamma[sl][idx], cfg.dt, spacing, bc, scheme))

        u = in_batches(solve_batch, len(u0), batch)
        return prolong_linear(u, coarsen, ndim, periodic=bc == "periodic", slope=cfg.scheme.limiter)


@TASKS.register("euler1d")
class Euler1D(EulerTask):
    """The ``euler1d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "euler1d"
    solver = "euler1d/fv-muscl-hllc-ssprk2"
    fields = ("rho", "mom", "E")
    conserved = (
        ConservedQuantity("mass", "rho"),
        ConservedQuantity("momentum", "mom"),
        ConservedQuantity("energy", "E"),
    )
    sizes: dict[str, EulerSize] = {
        # 256 cells stored, solved on 512 (refine 2: 4× the work of a 256-cell solve, 2× the cells and half the CFL
        # step): ≈ 6.2 s of one core (1.8 s when solved on 256).
        "small": EulerSize(
            n=256,
            n_frames=41,
            dt=0.01,
            counts={"train": 32, "val": 8, "test": 8, "ood_regime": 8, "ood_bc": 8},
        ),
        # PDEBench 1D compressible-flow resolution (1024 cells) and frame count, t ∈ [0, 0.4], solved on 2048 cells:
        # ≈ 40 min of one core (extrapolated from 1/25 of it, 56 trajectories in the splits' proportions: 96 s; the
        # 1024-cell solve took 34 s at batch 128, ≈ 14 min in all).
        "full": EulerSize(
            n=1024,
            n_frames=101,
            dt=0.004,
            counts={"train": 1000, "val": 100, "test": 100, "ood_regime": 100, "ood_bc": 100},
            # the element-wise work is memory-bound: 4 trajectories of the 2048-cell solver grid at a time keep the
            # arrays in cache (batch 128, 64 at a time, took 2.8–3.8× as long: 272–368 s for the 56); results do not
            # depend on the batch
            batch=8,
        ),
    }

    @classmethod
    def initial_state(cls, cfg: EulerSize, rng: np.random.Generator, cons: np.ndarray) -> np.ndarray:
        """A slab of state 0 inside state 1: its centre, then its width, drawn for every trajectory."""
        n_traj = cons.shape[0]
        centre = rng.uniform(*cfg.centre_range, size=n_traj)
        width = rng.uniform(*cfg.width_range, size=n_traj)
        lo, hi = centre - 0.5 * width, centre + 0.5 * width
        inside = cell_fraction(lo, hi, cfg.n, cfg.refine)[:, None]  # [traj, 1, n · refine]
        return inside * cons[:, :, :1] + (1.0 - inside) * cons[:, :, 1:]
