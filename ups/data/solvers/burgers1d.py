"""Viscous Burgers' equation in 1D: u_t + (u²/2)_x = ν u_xx on the periodic unit interval x ∈ [0, 1).

Solver: Fourier pseudo-spectral in space with the 2/3 dealiasing rule (Orszag 1971), fourth-order Runge–Kutta in time
on the integrating-factor form v = exp(ν κ² t) û (Trefethen, *Spectral Methods in MATLAB*, 2000, program 27), so the
viscous term is integrated exactly and only the advective term limits the step. The mean mode (κ = 0) is untouched
by both terms, so mass ∫u dx is conserved to round-off.

Data: PDEBench-style initial conditions (Takamoto et al., NeurIPS 2022 Datasets & Benchmarks), a sum of a few sine
modes with integer wavenumbers (so they are periodic on [0, 1)), random amplitudes and phases; ν varies per
trajectory and is stored as the parameter ``nu``. See docs/data_format.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.fft as sfft

from ups.data.solvers import TASKS
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData, lookup_size

_BATCH = 256  # trajectories solved together; one batch of [256, 201, 1024] float64 frames is ~0.4 GB


def solve_burgers(u0: np.ndarray, nu: float | np.ndarray, t_out: np.ndarray, *, cfl: float = 0.5) -> np.ndarray:
    """Integrate viscous Burgers from ``u0`` at t = 0 and return the solution at the times ``t_out``.

    Args:
        u0: ``[B, N]`` (or ``[N]``) initial values at the nodes x_j = j / N of [0, 1).
        nu: viscosity, a scalar or one value per trajectory ``[B]``.
        t_out: ``[T]`` non-decreasing output times ≥ 0 (t = 0 returns ``u0`` after dealiasing).
        cfl: advective Courant number h · max|u| / Δx of the internal steps. The viscous part is exact, so this is
            the only step limit; by the maximum principle max|u| never grows, so the first frame's bound holds.

    Returns:
        float64 ``[B, T, N]`` (``[T, N]`` for 1D ``u0``).
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u0 = np.atleast_2d(u0)
    n_traj, n = u0.shape
    nu_b = np.broadcast_to(np.asarray(nu, dtype=np.float64), (n_traj,))
    t_out = np.asarray(t_out, dtype=np.float64)
    if t_out.ndim != 1 or (t_out.size and (t_out[0] < 0 or np.any(np.diff(t_out) < 0))):
        raise ValueError("t_out must be a 1D non-decreasing array of times >= 0")

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
    out = np.empty((n_traj, t_out.size, n), dtype=np.float64)
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
        out[:, i] = sfft.irfft(u_hat, n=n, axis=-1)
    return out[0] if squeeze else out


def _ifrk4_step(u_hat, e_half, e_full, scale, nonlinear):
    """One integrating-factor RK4 step (Trefethen 2000, p27.m); ``scale`` already carries the step h."""
    a = nonlinear(u_hat, scale)
    b = nonlinear(e_half * (u_hat + 0.5 * a), scale)
    c = nonlinear(e_half * u_hat + 0.5 * b, scale)
    d = nonlinear(e_full * u_hat + e_half * c, scale)
    return e_full * (u_hat + a / 6.0) + e_half * ((b + c) / 3.0) + d / 6.0


def sine_initial_conditions(
    rng: np.random.Generator, n_traj: int, x: np.ndarray, *, n_modes: int, k_max: int, amp_max: float
) -> np.ndarray:
    """PDEBench-style random initial conditions u0(x) = Σ_i A_i sin(2π k_i x + φ_i).

    k_i ~ U{1..k_max} (integers, so u0 is periodic on [0, 1) with zero mean), A_i ~ U(0, amp_max), φ_i ~ U(0, 2π),
    drawn in one call each so the result depends only on ``rng``'s state and ``n_traj``.

    Returns:
        float64 ``[n_traj, len(x)]``.
    """
    k = rng.integers(1, k_max + 1, size=(n_traj, n_modes))
    amp = rng.uniform(0.0, amp_max, size=(n_traj, n_modes))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(n_traj, n_modes))
    arg = 2.0 * np.pi * k[:, :, None] * x[None, None, :] + phase[:, :, None]  # [b, mode, x]
    return np.einsum("bm,bmx->bx", amp, np.sin(arg))


@dataclass(frozen=True)
class Burgers1DSize:
    """One size of the burgers1d dataset.

    Attributes:
        n_x: stored grid points (nodes j / n_x).
        oversample: the solver runs on ``n_x * oversample`` points and stores every ``oversample``-th node, so the
            thinnest fronts (width ~ 4ν / Δu) stay resolved even when the stored grid is coarse.
        n_frames: stored frames, t = 0, dt, ..., (n_frames - 1) dt (frame 0 is the initial condition).
        dt: time between stored frames.
        counts: trajectories per split.
        nu_train: ν values of train/val/test, drawn uniformly per trajectory.
        nu_ood: ν values of ``ood_regime``, outside [min(nu_train), max(nu_train)].
        n_modes, k_max, amp_max: initial-condition distribution (see :func:`sine_initial_conditions`).
        mean_range: each initial condition gets a uniform offset ±U(mean_range) (random sign). Without it every
            field is zero-mean and decays towards u ≡ 0 within the horizon at the larger ν, where nRMSE's
            denominator √mean y² vanishes and the score is meaningless; with it the mass ∫u is non-zero, so the
            conservation gap measures a real quantity instead of round-off.
        cfl: advective Courant number of the internal steps.
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


@TASKS.register("burgers1d")
class Burgers1D:
    """The ``burgers1d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    solver = "burgers1d/pseudospectral-ifrk4"
    sizes: dict[str, Burgers1DSize] = {
        # Generates in about a second on one core; t ∈ [0, 2] like PDEBench.
        "small": Burgers1DSize(
            n_x=256, oversample=2, n_frames=41, dt=0.05, counts={"train": 48, "val": 8, "test": 16, "ood_regime": 16}
        ),
        # PDEBench 1D Burgers resolution and horizon (1024 points, 201 frames over t ∈ [0, 2]).
        "full": Burgers1DSize(
            n_x=1024,
            oversample=1,
            n_frames=201,
            dt=0.01,
            counts={"train": 1000, "val": 100, "test": 100, "ood_regime": 100},
        ),
    }

    @classmethod
    def size(cls, size: str | Burgers1DSize) -> Burgers1DSize:
        return lookup_size("burgers1d", cls.sizes, size)

    @classmethod
    def spec(cls, size: str | Burgers1DSize) -> TaskSpec:
        cfg = cls.size(size)
        return TaskSpec(
            task="burgers1d",
            fields=("u",),
            grid_shape=(cfg.n_x,),
            domain=(1.0,),
            dt=cfg.dt,
            bc="periodic",
            conserved=(ConservedQuantity("mass", "u"),),
            param_names=("nu",),
        )

    @classmethod
    def solver_config(cls, size: str | Burgers1DSize) -> dict:
        cfg = asdict(cls.size(size))
        cfg["n_internal"] = cfg["n_x"] * cfg["oversample"]
        return cfg

    @classmethod
    def generate(cls, size: str | Burgers1DSize, seed: int) -> dict[str, SplitData]:
        """Generate every split of the dataset, frozen by ``seed``.

        One ``np.random.default_rng(seed)`` stream draws, in order, the initial conditions of all trajectories and
        then their ν; trajectory ``i`` of that stream gets global id ``i`` and splits take consecutive id blocks
        (train, val, test, ood_regime), so they are disjoint by construction. Trajectories are solved in batches of
        vectorised FFTs.

        Returns:
            split → :class:`SplitData` with ``fields["u"]`` float32 ``[traj, n_frames, n_x]``, ``params`` float32
            ``[traj, 1]`` (ν) and ``ids`` int64 ``[traj]``.
        """
        cfg = cls.size(size)
        names = list(cfg.counts)
        counts = [cfg.counts[s] for s in names]
        n_total = sum(counts)
        n_int = cfg.n_x * cfg.oversample
        x_int = np.arange(n_int) / n_int

        rng = np.random.default_rng(seed)
        u0 = sine_initial_conditions(rng, n_total, x_int, n_modes=cfg.n_modes, k_max=cfg.k_max, amp_max=cfg.amp_max)
        nu = np.empty(n_total)
        start = 0
        for name, count in zip(names, counts, strict=True):
            choices = cfg.nu_ood if name.startswith("ood_") else cfg.nu_train
            nu[start : start + count] = rng.choice(np.asarray(choices, dtype=np.float64), size=count)
            start += count
        offset = rng.choice([-1.0, 1.0], size=n_total) * rng.uniform(*cfg.mean_range, size=n_total)
        u0 = u0 + offset[:, None]

        t_out = np.arange(cfg.n_frames) * cfg.dt
        u = np.empty((n_total, cfg.n_frames, cfg.n_x), dtype=np.float32)  # [traj, time, n_x]
        for lo in range(0, n_total, _BATCH):  # batches bound the float64 working memory of the full size
            sl = slice(lo, lo + _BATCH)
            u[sl] = solve_burgers(u0[sl], nu[sl], t_out, cfl=cfg.cfl)[:, :, :: cfg.oversample]

        splits: dict[str, SplitData] = {}
        start = 0
        for name, count in zip(names, counts, strict=True):
            sl = slice(start, start + count)
            splits[name] = SplitData(
                fields={"u": u[sl]},
                params=nu[sl, None].astype(np.float32),
                ids=np.arange(start, start + count, dtype=np.int64),
            )
            start += count
        return splits
