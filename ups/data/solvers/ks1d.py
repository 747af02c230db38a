"""Kuramoto–Sivashinsky in 1D: u_t + u u_x + u_xx + ν u_xxxx = 0 on the periodic interval x ∈ [0, L).

Solver: Fourier pseudo-spectral in space with the 2/3 dealiasing rule (Orszag 1971); exponential time differencing
RK4 (ETDRK4, Cox & Matthews, J. Comput. Phys. 176, 2002) with the ϕ-function coefficients computed by the
contour-integral mean of Kassam & Trefethen (SIAM J. Sci. Comput. 26, 2005), which avoids the cancellation of the
closed forms at small hL. The stiff linear part L = κ² − νκ⁴ is integrated exactly, so the step is set by accuracy
alone. The mean mode has L = 0 and a zero nonlinear term, so mass ∫u dx is conserved to round-off.

Data: random smooth initial conditions are integrated through a burn-in transient that is discarded, so every stored
frame is on the chaotic attractor; the task is a rollout-horizon task (errors grow like e^{λt}, λ ≈ 0.1 per unit
time). ν, the coefficient of the fourth derivative, varies per trajectory (parameter ``nu``) as in the
parameter-dependent KS data of Lippe et al., *PDE-Refiner* (NeurIPS 2023); rescaling x shows that ν acts as a
domain length: the equation with ν on [0, L) is the standard one (ν = 1) on [0, L/√ν). See docs/data_format.md.
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

_BATCH = 64  # trajectories solved together; bounds the [B, K, M] complex contour temporaries of the full size


def etdrk4_coefficients(lin: np.ndarray, h: float, n_contour: int = 32) -> tuple[np.ndarray, ...]:
    """ETDRK4 coefficients for the diagonal linear operator ``lin`` and step ``h`` (Kassam & Trefethen 2005, eq. 2.5).

    Each ϕ-function of z = hL is the mean of its values on a circle of radius 1 around z (Cauchy's integral formula
    by the trapezoid rule); for real L only the upper half circle is needed, taking the real part.

    Args:
        lin: real eigenvalues L of the linear operator, any shape.

    Returns:
        ``(e, e2, q, f1, f2, f3)``, each shaped like ``lin``: e^{hL}, e^{hL/2}, and the weights Q, f1, f2, f3 of
        Kassam & Trefethen's ``kursiv.m``.
    """
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)  # [M] upper half of the unit circle
    z = h * lin[..., None] + r  # [..., M]
    ez = np.exp(z)
    z3 = z**3
    q = h * np.real(np.mean((np.exp(z / 2) - 1.0) / z, axis=-1))
    f1 = h * np.real(np.mean((-4.0 - z + ez * (4.0 - 3.0 * z + z**2)) / z3, axis=-1))
    f2 = h * np.real(np.mean((2.0 + z + ez * (z - 2.0)) / z3, axis=-1))
    f3 = h * np.real(np.mean((-4.0 - 3.0 * z - z**2 + ez * (4.0 - z)) / z3, axis=-1))
    return np.exp(h * lin), np.exp(h * lin / 2), q, f1, f2, f3


def solve_ks(u0: np.ndarray, nu: float | np.ndarray, t_out: np.ndarray, *, length: float, h: float) -> np.ndarray:
    """Integrate Kuramoto–Sivashinsky from ``u0`` at t = 0 and return the solution at the times ``t_out``.

    Args:
        u0: ``[B, N]`` (or ``[N]``) initial values at the nodes x_j = j L / N of [0, L).
        nu: coefficient of u_xxxx, a scalar or one value per trajectory ``[B]``.
        t_out: ``[T]`` non-decreasing output times ≥ 0, each gap a whole number of steps ``h`` (t = 0 returns ``u0``
            after dealiasing).
        length: domain length L.
        h: the fixed ETDRK4 step.

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
    gaps = np.diff(t_out, prepend=0.0)
    n_steps = np.rint(gaps / h).astype(np.int64)
    if np.any(np.abs(n_steps * h - gaps) > 1e-9 * np.maximum(1.0, gaps)):
        raise ValueError(f"every gap of t_out must be a whole number of steps h = {h}")

    k = sfft.rfftfreq(n, d=1.0 / n)  # [K] integer wavenumbers 0..N/2
    kappa = 2.0 * np.pi * k / length
    keep = k < n / 3.0  # 2/3 rule: u² of kept modes never aliases back onto kept modes
    g = np.where(keep, -0.5j * kappa, 0.0)  # [K]: -(u²/2)_x = g F[u²]
    lin = kappa[None, :] ** 2 - nu_b[:, None] * kappa[None, :] ** 4  # [B, K]: -u_xx - ν u_xxxx
    e, e2, q, f1, f2, f3 = etdrk4_coefficients(lin, h)

    def nonlinear(v_hat: np.ndarray) -> np.ndarray:
        u = sfft.irfft(v_hat, n=n, axis=-1)
        return g * sfft.rfft(u * u, axis=-1)

    v = sfft.rfft(u0, axis=-1) * keep  # [B, K]
    out = np.empty((n_traj, t_out.size, n), dtype=np.float64)
    for i, steps in enumerate(n_steps):
        for _ in range(steps):
            # Kassam & Trefethen 2005, eq. (2.5): stages a, b, c and the update.
            nv = nonlinear(v)
            a = e2 * v + q * nv
            na = nonlinear(a)
            b = e2 * v + q * na
            nb = nonlinear(b)
            c = e2 * a + q * (2.0 * nb - nv)
            nc = nonlinear(c)
            v = e * v + nv * f1 + 2.0 * (na + nb) * f2 + nc * f3
        out[:, i] = sfft.irfft(v, n=n, axis=-1)
    return out[0] if squeeze else out


def random_smooth_field(rng: np.random.Generator, n_traj: int, x: np.ndarray, length: float, k_max: int) -> np.ndarray:
    """Zero-mean random u0(x) = Σ_{k=1}^{k_max} (a_k cos 2πkx/L + b_k sin 2πkx/L) / k, a_k, b_k ~ N(0, 1).

    Returns:
        float64 ``[n_traj, len(x)]``.
    """
    ab = rng.normal(size=(n_traj, 2, k_max)) / np.arange(1, k_max + 1)  # [b, cos|sin, k]
    arg = 2.0 * np.pi * np.arange(1, k_max + 1)[:, None] * x[None, :] / length  # [k, x]
    return ab[:, 0] @ np.cos(arg) + ab[:, 1] @ np.sin(arg)


@dataclass(frozen=True)
class KS1DSize:
    """One size of the ks1d dataset.

    Attributes:
        n_x: grid points (nodes j L / n_x); the solver runs on this grid.
        length: domain length L.
        n_frames: stored frames, t = 0, dt, ..., (n_frames - 1) dt, counted from the end of the burn-in.
        dt: time between stored frames.
        steps_per_frame: ETDRK4 steps per stored frame (step h = dt / steps_per_frame).
        burn_in: discarded transient before frame 0, in time units.
        h_burn_in: ETDRK4 step of the burn-in (a whole number of steps must fit ``burn_in``); it only has to reach
            the attractor, not follow one trajectory accurately, so it is 4x coarser than the stored steps.
        counts: trajectories per split.
        nu_train: train/val/test draw ν uniformly from this interval (effective lengths L/√ν).
        nu_ood: ``ood_regime`` draws ν uniformly from this interval, below ``nu_train``: a larger effective domain,
            more unstable modes and a larger Lyapunov exponent than any training trajectory.
        ic_k_max: number of Fourier modes of the random initial condition (see :func:`random_smooth_field`).
    """

    n_x: int
    length: float
    n_frames: int
    dt: float
    steps_per_frame: int
    burn_in: float
    h_burn_in: float = 0.1
    counts: dict[str, int] = field(default_factory=dict)
    nu_train: tuple[float, float] = (0.5, 1.5)
    nu_ood: tuple[float, float] = (0.35, 0.45)
    ic_k_max: int = 8

    @property
    def h(self) -> float:
        return self.dt / self.steps_per_frame


@TASKS.register("ks1d")
class KS1D(Task[KS1DSize]):
    """The ``ks1d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "ks1d"
    solver = "ks1d/pseudospectral-etdrk4"
    sizes: dict[str, KS1DSize] = {
        # L = 64 on 256 points as in PDE-Refiner; 20 time units stored (about two Lyapunov times at ν = 1).
        "small": KS1DSize(
            n_x=256,
            length=64.0,
            n_frames=41,
            dt=0.5,
            steps_per_frame=20,
            burn_in=100.0,
            counts={"train": 32, "val": 8, "test": 8, "ood_regime": 8},
        ),
        "full": KS1DSize(
            n_x=1024,
            length=64.0,
            n_frames=201,
            dt=0.2,
            steps_per_frame=8,
            burn_in=100.0,
            counts={"train": 1000, "val": 100, "test": 100, "ood_regime": 100},
        ),
    }

    @classmethod
    def make_spec(cls, cfg: KS1DSize) -> TaskSpec:
        return TaskSpec(
            task=cls.name,
            fields=("u",),
            grid_shape=(cfg.n_x,),
            domain=(cfg.length,),
            dt=cfg.dt,
            bc="periodic",
            conserved=(ConservedQuantity("mass", "u"),),
            param_names=("nu",),
            extra={"chaotic": True},
        )

    @classmethod
    def derived_config(cls, cfg: KS1DSize) -> dict:
        return {"h": cfg.h}

    @classmethod
    def sample(cls, cfg: KS1DSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws, in order, the initial conditions of all trajectories and then their ν. Each trajectory is
        integrated through ``burn_in`` and the frames after it are stored.

        Returns:
            split → :class:`SplitData` with ``fields["u"]`` float32 ``[traj, n_frames, n_x]``, ``params`` float32
            ``[traj, 1]`` (ν) and ``ids`` int64 ``[traj]``.
        """
        n_total = sum(cfg.counts.values())
        x = np.arange(cfg.n_x) * cfg.length / cfg.n_x
        u0 = random_smooth_field(rng, n_total, x, cfg.length, cfg.ic_k_max)
        nu = draw_per_split(cfg.counts, cfg.nu_train, cfg.nu_ood, lambda r, n: rng.uniform(*r, size=n))

        t_out = np.arange(cfg.n_frames) * cfg.dt
        u = np.empty((n_total, cfg.n_frames, cfg.n_x), dtype=np.float32)  # [traj, time, n_x]
        for lo in range(0, n_total, _BATCH):
            sl = slice(lo, lo + _BATCH)
            on_attractor = solve_ks(u0[sl], nu[sl], [cfg.burn_in], length=cfg.length, h=cfg.h_burn_in)[:, 0]
            u[sl] = solve_ks(on_attractor, nu[sl], t_out, length=cfg.length, h=cfg.h)
        return pack_splits(cfg.counts, {"u": u}, nu[:, None])

    @classmethod
    def solve_from(
        cls,
        cfg: str | KS1DSize,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """:func:`solve_ks` restarted from stored frames (see :meth:`Task.solve_from`; every split is the same PDE).

        Spectral truncation to ``n_x / coarsen`` nodes, ETDRK4 with ``round(steps_per_frame / step)`` (at least 1)
        fixed steps per stored frame (a whole number, as the solver needs), spectral zero-padding back. A fixed step
        count cannot stall; an unstable rung returns non-finite values.
        """
        cfg = cls.size(cfg)
        frames0, params = check_frames(cls.name, cls.spec(cfg), frames0, params, n_steps)
        n_c = check_coarsen(cls.name, (cfg.n_x,), coarsen, even=True)[0]
        step = check_step(cls.name, step)
        h = cfg.dt / max(1, round(cfg.steps_per_frame / step))
        u0 = fourier_resample(frames0[:, 0], n_c)  # [B, n_c]
        nu = params[:, 0]
        t_out = np.arange(1, n_steps + 1) * cfg.dt
        out = np.empty((len(u0), n_steps, n_c))
        with np.errstate(all="ignore"):
            for lo in range(0, len(u0), _BATCH):
                sl = slice(lo, lo + _BATCH)
                out[sl] = solve_ks(u0[sl], nu[sl], t_out, length=cfg.length, h=h)
        return fourier_resample(out, cfg.n_x)[:, :, None]  # [B, n_steps, 1, n_x]
