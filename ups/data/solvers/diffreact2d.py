"""FitzHugh–Nagumo reaction–diffusion in 2D with no-flux walls (the PDEBench 2D diffusion–reaction task).

    u_t = D_u Δu + u − u³ − k − v,   v_t = D_v Δv + u − v   on [−L/2, L/2]²,   ∂_n u = ∂_n v = 0 on the walls.

PDEBench (Takamoto et al., NeurIPS 2022 Datasets & Benchmarks) uses D_u = 1e-3, D_v = 5e-3, k = 5e-3, L = 2; here D_u
and k vary per trajectory.

Space: cell-centred finite differences, the 5-point Laplacian with one ghost cell per wall that mirrors the boundary
cell (u_ghost = u_boundary), so the discrete flux through every wall face is exactly zero and Σ Δu = 0. This
Laplacian is diagonalised by the type-II discrete cosine transform, with eigenvalues −(4/h²) sin²(πm / 2N) per axis
(Strang, "The discrete cosine transform", SIAM Review 41, 1999), so an implicit diffusion solve is one DCT, a division
and one inverse DCT.

Time: second-order semi-implicit BDF, SBDF2 (Ascher, Ruuth & Wetton, SIAM J. Numer. Anal. 32, 1995): diffusion
implicit, reaction explicit and extrapolated; the first step is IMEX Euler. One forward and one inverse DCT per step.

Data: smooth Gaussian random fields as initial conditions (see :func:`gaussian_random_field`). See docs/data_format.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from ups.data.solvers import TASKS
from ups.data.solvers._restart import block_mean, check_coarsen, check_frames, check_step, prolong_linear
from ups.data.solvers.base import Task, draw_per_split, pack_splits, split_blocks
from ups.data.spec import TaskSpec
from ups.data.splits import SplitData

Reaction = Callable[[np.ndarray], np.ndarray]

_BATCH = 32  # trajectories solved together on a 1x solver grid; one full-size batch's float64 frames take ~0.85 GB


def neumann_laplacian_eigenvalues(n: int, h: float | np.ndarray) -> np.ndarray:
    """Eigenvalues of the 1D cell-centred ghost-cell Laplacian (u_{j−1} − 2u_j + u_{j+1}) / h² with u_{−1} = u_0,
    u_N = u_{N−1}, in DCT-II order: λ_m = −(4/h²) sin²(πm / 2N), m = 0..N−1 (λ_0 = 0: the mean never diffuses).

    Returns:
        ``[n]`` for scalar ``h``, ``[*h.shape, n]`` otherwise.
    """
    h = np.asarray(h, dtype=np.float64)[..., None]
    return -4.0 / h**2 * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2


def fitzhugh_nagumo(k: float | np.ndarray) -> Reaction:
    """The FitzHugh–Nagumo reaction R(u, v) = (u − u³ − k − v, u − v) on ``[B, 2, H, W]`` states.

    Args:
        k: the threshold constant, a scalar or one value per trajectory ``[B]``.
    """
    k_b = np.asarray(k, dtype=np.float64).reshape(-1, 1, 1) if np.ndim(k) else float(k)

    def reaction(y: np.ndarray) -> np.ndarray:
        u, v = y[:, 0], y[:, 1]
        return np.stack([u - u * u * u - k_b - v, u - v], axis=1)  # u * u * u: np.power is ~100x slower

    return reaction


def solve_reaction_diffusion(
    y0: np.ndarray,
    diffusivity: float | np.ndarray,
    length: float | np.ndarray,
    dt: float,
    n_frames: int,
    *,
    n_sub: int,
    reaction: Reaction | None = None,
) -> np.ndarray:
    """Integrate y_t = D Δy + R(y) with no-flux walls on a square of side ``length`` by SBDF2 (module docstring).

    Args:
        y0: ``[B, C, H, W]`` initial cell values; cell (i, j) is centred at ((i + ½) h_x, (j + ½) h_y) from the lower
            corner, h_x = length / H, h_y = length / W.
        diffusivity: D per channel, a scalar, ``[C]`` or ``[B, C]``.
        length: side of the square, a scalar or one value per trajectory ``[B]``.
        dt: time between returned frames.
        n_frames: number of frames returned, t = 0, dt, ..., (n_frames − 1) dt; frame 0 is ``y0``.
        n_sub: internal steps per frame (step h = dt / n_sub, fixed for the whole run as SBDF2 needs).
        reaction: R(y) ``[B, C, H, W] → [B, C, H, W]``; None for pure diffusion.

    Returns:
        float64 ``[B, n_frames, C, H, W]``.
    """
    y = np.asarray(y0, dtype=np.float64)
    n_traj, n_chan, nx, ny = y.shape
    d = np.broadcast_to(np.asarray(diffusivity, dtype=np.float64), (n_traj, n_chan))
    side = np.broadcast_to(np.asarray(length, dtype=np.float64), (n_traj,))
    lam_x = neumann_laplacian_eigenvalues(nx, side / nx)  # [B, H]
    lam_y = neumann_laplacian_eigenvalues(ny, side / ny)  # [B, W]
    lam = d[:, :, None, None] * (lam_x[:, None, :, None] + lam_y[:, None, None, :])  # [B, C, H, W] eigenvalues of DΔ
    h = dt / n_sub

    def implicit(rhs: np.ndarray, gamma: float) -> np.ndarray:
        """(I − γ h DΔ)⁻¹ rhs, diagonal in DCT-II space."""
        return sfft.idctn(
            sfft.dctn(rhs, type=2, axes=(2, 3), norm="ortho") / (1.0 - gamma * h * lam),
            type=2,
            axes=(2, 3),
            norm="ortho",
        )

    def react(state: np.ndarray) -> np.ndarray:
        return np.zeros_like(state) if reaction is None else reaction(state)

    out = np.empty((n_traj, n_frames, n_chan, nx, ny), dtype=np.float64)
    out[:, 0] = y
    y_prev = r_prev = None
    for frame in range(1, n_frames):
        for _ in range(n_sub):
            r = react(y)
            if y_prev is None:  # IMEX Euler start: (y1 − y0)/h = DΔy1 + R(y0)
                y_new = implicit(y + h * r, 1.0)
            else:  # SBDF2: (3y_{n+1} − 4y_n + y_{n−1})/2h = DΔy_{n+1} + 2R(y_n) − R(y_{n−1})
                y_new = implicit((4.0 * y - y_prev) / 3.0 + (2.0 / 3.0) * h * (2.0 * r - r_prev), 2.0 / 3.0)
            y_prev, r_prev, y = y, r, y_new
        out[:, frame] = y
    return out


def gaussian_random_field(
    rng: np.random.Generator,
    n_samples: int,
    shape: tuple[int, int],
    *,
    length: float,
    alpha: float,
    tau: float,
    zero_mean: bool = False,
) -> np.ndarray:
    """Smooth Gaussian random fields on an ``shape`` grid of a square of side ``length``, unit mean variance.

    The field is a cosine series Σ_m c_m ξ_m φ_m with ξ_m ~ N(0, 1) i.i.d., φ_m the orthonormal DCT-II basis and
    c_m ∝ (|κ_m|² + τ²)^(−α/2), κ_m = π m / length: the covariance (−Δ + τ²)^(−α) with Neumann walls used for the FNO
    Darcy data (Li et al., ICLR 2021), whose fields have zero normal derivative at the walls. The c_m are scaled so
    that the pointwise variance averaged over the grid is 1. ``zero_mean`` drops the constant mode.

    Returns:
        float64 ``[n_samples, *shape]``.
    """
    kx = np.pi * np.arange(shape[0]) / length
    ky = np.pi * np.arange(shape[1]) / length
    c = (kx[:, None] ** 2 + ky[None, :] ** 2 + tau**2) ** (-alpha / 2.0)  # [H, W]
    if zero_mean:
        c[0, 0] = 0.0
    c = c / math.sqrt(np.mean(c**2))  # mean_x E f(x)² = Σ c² / (H W) for an orthonormal basis
    xi = rng.standard_normal((n_samples, *shape))
    return sfft.idctn(c * xi, type=2, axes=(1, 2), norm="ortho")


def cosine_interpolate(y: np.ndarray, n: int) -> np.ndarray:
    """Cell values ``y`` ``[..., m, m]`` read as their cosine series (DCT-II modes < m) and evaluated at the cell
    centres of the n × n grid of the same square (n ≥ m): the coefficients are zero-padded and scaled by n/m, the
    ratio of the orthonormal basis amplitudes. The exact fine values of a field that is such a series, like those
    of :func:`gaussian_random_field`; ``y`` itself when n = m."""
    m = y.shape[-1]
    if m == n:
        return y
    coef = np.zeros((*y.shape[:-2], n, n))
    coef[..., :m, :m] = sfft.dctn(y, type=2, axes=(-2, -1), norm="ortho") * (n / m)
    return sfft.idctn(coef, type=2, axes=(-2, -1), norm="ortho")


@dataclass(frozen=True)
class DiffReact2DSize:
    """One size of the diffreact2d dataset.

    Attributes:
        n: stored cells per side.
        refine: solver cells per stored cell along each axis (every split); stored frames are block averages of the
            solver's cells, so they are cell averages of a ``refine`` times better resolved solution.
        n_frames: stored frames, t = 0, dt, ..., (n_frames − 1) dt (frame 0 is the initial condition).
        dt: time between stored frames.
        counts: trajectories per split.
        length: side of the square domain [−length/2, length/2]² (PDEBench: [−1, 1]²).
        ood_length: side of the ``ood_geometry`` square, stored on the same ``n × n`` grid (so its cells are
            ``ood_length / length`` times wider). Its solver grid is that many times finer again, with the same solver
            cell size as every other split, and stored as block averages: the coarser stored cells are exact cell
            averages of an equally accurate solution, not a less accurate solve.
        d_u_train: D_u range of train/val/test/ood_geometry, drawn log-uniformly (PDEBench's 1e-3 is its geometric
            centre).
        d_u_ood: D_u range of ``ood_regime``, above the training range: D_v / D_u falls from 2.5–10 to 1.25–1.7,
            where the diffusion-driven (Turing) instability, which needs D_v ≫ D_u, is weak or absent.
        k_range: k range, drawn uniformly for every split (PDEBench's 5e-3 is its centre).
        d_v: D_v, fixed (PDEBench's value).
        ic_std: initial u and v are independent Gaussian random fields scaled to this mean pointwise std. At 0.5 the
            largest initial values (≈ 2–3, at the walls, where a cosine-series field has up to 4× the mean variance)
            keep the explicit cubic term inside SBDF2's stability interval for the internal step.
        ic_alpha, ic_tau: covariance (−Δ + τ²)^(−α) of the initial fields (length scale ≈ 1/τ = 0.2). α = 4 makes
            them smooth down to the grid (Matérn ν = α − 1 = 3); with α = 2 (Matérn ν = 1, not differentiable) the 64²
            data carries grid-scale roughness and 3× the discretisation error at t = 5.
        dt_max: largest internal step; SBDF2 at 0.025 is ≈ 4e-4 (relative L2) from a 4× finer step at t = 5. The
            diffusion is implicit, so the step does not shrink with the grid.
    """

    n: int
    n_frames: int
    dt: float
    counts: dict[str, int] = field(default_factory=dict)
    length: float = 2.0
    ood_length: float = 4.0
    d_u_train: tuple[float, float] = (5e-4, 2e-3)
    d_u_ood: tuple[float, float] = (3e-3, 4e-3)
    k_range: tuple[float, float] = (0.0, 1e-2)
    d_v: float = 5e-3
    ic_std: float = 0.5
    ic_alpha: float = 4.0
    ic_tau: float = 5.0
    dt_max: float = 0.025
    refine: int = 2

    @property
    def n_sub(self) -> int:
        """Internal steps per stored frame."""
        return max(1, math.ceil(self.dt / self.dt_max - 1e-9))

    def split_length(self, split: str) -> float:
        return self.ood_length if split == "ood_geometry" else self.length

    def ic_grid(self, split: str) -> int:
        """Cells per side of the grid whose cosine modes make the initial fields: the stored grid's cells of the
        split's domain at the solver cell size of ``refine = 1`` (``n``, or ``n · ood_length / length``)."""
        ratio = self.split_length(split) / self.length
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(f"{split}: domain ratio {ratio} must be a positive integer")
        return self.n * round(ratio)

    def oversample(self, split: str) -> int:
        """Solver cells per stored cell along each axis: ``refine``, times the domain ratio for ``ood_geometry``."""
        return self.refine * self.ic_grid(split) // self.n


@TASKS.register("diffreact2d")
class DiffReact2D(Task[DiffReact2DSize]):
    """The ``diffreact2d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "diffreact2d"
    solver = "diffreact2d/fd-neumann-dct-sbdf2"
    sizes: dict[str, DiffReact2DSize] = {
        # Generates in ≈ 11 s of one core (56 trajectories × 200 internal steps at 128², 8 of ood_geometry at 256²;
        # 2.4 s when solved on the stored grid). The stored frames are ≈ 3e-3 (relative L2 at t = 5, D_u = 5e-4) from
        # a 512² solve of the same initial field, 4.5× closer than a 64² solve (1.3e-2).
        "small": DiffReact2DSize(
            n=64,
            n_frames=21,
            dt=0.25,
            counts={"train": 32, "val": 8, "test": 8, "ood_regime": 8, "ood_geometry": 8},
        ),
        # PDEBench 2D diffusion–reaction resolution and horizon (128², 101 frames over t ∈ [0, 5]), solved on 256²;
        # ≈ 25 min of one core (extrapolated: 4.5× the ≈ 5 min of a 128² solve, as measured for `small`) and ≈ 16 GB
        # of float32 frames in memory (PDEBench's file is 13 GB; the OOD splits add the rest).
        "full": DiffReact2DSize(
            n=128,
            n_frames=101,
            dt=0.05,
            counts={"train": 800, "val": 100, "test": 100, "ood_regime": 100, "ood_geometry": 100},
        ),
    }

    @classmethod
    def make_spec(cls, cfg: DiffReact2DSize) -> TaskSpec:
        split_domain = {s: [cfg.split_length(s)] * 2 for s in cfg.counts if cfg.split_length(s) != cfg.length}
        return TaskSpec(
            task=cls.name,
            fields=("u", "v"),
            grid_shape=(cfg.n, cfg.n),
            domain=(cfg.length, cfg.length),
            dt=cfg.dt,
            bc="neumann",
            bc_value=0.0,
            param_names=("D_u", "k"),
            bc_fields=("u", "v"),
            # Cell-centred grid on a square centred at the origin: physical position = stored coordinate − L/2.
            extra={"centring": "cell", "split_domain": split_domain},
        )

    @classmethod
    def derived_config(cls, cfg: DiffReact2DSize) -> dict:
        """``n_sub``, the internal steps per frame, and ``solver_grid``, the solver's cells per side of each split."""
        return {"n_sub": cfg.n_sub, "solver_grid": {s: cfg.n * cfg.oversample(s) for s in cfg.counts}}

    @classmethod
    def solve_split(cls, size: str | DiffReact2DSize, split: str, y0: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The stored frames of trajectories of ``split`` from the initial fields ``y0``: solved on the split's solver
        grid (``n · oversample(split)`` cells per side) and stored as block averages on the ``n × n`` grid.

        Args:
            size: the size whose grid, horizon, D_v and step apply.
            split: sets the domain side (``ood_geometry``: ``ood_length``).
            y0: ``[B, 2, m, m]`` initial (u, v) cell values on any grid up to the solver grid, evaluated on it by
                :func:`cosine_interpolate`.
            params: ``[B, 2]`` (D_u, k).

        Returns:
            float64 ``[B, n_frames, 2, n, n]``.
        """
        cfg = cls.size(size)
        f = cfg.oversample(split)
        d_u, k = np.asarray(params, dtype=np.float64).T
        out = solve_reaction_diffusion(
            cosine_interpolate(np.asarray(y0, dtype=np.float64), cfg.n * f),
            np.stack([d_u, np.full_like(d_u, cfg.d_v)], axis=1),  # [B, 2] diffusivity of (u, v)
            cfg.split_length(split),
            cfg.dt,
            cfg.n_frames,
            n_sub=cfg.n_sub,
            reaction=fitzhugh_nagumo(k),
        )
        return block_mean(out, f, 2)  # cell averages

    @classmethod
    def sample(cls, cfg: DiffReact2DSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws, in order, the initial u and v of every split (in split order, each a cosine series on the
        split's :meth:`~DiffReact2DSize.ic_grid`), then D_u and k of every split. The initial fields are evaluated on
        the solver grid by :func:`cosine_interpolate`, so they do not depend on ``refine``: refining the solver
        refines the same trajectories. Frames come from :meth:`solve_split`.

        Returns:
            split → :class:`SplitData` with ``fields["u"]``, ``fields["v"]`` float32 ``[traj, n_frames, n, n]``,
            ``params`` float32 ``[traj, 2]`` (D_u, k) and ``ids`` int64 ``[traj]``.
        """
        y0 = {}
        for name, count in cfg.counts.items():
            m = cfg.ic_grid(name)
            grf = [
                gaussian_random_field(
                    rng, count, (m, m), length=cfg.split_length(name), alpha=cfg.ic_alpha, tau=cfg.ic_tau
                )
                for _ in ("u", "v")
            ]
            y0[name] = cfg.ic_std * np.stack(grf, axis=1)  # [traj, 2, m, m]

        def draw_d_u_k(d_u_range: tuple[float, float], n: int) -> np.ndarray:
            lo, hi = np.log(d_u_range)
            d_u = np.exp(rng.uniform(lo, hi, size=n))
            return np.stack([d_u, rng.uniform(*cfg.k_range, size=n)], axis=1)  # [traj, 2]

        params = draw_per_split(cfg.counts, cfg.d_u_train, cfg.d_u_ood, draw_d_u_k)  # [traj, 2]

        n_total = sum(cfg.counts.values())
        y = np.empty((n_total, cfg.n_frames, 2, cfg.n, cfg.n), dtype=np.float32)  # [traj, time, field, n, n]
        for name, block in split_blocks(cfg.counts).items():
            y_split, params_split = y[block], params[block]  # views of this split's id block
            batch = max(1, _BATCH // cfg.oversample(name) ** 2)  # the same float64 working memory on any solver grid
            for lo in range(0, len(params_split), batch):
                sl = slice(lo, lo + batch)
                y_split[sl] = cls.solve_split(cfg, name, y0[name][sl], params_split[sl])
        return pack_splits(cfg.counts, {"u": y[:, :, 0], "v": y[:, :, 1]}, params)

    @classmethod
    def solve_from(
        cls,
        cfg: str | DiffReact2DSize,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """:func:`solve_reaction_diffusion` restarted from stored frames (see :meth:`Task.solve_from`).

        The stored cell values are block-averaged to the ``n / coarsen`` grid of the split's square (``ood_geometry``:
        the larger one), solved there with SBDF2 at the largest step ``dt_max · step`` (the same rule as the
        generator's: whole steps per stored frame), and brought back by conservative linear prolongation with central
        slopes (:func:`~ups.data.solvers._restart.prolong_linear`; zero gradient at the walls). The step count is
        fixed, so a blow-up returns non-finite values and never stalls.
        """
        cfg = cls.size(cfg)
        frames0, params = check_frames(cls.name, cls.spec(cfg), frames0, params, n_steps)
        n_c = check_coarsen(cls.name, (cfg.n, cfg.n), coarsen)[0]
        step = check_step(cls.name, step)
        y0 = block_mean(frames0, coarsen, 2)  # [B, 2, n_c, n_c]
        d_u, k = params.T
        n_sub = max(1, math.ceil(cfg.dt / (cfg.dt_max * step) - 1e-9))
        batch = max(1, _BATCH * (cfg.n // n_c) ** 2)  # the generator's working memory at refine 1
        out = np.empty((len(y0), n_steps, 2, cfg.n, cfg.n))
        with np.errstate(all="ignore"):
            for lo in range(0, len(y0), batch):
                sl = slice(lo, lo + batch)
                y = solve_reaction_diffusion(
                    y0[sl],
                    np.stack([d_u[sl], np.full_like(d_u[sl], cfg.d_v)], axis=1),
                    cfg.split_length(split),
                    cfg.dt,
                    n_steps + 1,
                    n_sub=n_sub,
                    reaction=fitzhugh_nagumo(k[sl]),
                )[:, 1:]
                out[sl] = prolong_linear(y, coarsen, 2, periodic=False, slope="central")
        return out
