"""Incompressible Navier–Stokes in 2D, vorticity form, on the periodic unit square (x, y) ∈ [0, 1)².

    ω_t + u ω_x + v ω_y = ν Δω + f,   Δψ = −ω,   u = ψ_y,   v = −ψ_x,

with the forcing of Li et al., *Fourier Neural Operator* (ICLR 2021), f = 0.1 (sin 2π(x + y) + cos 2π(x + y)).

Solver: Fourier pseudo-spectral in space with the 2/3 dealiasing rule (Orszag 1971) on the advective product;
fourth-order Runge–Kutta on the integrating-factor form e^{ν|κ|²t} ω̂ (Canuto, Hussaini, Quarteroni & Zang, *Spectral
Methods*, 2006, §4.4; Trefethen, *Spectral Methods in MATLAB*, 2000, p27), so viscous decay is exact and only the
advective Courant number limits the step. The velocity comes from the streamfunction in Fourier space,
û = iκ_y ω̂/|κ|², v̂ = −iκ_x ω̂/|κ|², so it is divergence-free and its curl is ω to round-off on the grid.

Data: initial vorticity from the Gaussian random field of the FNO data, ω0 ~ N(0, C) with C^{1/2} having Fourier
symbol √2 τ^{α−1} (4π²|k|² + τ²)^{−α/2}, α = 2.5, τ = 7, zero mean; ν varies per trajectory (parameter ``nu``).
Fields are stored on the grid with axis 0 = x, axis 1 = y (``indexing="ij"``). See docs/data_format.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from ups.data.solvers import TASKS
from ups.data.solvers._restart import check_coarsen, check_frames, check_step, in_batches, march
from ups.data.solvers.base import Task, draw_per_split, pack_splits
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData

# Grid points solved together (4 trajectories of 64², measured fastest per trajectory: small batches keep the FFT
# working set in cache). A batch shares its CFL step, set by its fastest trajectory.
_BATCH_POINTS = 4 * 64**2


def _batch(n: int) -> int:
    """Trajectories per batch on an n × n grid."""
    return max(1, _BATCH_POINTS // n**2)


def wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Angular wavenumbers (κ_x ``[n, 1]``, κ_y ``[1, n//2+1]``) of ``rfft2`` on [0, 1)² with axes (x, y)."""
    kx = 2.0 * np.pi * sfft.fftfreq(n, d=1.0 / n)[:, None]
    ky = 2.0 * np.pi * sfft.rfftfreq(n, d=1.0 / n)[None, :]
    return kx, ky


def dealias_mask(n: int) -> np.ndarray:
    """2/3 rule on the square: keep modes with |k_x|, |k_y| < n/3; ``[n, n//2+1]`` bool."""
    k = np.abs(sfft.fftfreq(n, d=1.0 / n))
    return (k[:, None] < n / 3.0) & (sfft.rfftfreq(n, d=1.0 / n)[None, :] < n / 3.0)


def velocity_hat(w_hat: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(û, v̂) from ω̂ through the streamfunction ψ̂ = ω̂/|κ|² (mean mode 0): u = ψ_y, v = −ψ_x.

    The first derivatives drop the Nyquist modes (whose sign is ambiguous on an even grid), so the result is
    divergence-free to round-off for any input, band-limited or not.
    """
    n = kx.shape[0]
    k2 = kx**2 + ky**2
    psi_hat = w_hat / np.where(k2 == 0.0, 1.0, k2)
    psi_hat[..., 0, 0] = 0.0
    kx_d = np.where(np.abs(kx) >= np.pi * n, 0.0, kx)
    ky_d = np.where(np.abs(ky) >= np.pi * n, 0.0, ky)
    return 1j * ky_d * psi_hat, -1j * kx_d * psi_hat


def velocity_from_vorticity(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Velocity (u, v) of the periodic vorticity ``w`` ``[..., n, n]`` on [0, 1)², in float64."""
    n = w.shape[-1]
    kx, ky = wavenumbers(n)
    u_hat, v_hat = velocity_hat(sfft.rfft2(np.asarray(w, dtype=np.float64)), kx, ky)
    return sfft.irfft2(u_hat, s=(n, n)), sfft.irfft2(v_hat, s=(n, n))


def fno_forcing(n: int) -> np.ndarray:
    """f(x, y) = 0.1 (sin 2π(x + y) + cos 2π(x + y)) on the nodes (i/n, j/n), ``[n, n]``."""
    x = np.arange(n) / n
    s = 2.0 * np.pi * (x[:, None] + x[None, :])
    return 0.1 * (np.sin(s) + np.cos(s))


def solve_ns2d(
    w0: np.ndarray,
    nu: float | np.ndarray,
    t_out: np.ndarray,
    *,
    forcing: np.ndarray | None = None,
    cfl: float = 0.5,
    h_max: float = 0.1,
    n_out: int | None = None,
) -> np.ndarray:
    """Integrate 2D vorticity-form Navier–Stokes from ``w0`` at t = 0; return ω at the times ``t_out``.

    Args:
        w0: ``[B, n, n]`` (or ``[n, n]``) initial vorticity on the nodes (i/n, j/n) of [0, 1)²; its mean is removed
            (the vorticity of a periodic velocity has zero mean).
        nu: viscosity, a scalar or one value per trajectory ``[B]``.
        t_out: ``[T]`` non-decreasing output times ≥ 0 (t = 0 returns ``w0`` after dealiasing).
        forcing: ``[n, n]`` time-independent vorticity forcing f, or None for decaying flow.
        cfl: advective Courant number h · max(|u| + |v|) · n of the internal steps, re-chosen at every output time
            from the current velocity (the forced flow's speed is not bounded by its initial value).
        h_max: largest internal step, which bounds the RK4 error of the forcing and of slow flows whose Courant
            number alone would allow a long step.
        n_out: return each frame spectrally truncated to an ``n_out`` × ``n_out`` grid (see :func:`truncate`), so a
            fine solver grid costs no more output memory than the stored one; None for the solver grid.

    Returns:
        float64 ``[B, T, n_out, n_out]`` (``[T, n_out, n_out]`` for 2D ``w0``), ``n_out = n`` by default.
    """
    w0 = np.asarray(w0, dtype=np.float64)
    squeeze = w0.ndim == 2
    w0 = w0[None] if squeeze else w0
    n_traj, n = w0.shape[0], w0.shape[-1]
    n_out = n if n_out is None else n_out
    nu_b = np.broadcast_to(np.asarray(nu, dtype=np.float64), (n_traj,))
    t_out = np.asarray(t_out, dtype=np.float64)
    if t_out.ndim != 1 or (t_out.size and (t_out[0] < 0 or np.any(np.diff(t_out) < 0))):
        raise ValueError("t_out must be a 1D non-decreasing array of times >= 0")

    kx, ky = wavenumbers(n)
    keep = dealias_mask(n)
    keep[0, 0] = False  # the mean vorticity stays exactly 0
    lin = -nu_b[:, None, None] * (kx**2 + ky**2)[None]  # [B, n, n//2+1] viscous eigenvalues
    f_hat = np.zeros((n, n // 2 + 1)) if forcing is None else sfft.rfft2(forcing) * keep

    # Fourier multipliers of (u, v, ω_x, ω_y) acting on ω̂, stacked so that one inverse FFT call gives all four:
    # [4, 1, n, n//2+1]. The velocity ones are velocity_hat applied to ω̂ = 1.
    u_mult, v_mult = velocity_hat(np.ones(f_hat.shape, dtype=complex), kx, ky)
    multipliers = np.stack([u_mult, v_mult, *np.broadcast_arrays(1j * kx, 1j * ky)])[:, None]

    def rhs(w_hat: np.ndarray, h: float) -> np.ndarray:
        # h (−F[u ω_x + v ω_y] + f̂); the inputs are band-limited, so masking the product removes every aliased mode.
        u, v, w_x, w_y = sfft.irfft2(multipliers * w_hat, s=(n, n))  # each [B, n, n]
        return h * (f_hat - keep * sfft.rfft2(u * w_x + v * w_y))

    w_hat = sfft.rfft2(w0) * keep  # [B, n, n//2+1]
    out = np.empty((n_traj, t_out.size, n_out, n_out), dtype=np.float64)
    t_now = 0.0
    for i, t_target in enumerate(t_out):
        span = t_target - t_now
        if span > 0:
            u, v = sfft.irfft2(multipliers[:2] * w_hat, s=(n, n))
            speed = float(np.max(np.abs(u) + np.abs(v)))
            n_sub = max(1, math.ceil(span * speed * n / cfl), math.ceil(span / h_max - 1e-9))
            h = span / n_sub
            e_full = np.exp(lin * h)  # [B, n, n//2+1] exact viscous decay over h
            e_half = np.exp(lin * (0.5 * h))
            for _ in range(n_sub):
                # Integrating-factor RK4 (Trefethen 2000, p27.m) with N(ω̂) = −F[u·∇ω] + f̂.
                a = rhs(w_hat, h)
                b = rhs(e_half * (w_hat + 0.5 * a), h)
                c = rhs(e_half * w_hat + 0.5 * b, h)
                d = rhs(e_full * w_hat + e_half * c, h)
                w_hat = e_full * (w_hat + a / 6.0) + e_half * ((b + c) / 3.0) + d / 6.0
            t_now = float(t_target)
        out[:, i] = sfft.irfft2(w_hat if n_out == n else _resize_hat(w_hat, n, n_out), s=(n_out, n_out))
    return out[0] if squeeze else out


def _resize_hat(w_hat: np.ndarray, m: int, n: int) -> np.ndarray:
    """``rfft2`` coefficients ``[..., m, m//2+1]`` of an m × m grid → those of the same modes on an n × n grid:
    |k_x|, |k_y| < min(m, n)/2 kept (so the Nyquist row and column are 0), the rest 0, scaled for ``irfft2``."""
    half = min(m, n) // 2
    out = np.zeros((*w_hat.shape[:-2], n, n // 2 + 1), dtype=complex)
    out[..., :half, :half] = w_hat[..., :half, :half]  # k_x = 0 .. half-1
    out[..., n - half + 1 :, :half] = w_hat[..., m - half + 1 :, :half]  # k_x = -(half-1) .. -1
    return out * (n / m) ** 2


def resample(w: np.ndarray, n: int) -> np.ndarray:
    """``w`` ``[..., m, m]`` on [0, 1)² brought to the n × n grid spectrally: its modes |k_x|, |k_y| < min(m, n)/2,
    zero above. For n < m this is truncation (the stored fields), for n > m zero-padding (trigonometric
    interpolation; ``resample(resample(w, n), m)`` is ``w`` without its Nyquist modes). Returns ``w`` itself when
    n = m."""
    m = w.shape[-1]
    if m == n:
        return w
    return sfft.irfft2(_resize_hat(sfft.rfft2(w), m, n), s=(n, n))


def truncate(w: np.ndarray, n: int) -> np.ndarray:
    """Spectral truncation of ``w`` ``[..., m, m]`` to its modes |k_x|, |k_y| < n/2 on the n × n grid (n ≤ m)."""
    if n > w.shape[-1]:
        raise ValueError(f"truncate: {n} points is more than the {w.shape[-1]} of the input; use resample")
    return resample(w, n)


def gaussian_random_field(
    rng: np.random.Generator, n_traj: int, n: int, *, alpha: float = 2.5, tau: float = 7.0
) -> np.ndarray:
    """Zero-mean Gaussian random fields on [0, 1)², the FNO initial vorticity (Li et al. 2021, ``GaussianRF``).

    Real white noise on the n × n grid, filtered in Fourier space by √2 τ^{α−1} (4π²|k|² + τ²)^{−α/2} (the mean
    mode set to zero): each Fourier mode gets a complex normal coefficient (independent up to the
    Hermitian symmetry of a real field) with that standard deviation.

    Returns:
        float64 ``[n_traj, n, n]``.
    """
    kx, ky = wavenumbers(n)
    sqrt_eig = math.sqrt(2.0) * tau ** (alpha - 1.0) * (kx**2 + ky**2 + tau**2) ** (-alpha / 2.0)
    sqrt_eig[0, 0] = 0.0
    noise = rng.standard_normal((n_traj, n, n))
    # rfft2 of unit white noise has E|ξ̂_k|² = n²; irfft2 divides by n², so the factor n gives unit-variance modes.
    return sfft.irfft2(sfft.rfft2(noise) * sqrt_eig * n, s=(n, n))


@dataclass(frozen=True)
class NS2DSize:
    """One size of the ns2d dataset.

    Attributes:
        n: stored grid points per axis (nodes i / n).
        oversample: the solver runs on ``n * oversample`` points per axis; stored fields are its Fourier modes
            |k_x|, |k_y| < n/2 (spectral truncation, not sub-sampling, so the stored velocity stays exactly
            divergence-free on the stored grid).
        n_frames: stored frames, t = 0, dt, ..., (n_frames - 1) dt (frame 0 is the initial condition).
        dt: time between stored frames.
        counts: trajectories per split.
        nu_train: train/val/test draw log ν uniformly from this interval.
        nu_ood: ``ood_regime`` draws log ν uniformly from this interval, below ``nu_train`` (higher Reynolds
            number: finer filaments than any training trajectory).
        alpha, tau: Gaussian-random-field initial vorticity (see :func:`gaussian_random_field`).
        cfl: advective Courant number of the internal steps.
        h_max: largest internal step.
    """

    n: int
    oversample: int
    n_frames: int
    dt: float
    counts: dict[str, int] = field(default_factory=dict)
    nu_train: tuple[float, float] = (2e-3, 2e-2)
    nu_ood: tuple[float, float] = (1e-3, 1.5e-3)
    alpha: float = 2.5
    tau: float = 7.0
    cfl: float = 0.5
    h_max: float = 0.1


@TASKS.register("ns2d")
class NS2D(Task[NS2DSize]):
    """The ``ns2d`` task: sizes, :class:`TaskSpec` and the seeded dataset generator."""

    name = "ns2d"
    solver = "ns2d/pseudospectral-ifrk4"
    sizes: dict[str, NS2DSize] = {
        # 32² stored, solved on 64², t ∈ [0, 10]; ν ≥ 1e-3, so the stored frames are within float32 round-off of a
        # 128² solve (see docs/data_format.md). Generates in ≈ 3.5 s of one core (0.9 s when solved on 32²).
        "small": NS2DSize(
            n=32,
            oversample=2,
            n_frames=41,
            dt=0.25,
            counts={"train": 32, "val": 8, "test": 8, "ood_regime": 8},
            nu_train=(2e-3, 2e-2),
            nu_ood=(1e-3, 1.5e-3),
        ),
        # FNO-like ν, 128² stored, solved on 256², t ∈ [0, 20]: ~13 GB of float32 fields (w, u, v); ≈ 2–3 h of one
        # core (extrapolated: ≈ 10 s per trajectory at 256², 6× the 128² solve).
        "full": NS2DSize(
            n=128,
            oversample=2,
            n_frames=101,
            dt=0.2,
            counts={"train": 500, "val": 50, "test": 50, "ood_regime": 50},
            nu_train=(2e-4, 2e-3),
            nu_ood=(1e-4, 1.5e-4),
        ),
    }

    @classmethod
    def make_spec(cls, cfg: NS2DSize) -> TaskSpec:
        return TaskSpec(
            task=cls.name,
            fields=("w", "u", "v"),
            grid_shape=(cfg.n, cfg.n),
            domain=(1.0, 1.0),
            dt=cfg.dt,
            bc="periodic",
            # Each integral is identically zero for periodic flow with this mean-free forcing; a prediction that
            # drifts away from zero breaks the constraint, and conservation_gap measures by how much.
            conserved=(
                ConservedQuantity("circulation", "w"),
                ConservedQuantity("momentum_x", "u"),
                ConservedQuantity("momentum_y", "v"),
            ),
            param_names=("nu",),
            velocity=("u", "v"),
            incompressible=True,
        )

    @classmethod
    def derived_config(cls, cfg: NS2DSize) -> dict:
        return {"n_internal": cfg.n * cfg.oversample, "forcing": "0.1*(sin(2*pi*(x+y)) + cos(2*pi*(x+y)))"}

    @classmethod
    def solve(cls, size: str | NS2DSize, w0: np.ndarray, nu: np.ndarray) -> np.ndarray:
        """The stored frames of the trajectories starting from the vorticity ``w0``: solved on the
        ``n · oversample`` grid, truncated to the stored ``n × n`` grid, velocity from the truncated vorticity.

        Args:
            size: the size whose n, oversample, n_frames, dt, cfl and h_max apply.
            w0: ``[B, m, m]`` initial vorticity on any even grid, brought to the solver grid by :func:`resample`.
            nu: ``[B]`` viscosities.

        Returns:
            float64 ``[B, n_frames, 3, n, n]``, fields (w, u, v).
        """
        cfg = cls.size(size)
        n_int = cfg.n * cfg.oversample
        t_out = np.arange(cfg.n_frames) * cfg.dt
        w = solve_ns2d(
            resample(np.asarray(w0, dtype=np.float64), n_int),
            nu,
            t_out,
            forcing=fno_forcing(n_int),
            cfl=cfg.cfl,
            h_max=cfg.h_max,
            n_out=cfg.n,
        )
        u, v = velocity_from_vorticity(w)
        return np.stack([w, u, v], axis=2)

    @classmethod
    def sample(cls, cfg: NS2DSize, rng: np.random.Generator) -> dict[str, SplitData]:
        """Generate every split from the stream ``rng`` (see :class:`~ups.data.solvers.base.Task`).

        The stream draws, in order, the ν of all trajectories and then their initial vorticity, batch by batch in id
        order. The initial field is drawn on the stored grid (its modes |k| < n/2; the spectrum there is already
        ~1e-3 of its peak) and interpolated spectrally onto the solver grid, so a trajectory's initial condition does
        not depend on ``oversample``: refining the solver refines the same flow. Frames come from :meth:`solve`.

        Returns:
            split → :class:`SplitData` with ``fields["w"]``, ``["u"]``, ``["v"]`` float32 ``[traj, n_frames, n, n]``,
            ``params`` float32 ``[traj, 1]`` (ν) and ``ids`` int64 ``[traj]``.
        """
        n_total = sum(cfg.counts.values())
        nu = draw_per_split(
            cfg.counts, cfg.nu_train, cfg.nu_ood, lambda r, n: np.exp(rng.uniform(np.log(r[0]), np.log(r[1]), size=n))
        )
        shape = (n_total, cfg.n_frames, cfg.n, cfg.n)  # [traj, time, x, y]
        fields = {name: np.empty(shape, dtype=np.float32) for name in ("w", "u", "v")}
        batch = _batch(cfg.n * cfg.oversample)
        for lo in range(0, n_total, batch):
            sl = slice(lo, min(lo + batch, n_total))
            w0 = gaussian_random_field(rng, sl.stop - lo, cfg.n, alpha=cfg.alpha, tau=cfg.tau)
            frames = cls.solve(cfg, w0, nu[sl])  # [b, time, 3, n, n]
            fields["w"][sl], fields["u"][sl], fields["v"][sl] = (frames[:, :, c] for c in range(3))
        return pack_splits(cfg.counts, fields, nu[:, None])

    @classmethod
    def solve_from(
        cls,
        cfg: str | NS2DSize,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """:func:`solve_ns2d` restarted from stored frames (see :meth:`Task.solve_from`; every split is the same PDE).

        The stored vorticity is truncated spectrally to the ``n / coarsen`` grid, solved there with the CFL number and
        largest step scaled by ``step``, zero-padded back to the stored grid, and the velocity is recomputed from it
        (:func:`velocity_from_vorticity`), as the generator does. The stored u, v are not used: they follow from ω.
        """
        cfg = cls.size(cfg)
        frames0, params = check_frames(cls.name, cls.spec(cfg), frames0, params, n_steps)
        n_c = check_coarsen(cls.name, (cfg.n, cfg.n), coarsen, even=True)[0]
        step = check_step(cls.name, step)
        w0 = resample(frames0[:, 0], n_c)  # [B, n_c, n_c]
        nu = params[:, 0]
        forcing = fno_forcing(n_c)

        def solve_batch(sl: slice) -> np.ndarray:
            def advance(w: np.ndarray, idx: np.ndarray) -> np.ndarray:
                nu_b = nu[sl][idx]
                return solve_ns2d(w, nu_b, [cfg.dt], forcing=forcing, cfl=cfg.cfl * step, h_max=cfg.h_max * step)[:, 0]

            return march(w0[sl], n_steps, advance)

        w = in_batches(solve_batch, len(w0), _batch(n_c))
        w = resample(w, cfg.n)  # [B, n_steps, n, n]
        u, v = velocity_from_vorticity(w)
        return np.stack([w, u, v], axis=2)
