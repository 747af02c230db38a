"""Viscous Burgers' equation in 1D: u_t + (u²/2)_x = ν u_xx on the periodic unit interval x ∈ [0, 1).

Solver: Fourier pseudo-spectral in space with the 2/3 dealiasing rule (Orszag 1971), fourth-order Runge–Kutta in time
on the integrating-factor form v = exp(ν κ² t) û (Trefethen, *Spectral Methods in MATLAB*, 2000, program 27), so the
viscous term is integrated exactly and only the advective term limits the step. The mean mode (κ = 0) is untouched
by both terms, so mass ∫u dx is conserved to round-off.

Resolution: each trajectory runs on the coarsest grid n_x · oversample · 2^m that puts ``front_points`` nodes across
its thinnest possible viscous front. A Burgers shock of jump Δu has the profile -Δu/2 · tanh(Δu x / 4ν) (Whitham,
*Linear and Nonlinear Waves*, 1974, ch. 4), width 4ν/Δu, and by the maximum principle no jump ever exceeds the initial
range max u0 − min u0, so ν and u0 alone fix the grid for the whole horizon.

Data: PDEBench-style initial conditions (Takamoto et al., NeurIPS 2022 Datasets & Benchmarks), a sum of a few sine
modes with integer wavenumbers (so they are periodic on [0, 1)), random amplitudes and phases; ν varies per
trajectory and is stored as the parameter ``nu``. See docs/data_format.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from ups.data.solvers import TASKS
from ups.data.solvers._restart import check_coarsen, check_frames, check_step, fourier_resample, march
from ups.data.solvers.base import Task, draw_per_split, pack_splits
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData

_BATCH = 256  # trajectories solved together; one batch of [256, 201, 1024] float64 stored frames is ~0.4 GB


def solve_burgers(
    u0: np.ndarray, nu: float | np.ndarray, t_out: np.ndarray, *, cfl: float = 0.5, stride: int = 1
) -> np.ndarray:
    """Integrate viscous Burgers from ``u0`` at t = 0 and return the solution at the times ``t_out``.

    Args:
        u0: ``[B, N]`` (or ``[N]``) initial values at the nodes x_j = j / N of [0, 1).
        nu: viscosity, a scalar or one value per trajectory ``[B]``.
        t_out: ``[T]`` non-decreasing output times ≥ 0 (t = 0 returns ``u0`` after dealiasing).
        cfl: advective Courant number h · max|u| / Δx of the internal steps. The viscous part is exact, so this is
            the only step limit; by the maximum principle max|u| never grows, so the first frame's bound holds.
        stride: return every ``stride``-th node only (``N`` must be a multiple), so a fine solver grid costs no
            more output memory than the stored one.

    Returns:
        float64 ``[B, T, N // stride]`` (``[T, N // stride]`` for 1D ``u0``).
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u0 = np.atleast_2d(u0)
    n_traj, n = u0.shape
    nu_b = np.broadcast_to(np.asarray(nu, dtype=np.float64), (n_traj,))
    t_out = np.asarray(t_out, dtype=np.float64)
    if t_out.ndim != 1 or (t_out.size and (t_out[0] < 0 or np.any(np.diff(t_out) < 0))):
        raise ValueError("t_out must be a 1D non-decreasing array of times >= 0")
    if n % stride:
        raise ValueError(f"stride {stride} does not divide the {n} grid points")

    k = sfft.rfftfreq(n, d=1.0 / n)  # [K] integer wavenumbers 0..n/2
    kappa = 2.0 * np.pi * k
    keep = k < n / 3.0  # 2/3 rule: products of kept modes never alias back onto kept modes
    # Nonlinear term -(u²/2)_x in Fourier space is -(iκ/2) F[u²]; masking it keeps û inside the kept band forever.
    nl_factor = np.where(keep, -0.5j * kappa, 0.0)  # [K]
    lin = -nu_b[:, None] * kappa[None, :] ** 2  # [B, K] viscous eigenvalues

    def nonlinear(v_hat: np.ndarray, scale: np.ndarray) -> np.ndarray:
        u = sfft.irfft(v_hat, n=n, axis=-1)
        return scale * sfft.rfft(u * u, axis=-1)

    u_hat = sfft.rfft(u0, axis=-1) * keep  # [B, K]
    out = np.empty((n_traj, t_out.size, n // stride), dtype=np.float64)
    t_now = 0.0
    dx = 1.0 / n
    for i, t_target in enumerate(t_out):
        span = t_target - t_now
        if span > 0:
            u_max = float(np.max(np.abs(sfft.irfft(u_hat, n=n, axis=-1))))
            n_sub = max(1, math.ceil(span * u_max / (cfl * dx)))
            h = span / n_sub
            e_full = np.exp(lin * h)  # [B, K] exact viscous decay over h
            e_half = np.exp(lin * (0.5 * h))
            scale = h * nl_factor
            for _ in range(n_sub):
                u_hat = _ifrk4_step(u_hat, e_half, e_full, scale, nonlinear)
            t_now = float(t_target)
        out[:, i] = sfft.irfft(u_hat, n=n, axis=-1)[:, ::stride]
    return out[0] if squeeze else out


def _ifrk4_step(u_hat, e_half, e_full, scale, nonlinear):
    """One integrating-factor RK4 step (Trefethen 2000, p27.m); ``scale`` already carries the step h."""
    a = nonlinear(u_hat, scale)
    b = nonlinear(e_half * (u_hat + 0.5 * a), scale)
    c = nonlinear(e_half * u_hat + 0.5 * b, scale)
    d = nonlinear(e_full * u_hat + e_half * c, scale)
    return e_full * (u_hat + a / 6.0) + e_half * ((b + c) / 3.0) + d / 6.0


@dataclass(frozen=True, eq=False)
class SineInitialConditions:
    """PDEBench-style initial conditions u0(x) = c + Σ_i A_i sin(2π k_i x + φ_i), kept as parameters.

    Kept symbolic rather than sampled so that each trajectory can be evaluated on whichever solver grid it needs.

    Attributes:
        k: int ``[B, M]`` wavenumbers (integers, so u0 is periodic on [0, 1)).
        amp: ``[B, M]`` amplitudes A_i.
        phase: ``[B, M]`` phases φ_i.
        offset: ``[B]`` means c.
    """

    k: np.ndarray
    amp: np.ndarray
    phase: np.ndarray
    offset: np.ndarray

    @classmethod
    def draw(
        cls, rng: np.random.Generator, n_traj: int, *, n_modes: int, k_max: int, amp_max: float
    ) -> SineInitialConditions:
        """Zero-mean modes k_i ~ U{1..k_max}, A_i ~ U(0, amp_max), φ_i ~ U(0, 2π), one ``rng`` call per array.

        The means are left at 0 and set by :meth:`with_offset`, so a caller can draw other quantities in between.
        """
        k = rng.integers(1, k_max + 1, size=(n_traj, n_modes))
        amp = rng.uniform(0.0, amp_max, size=(n_traj, n_modes))
        phase = rng.uniform(0.0, 2.0 * np.pi, size=(n_traj, n_modes))
        return cls(k, amp, phase, np.zeros(n_traj))

    def with_offset(self, offset: np.ndarray) -> SineInitialConditions:
        return SineInitialConditions(self.k, self.amp, self.phase, np.asarray(offset, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.offset)

    def __getitem__(self, idx) -> SineInitialConditions:
        return SineInitialConditions(self.k[idx], self.amp[idx], self.phase[idx], self.offset[idx])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Values at the points ``x`` ``[N]``; returns float64 ``[B, N]``."""
        arg = 2.0 * np.pi * self.k[:, :, None] * x[None, None, :] + self.phase[:, :, None]  # [b, mode, x]
        return self.offset[:, None] + np.einsum("bm,bmx->bx", self.amp, np.sin(arg))


def front_resolving_grid(n_min: int, nu: np.ndarray, u_range: np.ndarray, front_points: float) -> np.ndarray:
    """Solver grid size per trajectory: the smallest ``n_min · 2^m`` (m ≥ 0) with ``front_points`` nodes across 4ν/Δu.

    Args:
        n_min: coarsest allowed grid.
        nu: ``[B]`` viscosities.
        u_range: ``[B]`` initial ranges Δu = max u0 − min u0, an upper bound on every later jump.
        front_points: nodes required across the front width 4ν/Δu.

    Returns:
        int64 ``[B]`` grid sizes; powers-of-two multiples of ``n_min``, so trajectories share few distinct grids.
    """
    need = front_points * np.asarray(u_range, dtype=np.float64) / (4.0 * np.asarray(nu, dtype=np.float64))
    grid = np.full(need.shape, n_min, dtype=np.int64)
    while np.any(grid < need):
        grid = np.where(grid < need, 2 * grid, grid)
    return grid


@dataclass(frozen=True)
class Burgers1DSize:
    """One size of the burgers1d dataset.

    Attributes:
        n_x: stored grid points (nodes j / n_x).
        oversample: the coarsest solver grid is ``n_x * oversample`` points; every solver grid is a multiple of n_x
            and the stored frames are its values at the nodes j / n_x.
        n_frames: stored frames, t = 0, dt, ..., (n_frames - 1) dt (frame 0 is the initial condition).
        dt: time between stored frames.
        counts: trajectories per split.
        nu_train: ν values of train/val/test, drawn uniformly per trajectory.
        nu_ood: ν values of ``ood_regime``, outside [min(nu_train), max(nu_train)].
        n_modes, k_max, amp_max: initial-condition modes (see :meth:`SineInitialConditions.draw`).
        mean_range: each initial condition gets a uniform offset ±U(mean_range) (random sign). Without it every
            field is zero-mean and decays towards u ≡ 0 within the horizon at the larger ν, where nRMSE's
            denominator √mean y² vanishes and the score is meaningless; with it the mass ∫u is non-zero, so the
            conservation gap measures a real quantity instead of round-off.
        cfl: advective Courant number of the internal steps.
        front_points: solver nodes required across the thinnest possible front 4ν/Δu (see
            :func:`front_resolving_grid`). For u0 = sin 2πkx (k = 1, 2, 4) the stored frames' worst error, always
            near shock formation, is 3e-4 at 1.9 nodes, 3e-5 at 2.6 and 4e-7 at 3.8 (relative L2 against a 4096-point
            solve); 3.5 keeps a doubled grid within ~1e-6 of the chosen one.
    """

    n_x: int
    oversample: int
    n_frames: int
    dt: float
    counts: dict[str, int] = field(default_factory=dict)
    nu_train: tuple[float, ...] = (0.005, 0.01, 0.02, 0.04)
    nu_ood: tuple[float, ...] = (0.0025,)
    n_modes: int = 2
    k_max: int = 4
    amp_max: float = 0.5
    mean_range: tuple[float, float] = (0.2, 0.6)
    cfl: float = 0.5
    front_points: float = 3.5


def _grid_batches(grid: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """Indices of trajectories sharing a solver grid, coarsest grid first, at most ``batch`` at a time."""
    for n in np.unique(grid):
        idx = np.flatnonzero(grid == n)
        for lo in range(0, len(idx), batch):
            yield idx[lo : lo + batch]


@TASKS.register("burgers1d")
class Burgers1D(Task[Burgers1DSize]):
    """The ``burgers1d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "burgers1d"
    solver = "burgers1d/pseudospectral-ifrk4"
    sizes: dict[str, Burgers1DSize] = {
        # Generates in about two seconds on one core; t ∈ [0, 2] like PDEBench. Solver grids 512 (every
        # trajectory with ν ≥ 0.005) or 1024 (ood_regime trajectories whose range Δu exceeds 1.46).
        "small": Burgers1DSize(
            n_x=256, oversample=2, n_frames=41, dt=0.05, counts={"train": 48, "val": 8, "test": 16, "ood_regime": 16}
        ),
        # PDEBench 1D Burgers resolution and horizon (1024 points, 201 frames over t ∈ [0, 2]). Every trajectory
        # solves on 1024 points: Δu ≤ 2 and ν ≥ 0.0025 give ≥ 5.1 nodes across a front.
        "full": Burgers1DSize(
            n_x=1024,
            oversample=1,
            n_frames=201,
            dt=0.01,
            counts={"train": 1000, "val": 100, "test": 100, "ood_regime": 100},
        ),
    }

    @classmethod
    def make_spec(cls, cfg: Burgers1DSize) -> TaskSpec:
        return TaskSpec(
            task=cls.name,
            fields=("u",),
            grid_shape=(cfg.n_x,),
            domain=(1.0,),
            dt=cfg.dt,
            bc="periodic",
            conserved=(ConservedQuantity("mass", "u"),),
            param_names=("nu",),
        )

    @classmethod
    def derived_config(cls, cfg: Burgers1DSize) -> dict:
        """``n_internal``, the coarsest solver grid (each trajectory may refine it)."""
        return {"n_internal": cfg.n_x * cfg.oversample}

    @classmethod
    def solve(
        cls,
        size: str | Burgers1DSize,
        u0: SineInitialConditions,
        nu: np.ndarray,
        *,
        refine: int = 1,
        dtype: type[np.floating] = np.float64,
    ) -> np.ndarray:
        """Solve every trajectory on its front-resolving grid and return the stored frames.

        Each trajectory's grid is :func:`front_resolving_grid` of its ν and initial range (measured on the coarsest
        grid's nodes); ``refine`` multiplies every grid, to check that the chosen one is converged.

        Args:
            size: the size whose n_x, oversample, n_frames, dt, cfl and front_points apply.
            u0: ``B`` initial conditions.
            nu: ``[B]`` viscosities.
            refine: factor applied to every solver grid (1 for the data).
            dtype: of the returned frames (the solver works in float64 either way).

        Returns:
            ``dtype`` ``[B, n_frames, n_x]``, the solution at the nodes j / n_x.
        """
        cfg = cls.size(size)
        nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (len(u0),))
        n_min = cfg.n_x * cfg.oversample
        u_min_grid = u0(np.arange(n_min) / n_min)  # [B, n_min]
        grid = refine * front_resolving_grid(n_min, nu, np.ptp(u_min_grid, axis=1), cfg.front_points)
        t_out = np.arange(cfg.n_frames) * cfg.dt
        out = np.empty((len(u0), cfg.n_frames, cfg.n_x), dtype=dtype)  # [traj, time, n_x]
        # Batches bound the working memory of the full size: the output is on the stored grid whatever the solver's.
        for idx in _grid_batches(grid, _BATCH):
            n = int(grid[idx[0]])
            out[idx] = solve_burgers(u0[idx](np.arange(n) / n), nu[idx], t_out, cfl=cfg.cfl, stride=n // cfg.n_x)
        return out

    @classmethod
    def sample(cls, cfg: Burgers1DSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws, in order, the initial-condition modes of all trajectories, their ν, then their mean
        offsets. Trajectories are solved by :meth:`solve`, in batches of vectorised FFTs that share a solver grid.

        Returns:
            split → :class:`SplitData` with ``fields["u"]`` float32 ``[traj, n_frames, n_x]``, ``params`` float32
            ``[traj, 1]`` (ν) and ``ids`` int64 ``[traj]``.
        """
        n_total = sum(cfg.counts.values())
        u0 = SineInitialConditions.draw(rng, n_total, n_modes=cfg.n_modes, k_max=cfg.k_max, amp_max=cfg.amp_max)
        nu = draw_per_split(
            cfg.counts, cfg.nu_train, cfg.nu_ood, lambda r, n: rng.choice(np.asarray(r, dtype=np.float64), size=n)
        )
        u0 = u0.with_offset(rng.choice([-1.0, 1.0], size=n_total) * rng.uniform(*cfg.mean_range, size=n_total))
        u = cls.solve(cfg, u0, nu, dtype=np.float32)  # [traj, time, n_x]
        return pack_splits(cfg.counts, {"u": u}, nu[:, None])

    @classmethod
    def solve_from(
        cls,
        cfg: str | Burgers1DSize,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """:func:`solve_burgers` restarted from stored frames (see :meth:`Task.solve_from`; one PDE in every split).

        The stored nodal values are truncated spectrally to ``n_x / coarsen`` nodes (no front-resolving refinement:
        the stored grid, or a coarser one, is the cost being measured), solved there with the CFL number scaled by
        ``step``, and brought back by spectral zero-padding (:func:`~ups.data.solvers._restart.fourier_resample`).
        """
        cfg = cls.size(cfg)
        frames0, params = check_frames(cls.name, cls.spec(cfg), frames0, params, n_steps)
        n_c = check_coarsen(cls.name, (cfg.n_x,), coarsen, even=True)[0]
        step = check_step(cls.name, step)
        u0 = fourier_resample(frames0[:, 0], n_c)  # [B, n_c]
        nu = params[:, 0]

        def advance(u: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return solve_burgers(u, nu[idx], [cfg.dt], cfl=cfg.cfl * step)[:, 0]

        u = march(u0, n_steps, advance)  # [B, n_steps, n_c]
        return fourier_resample(u, cfg.n_x)[:, :, None]  # [B, n_steps, 1, n_x]
