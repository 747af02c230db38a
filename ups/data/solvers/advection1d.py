"""Linear advection in 1D: u_t + β u_x = 0 on the periodic unit interval x ∈ [0, 1).

Solver: the exact solution u(x, t) = u0(x − βt), evaluated on the grid without time stepping. The shift s = βt N
(in cells) is split into its nearest whole number m and a remainder f ∈ [−½, ½]: the whole part is ``np.roll`` (exact,
no arithmetic at all), the remainder a Fourier phase shift û_k ← û_k e^{−2πi k f / N} of the trigonometric interpolant
(the band-limited "exact interpolation" of Fornberg, *A Practical Guide to Pseudospectral Methods*, 1996, §3). For a
band-limited u0 (no energy at or above the Nyquist mode) this is the exact solution to round-off at every time, with
no CFL limit and no accumulated error. The phase factors have modulus one and leave the mean mode alone, so mass
∫u dx and the L2 norm are conserved to round-off.

Data: PDEBench-style initial conditions (Takamoto et al., NeurIPS 2022 Datasets & Benchmarks), a sum of a few sine
modes with integer wavenumbers plus a random offset; β varies per trajectory (parameter ``beta``). See
docs/data_format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from ups.data.solvers import TASKS
from ups.data.solvers._restart import check_coarsen, check_frames, check_step, fourier_resample
from ups.data.solvers.base import Task, draw_per_split, pack_splits
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData

_BATCH = 256  # trajectories shifted together; [256, 201, 1024] float64 frames is ~0.4 GB


def solve_advection(u0: np.ndarray, beta: float | np.ndarray, t_out: np.ndarray) -> np.ndarray:
    """Exact solution u(x, t) = u0(x − βt) of periodic linear advection at the times ``t_out``.

    Args:
        u0: ``[B, N]`` (or ``[N]``) initial values at the nodes x_j = j / N of [0, 1), read as samples of their
            trigonometric interpolant (a Nyquist mode, if any, is taken with the real, cosine convention).
        beta: advection speed, a scalar or one value per trajectory ``[B]``.
        t_out: ``[T]`` output times (any order and sign).

    Returns:
        float64 ``[B, T, N]`` (``[T, N]`` for 1D ``u0``). A shift by a whole number of cells is ``np.roll`` of ``u0``
        bit for bit.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u0 = np.atleast_2d(u0)
    n_traj, n = u0.shape
    beta_b = np.broadcast_to(np.asarray(beta, dtype=np.float64), (n_traj,))
    t_out = np.asarray(t_out, dtype=np.float64)
    if t_out.ndim != 1:
        raise ValueError("t_out must be a 1D array of times")

    shift = beta_b[:, None] * t_out[None, :] * n  # [B, T] shift in cells
    whole = np.rint(shift)
    frac = shift - whole  # [B, T] in [-1/2, 1/2]
    # Roll by the whole part with one gather: out[b, t, j] = u0[b, (j - m) mod N].
    idx = (np.arange(n)[None, None, :] - whole[:, :, None].astype(np.int64)) % n  # [B, T, N]
    out = np.take_along_axis(u0[:, None, :], idx, axis=-1)  # [B, T, N]
    moving = frac != 0.0
    if np.any(moving):
        k = sfft.rfftfreq(n, d=1.0 / n)  # [K] integer wavenumbers 0..N/2
        b_idx, t_idx = np.nonzero(moving)
        rolled = out[b_idx, t_idx]  # [M, N], only the frames with a fractional remainder
        phase = np.exp(-2j * np.pi * k[None, :] * (frac[b_idx, t_idx][:, None] / n))  # [M, K]
        out[b_idx, t_idx] = sfft.irfft(sfft.rfft(rolled, axis=-1) * phase, n=n, axis=-1)
    return out[0] if squeeze else out


def sine_series(x: np.ndarray, amp: np.ndarray, k: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """u(x) = Σ_i A_i sin(2π k_i x + φ_i) for each row of ``amp``, ``k``, ``phase`` (``[B, modes]``) → ``[B, len(x)]``.

    Also the analytic solution of advection: ``sine_series(x - beta * t, ...)``.
    """
    arg = 2.0 * np.pi * k[:, :, None] * x[None, None, :] + phase[:, :, None]  # [b, mode, x]
    return np.einsum("bm,bmx->bx", amp, np.sin(arg))


@dataclass(frozen=True)
class Advection1DSize:
    """One size of the advection1d dataset.

    Attributes:
        n_x: grid points (nodes j / n_x); the solution is exact, so there is no internal oversampling.
        n_frames: stored frames, t = 0, dt, ..., (n_frames - 1) dt (frame 0 is the initial condition).
        dt: time between stored frames.
        counts: trajectories per split.
        beta_train: train/val/test draw β uniformly from this interval.
        beta_ood: ``ood_regime`` draws β uniformly from this interval, above ``beta_train`` (faster transport: more
            periods crossed per frame than any training trajectory).
        n_modes, k_max, amp_max: u0 = Σ_{i ≤ n_modes} A_i sin(2π k_i x + φ_i), k_i ~ U{1..k_max}, A_i ~ U(0, amp_max),
            φ_i ~ U(0, 2π). k_max ≪ n_x / 2 keeps u0 band-limited, so the stored data is exact.
        mean_range: each u0 gets an offset ±U(mean_range) (random sign), so the conserved mass ∫u is non-zero and the
            conservation gap measures a real quantity.
    """

    n_x: int
    n_frames: int
    dt: float
    counts: dict[str, int] = field(default_factory=dict)
    beta_train: tuple[float, float] = (0.1, 1.0)
    beta_ood: tuple[float, float] = (1.5, 2.0)
    n_modes: int = 2
    k_max: int = 8
    amp_max: float = 0.5
    mean_range: tuple[float, float] = (0.2, 0.6)


@TASKS.register("advection1d")
class Advection1D(Task[Advection1DSize]):
    """The ``advection1d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "advection1d"
    solver = "advection1d/exact-shift"
    sizes: dict[str, Advection1DSize] = {
        # Exact solution, no time stepping: generates in well under a second; t ∈ [0, 2] like PDEBench.
        "small": Advection1DSize(
            n_x=256, n_frames=41, dt=0.05, counts={"train": 48, "val": 8, "test": 16, "ood_regime": 16}
        ),
        # PDEBench 1D advection resolution and horizon (1024 points, 201 frames over t ∈ [0, 2]).
        "full": Advection1DSize(
            n_x=1024, n_frames=201, dt=0.01, counts={"train": 1000, "val": 100, "test": 100, "ood_regime": 100}
        ),
    }

    @classmethod
    def make_spec(cls, cfg: Advection1DSize) -> TaskSpec:
        return TaskSpec(
            task=cls.name,
            fields=("u",),
            grid_shape=(cfg.n_x,),
            domain=(1.0,),
            dt=cfg.dt,
            bc="periodic",
            conserved=(ConservedQuantity("mass", "u"),),
            param_names=("beta",),
            extra={"invariants": ["mass", "l2"]},
        )

    @classmethod
    def sample(cls, cfg: Advection1DSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws, in order, the initial-condition modes of all trajectories, their β and their offsets.

        Returns:
            split → :class:`SplitData` with ``fields["u"]`` float32 ``[traj, n_frames, n_x]``, ``params`` float32
            ``[traj, 1]`` (β) and ``ids`` int64 ``[traj]``.
        """
        n_total = sum(cfg.counts.values())
        x = np.arange(cfg.n_x) / cfg.n_x
        k = rng.integers(1, cfg.k_max + 1, size=(n_total, cfg.n_modes))
        amp = rng.uniform(0.0, cfg.amp_max, size=(n_total, cfg.n_modes))
        phase = rng.uniform(0.0, 2.0 * np.pi, size=(n_total, cfg.n_modes))
        beta = draw_per_split(cfg.counts, cfg.beta_train, cfg.beta_ood, lambda r, n: rng.uniform(*r, size=n))
        offset = rng.choice([-1.0, 1.0], size=n_total) * rng.uniform(*cfg.mean_range, size=n_total)
        u0 = sine_series(x, amp, k, phase) + offset[:, None]  # [traj, n_x]

        t_out = np.arange(cfg.n_frames) * cfg.dt
        u = np.empty((n_total, cfg.n_frames, cfg.n_x), dtype=np.float32)  # [traj, time, n_x]
        for lo in range(0, n_total, _BATCH):
            sl = slice(lo, lo + _BATCH)
            u[sl] = solve_advection(u0[sl], beta[sl], t_out)
        return pack_splits(cfg.counts, {"u": u}, beta[:, None])

    @classmethod
    def solve_from(
        cls,
        cfg: str | Advection1DSize,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """:func:`solve_advection` restarted from stored frames (see :meth:`Task.solve_from`).

        Spectral truncation to ``n_x / coarsen`` nodes, the exact shift there, spectral zero-padding back: the only
        error is the truncation's. The solver takes no time steps, so ``step`` (validated) changes nothing.
        """
        cfg = cls.size(cfg)
        frames0, params = check_frames(cls.name, cls.spec(cfg), frames0, params, n_steps)
        n_c = check_coarsen(cls.name, (cfg.n_x,), coarsen, even=True)[0]
        check_step(cls.name, step)
        u0 = fourier_resample(frames0[:, 0], n_c)  # [B, n_c]
        beta = params[:, 0]
        u = solve_advection(u0, beta, np.arange(1, n_steps + 1) * cfg.dt)  # [B, n_steps, n_c]
        return fourier_resample(u, cfg.n_x)[:, :, None]  # [B, n_steps, 1, n_x]
