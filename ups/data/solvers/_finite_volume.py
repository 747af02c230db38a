"""Finite-volume solver for the compressible Euler equations of an ideal gas in 1D and 2D, shared by ``euler1d`` and
``euler2d``.

State: conserved cell averages ``u [B, C, *S]`` with channels (ρ, ρu_0, …, ρu_{D-1}, E), D = len(S), velocity
component ``u_a`` along spatial axis ``a``; pressure p = (γ − 1)(E − ½ρ|u|²), γ per trajectory.

Scheme (method of lines, dimension by dimension but unsplit):

- MUSCL reconstruction (van Leer 1979) of the primitive variables (ρ, u_0, …, p) with the minmod or monotonised-central
  (MC) limiter. Both keep each face value between the two neighbouring cell means, so reconstructed ρ and p stay
  positive wherever the cell means are.
- HLLC approximate Riemann solver (Toro, *Riemann Solvers and Numerical Methods for Fluid Dynamics*, 3rd ed. 2009,
  §10.4, eqs. 10.37–10.39) with the Einfeldt/Roe wave-speed bounds of Batten et al. (SIAM J. Sci. Comput. 18, 1997),
  for which HLLC is positively conservative; Rusanov (local Lax–Friedrichs, Toro §10.5.1) as a fallback flag.
- Strong-stability-preserving Runge–Kutta in time (Shu & Osher 1988: SSP-RK2 or SSP-RK3), each stage a convex
  combination of forward-Euler steps, with one CFL-limited step size per trajectory, cut to land exactly on the
  output times.
- Positivity: every forward-Euler step is checked a posteriori (MOOD-style, Clain, Diot & Loubère, JCP 230, 2011); in
  cells where ρ or p would not stay positive the reconstruction falls back to first order (the cell and its
  neighbours, then the whole trajectory), which is positive under the CFL bound. Since the admissible set
  {ρ > 0, p > 0} is convex in the conserved variables, the SSP stages keep it too.

Boundaries: ``periodic``; ``reflective`` (slip walls: mirrored ghost cells with the normal velocity negated) or
``outflow`` (zero-gradient ghost cells) at the outer faces of the first and last cell. Every interior face has one
flux used by both neighbours, so on a periodic domain (and, for mass and energy, between reflective walls) the domain
totals change only by round-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ups._memory import raise_mmap_threshold

Limiter = Literal["minmod", "mc"]
RiemannSolver = Literal["hllc", "rusanov"]
Integrator = Literal["ssp_rk2", "ssp_rk3"]
BoundaryType = Literal["periodic", "reflective", "outflow"]

_N_GHOST = 2  # a MUSCL face state needs the slope of its cell, which needs one more neighbour


@dataclass(frozen=True)
class FVScheme:
    """Discretisation choices of :func:`solve_euler`.

    Attributes:
        limiter: slope limiter of the MUSCL reconstruction: ``minmod`` (most dissipative) or ``mc`` (monotonised
            central, sharper contacts).
        riemann: face flux: ``hllc`` (resolves contacts) or ``rusanov`` (more dissipative, a robust fallback).
        integrator: ``ssp_rk2`` (default: second order like the reconstruction, at 2/3 of the cost of RK3) or
            ``ssp_rk3``.
        cfl: Courant number h · Σ_a max(|u_a| + c) / Δx_a of every step. 0.4 keeps the first-order fallback
            positive in 1D and 2D (the HLLC bound is ½ for the sum over axes).
    """

    limiter: Limiter = "mc"
    riemann: RiemannSolver = "hllc"
    integrator: Integrator = "ssp_rk2"
    cfl: float = 0.4


def _col(gamma: np.ndarray, ndim: int) -> np.ndarray:
    """γ ``[B]`` as ``[B, 1, …]`` to broadcast against per-cell arrays ``[B, *S]``."""
    return gamma.reshape(gamma.shape + (1,) * ndim)


def _gamma(gamma: np.ndarray | float, n_traj: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(gamma, dtype=np.float64), (n_traj,))


# Internally the state is channel-first, ``[C, B, *S]``: every per-channel array is then contiguous, which makes the
# element-wise Riemann-solver arithmetic about three times faster than on strided ``[B, C, *S]`` channel slices.


def _to_conserved(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(ρ, u_0, …, p) → (ρ, ρu_0, …, E), channel-first ``[C, B, *S]``; ``g`` broadcasts against ``[B, *S]``."""
    rho, vel, p = w[0], w[1:-1], w[-1]
    return np.concatenate([rho[None], rho * vel, (p / (g - 1.0) + 0.5 * rho * np.sum(vel * vel, axis=0))[None]])


def _to_primitive(u: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(ρ, ρu_0, …, E) → (ρ, u_0, …, p), channel-first ``[C, B, *S]``."""
    rho = u[0]
    vel = u[1:-1] / rho
    p = (g - 1.0) * (u[-1] - 0.5 * rho * np.sum(vel * vel, axis=0))
    return np.concatenate([rho[None], vel, p[None]])


def primitive_to_conserved(w: np.ndarray, gamma: np.ndarray | float) -> np.ndarray:
    """(ρ, u_0, …, u_{D-1}, p) ``[B, C, *S]`` → (ρ, ρu_0, …, ρu_{D-1}, E), γ a scalar or ``[B]``."""
    w = np.asarray(w, dtype=np.float64)
    g = _col(_gamma(gamma, w.shape[0]), w.ndim - 2)
    return np.moveaxis(_to_conserved(np.moveaxis(w, 1, 0), g), 0, 1)


def conserved_to_primitive(u: np.ndarray, gamma: np.ndarray | float) -> np.ndarray:
    """(ρ, ρu_0, …, E) ``[B, C, *S]`` → (ρ, u_0, …, p), γ a scalar or ``[B]``."""
    u = np.asarray(u, dtype=np.float64)
    g = _col(_gamma(gamma, u.shape[0]), u.ndim - 2)
    return np.moveaxis(_to_primitive(np.moveaxis(u, 1, 0), g), 0, 1)


def _pad(w: np.ndarray, axis: int, bc: BoundaryType, normal: int | None) -> np.ndarray:
    """Add ``_N_GHOST`` ghost cells at both ends of array axis ``axis`` of a channel-first array; ``normal`` is the
    channel (axis 0) that reflective walls negate, None for none."""
    n = w.shape[axis]
    if bc == "periodic":
        lo, hi = np.arange(n - _N_GHOST, n), np.arange(_N_GHOST)
    elif bc == "reflective":
        lo, hi = np.arange(_N_GHOST - 1, -1, -1), np.arange(n - 1, n - 1 - _N_GHOST, -1)  # mirror images
    elif bc == "outflow":
        lo, hi = np.zeros(_N_GHOST, dtype=int), np.full(_N_GHOST, n - 1)
    else:
        raise ValueError(f"unknown boundary type {bc!r}; valid: periodic, reflective, outflow")
    ghost_lo, ghost_hi = np.take(w, lo, axis=axis), np.take(w, hi, axis=axis)
    if bc == "reflective" and normal is not None:
        ghost_lo[normal] *= -1.0
        ghost_hi[normal] *= -1.0
    return np.concatenate([ghost_lo, w, ghost_hi], axis=axis)


def _limited_slope(d_left: np.ndarray, d_right: np.ndarray, limiter: Limiter) -> np.ndarray:
    """Limited undivided slope from the one-sided differences; zero at extrema, so face values stay in range.

    minmod: sgn · min(|a|, |b|); MC: sgn · min(2|a|, 2|b|, |a + b|/2), where sgn = sign(a) if a and b agree, else 0.
    Written as (sign a + sign b) · (…) / 2, which is ±1 or 0 times the magnitude.
    """
    both = np.sign(d_left) + np.sign(d_right)  # ±2 where the differences agree, 0 at extrema
    mag = np.minimum(np.abs(d_left), np.abs(d_right))
    if limiter == "minmod":
        return 0.5 * both * mag
    if limiter == "mc":
        return both * np.minimum(mag, 0.25 * np.abs(d_left + d_right))
    raise ValueError(f"unknown limiter {limiter!r}; valid: minmod, mc")


def _hllc(wl: list[np.ndarray], wr: list[np.ndarray], g: np.ndarray) -> list[np.ndarray]:
    """HLLC flux (Toro 2009, §10.4) between face states given as (ρ, u_n, u_t…, p) lists; returns the flux as
    (mass, normal momentum, tangential momenta…, energy).

    Wave speeds: S_L = min(u_L − c_L, ũ − c̃), S_R = max(u_R + c_R, ũ + c̃) with Roe averages (Einfeldt 1988;
    Batten et al. 1997, who show HLLC with these bounds keeps ρ and p positive). Contact speed S* by Toro eq. 10.37,
    star states U*_K by eq. 10.39 and the flux by eq. 10.38, written compactly: the side K is L where S* ≥ 0 and R
    otherwise, and F = F_K + S_K⁰ (U*_K − U_K) with S_L⁰ = min(S_L, 0), S_R⁰ = max(S_R, 0). This gives F_L when
    S_L ≥ 0, F*_L when S_L < 0 ≤ S*, F*_R when S* < 0 < S_R and F_R when S_R ≤ 0, evaluating one side only.
    """
    rho_l, un_l, vt_l, p_l = wl[0], wl[1], wl[2:-1], wl[-1]
    rho_r, un_r, vt_r, p_r = wr[0], wr[1], wr[2:-1], wr[-1]
    gm1 = g - 1.0
    c2_l, c2_r = g * p_l / rho_l, g * p_r / rho_r

    # Roe averages (weights √ρ) of the velocity and of the enthalpy H = c²/(γ − 1) + |u|²/2
    s_l, s_r = np.sqrt(rho_l), np.sqrt(rho_r)
    w_l = s_l / (s_l + s_r)
    w_r = 1.0 - w_l
    q2_l, q2_r = un_l * un_l, un_r * un_r
    un_roe = w_l * un_l + w_r * un_r
    q2_roe = un_roe * un_roe
    for a, b in zip(vt_l, vt_r, strict=True):
        q2_l, q2_r = q2_l + a * a, q2_r + b * b
        v_roe = w_l * a + w_r * b
        q2_roe = q2_roe + v_roe * v_roe
    h_roe = w_l * (c2_l / gm1 + 0.5 * q2_l) + w_r * (c2_r / gm1 + 0.5 * q2_r)
    c_roe = np.sqrt(np.maximum(gm1 * (h_roe - 0.5 * q2_roe), 0.0))
    speed_l = np.minimum(un_l - np.sqrt(c2_l), un_roe - c_roe)
    speed_r = np.maximum(un_r + np.sqrt(c2_r), un_roe + c_roe)

    m_l = rho_l * (speed_l - un_l)  # < 0: mass flux through the left wave, in its frame
    m_r = rho_r * (speed_r - un_r)  # > 0
    s_star = (p_r - p_l + un_l * m_l - un_r * m_r) / (m_l - m_r)  # Toro eq. 10.37

    left = s_star >= 0.0
    rho, un, p, q2 = (np.where(left, a, b) for a, b in ((rho_l, rho_r), (un_l, un_r), (p_l, p_r), (q2_l, q2_r)))
    vt = [np.where(left, a, b) for a, b in zip(vt_l, vt_r, strict=True)]
    speed = np.where(left, speed_l, speed_r)
    m = np.where(left, m_l, m_r)
    speed0 = np.where(left, np.minimum(speed_l, 0.0), np.maximum(speed_r, 0.0))

    energy = p / gm1 + 0.5 * rho * q2
    mass = rho * un
    flux = [mass, mass * un + p, *[mass * v for v in vt], un * (energy + p)]
    cons = [rho, mass, *[rho * v for v in vt], energy]
    fac = m / (speed - s_star)  # ρ_K (S_K − u_K) / (S_K − S*)
    star = [fac, fac * s_star, *[fac * v for v in vt], fac * (energy / rho + (s_star - un) * (s_star + p / m))]
    return [f + speed0 * (us - uk) for f, us, uk in zip(flux, star, cons, strict=True)]


def _rusanov(wl: list[np.ndarray], wr: list[np.ndarray], g: np.ndarray) -> list[np.ndarray]:
    """Rusanov flux ½(F_L + F_R) − ½ s_max (U_R − U_L), s_max = max(|u_L| + c_L, |u_R| + c_R) (Toro §10.5.1)."""
    fluxes, states, speeds = [], [], []
    for w in (wl, wr):
        rho, un, vt, p = w[0], w[1], w[2:-1], w[-1]
        energy = p / (g - 1.0) + 0.5 * rho * (un * un + sum((v * v for v in vt), np.zeros_like(un)))
        mass = rho * un
        fluxes.append([mass, mass * un + p, *[mass * v for v in vt], un * (energy + p)])
        states.append([rho, mass, *[rho * v for v in vt], energy])
        speeds.append(np.abs(un) + np.sqrt(g * p / rho))
    half_s = 0.5 * np.maximum(*speeds)
    return [
        0.5 * (fl + fr) - half_s * (ur - ul)
        for fl, fr, ul, ur in zip(fluxes[0], fluxes[1], states[0], states[1], strict=True)
    ]


def _along(ndim: int, axis: int, sl: slice) -> tuple[slice, ...]:
    """Index tuple that slices array axis ``axis`` of an ``ndim``-dimensional array."""
    idx = [slice(None)] * ndim
    idx[axis] = sl
    return tuple(idx)


def euler_rhs(
    w: np.ndarray,
    g: np.ndarray,
    spacing: tuple[float, ...],
    bc: BoundaryType,
    scheme: FVScheme,
    first_order: np.ndarray | None = None,
) -> np.ndarray:
    """Semi-discrete right-hand side dU/dt = −Σ_a (F_{a, i+½} − F_{a, i−½}) / Δx_a, channel-first.

    Args:
        w: primitive cell means ``[C, B, *S]`` (ρ, u_0, …, p).
        g: γ as ``[B, 1, …]``.
        spacing: cell size along each spatial axis.
        first_order: optional boolean ``[B, *S]``; cells whose reconstruction uses zero slopes.

    Returns:
        ``[C, B, *S]`` time derivative of the conserved cell means.
    """
    ndim = w.ndim - 2
    riemann = _hllc if scheme.riemann == "hllc" else _rusanov
    rhs = np.zeros_like(w)
    for a in range(ndim):
        ax = 2 + a  # array axis of spatial axis a
        n = w.shape[ax]
        wp = _pad(w, ax, bc, normal=1 + a)  # [C, B, .., n + 4, ..]
        d = np.diff(wp, axis=ax)  # n + 3 one-sided differences
        slope = _limited_slope(
            d[_along(w.ndim, ax, slice(0, n + 2))], d[_along(w.ndim, ax, slice(1, n + 3))], scheme.limiter
        )  # padded cells 1 .. n + 2
        if first_order is not None:
            fo = _pad(first_order[None], ax, bc, normal=None)[_along(w.ndim, ax, slice(1, n + 3))]
            slope = np.where(fo, 0.0, slope)
        cells = wp[_along(w.ndim, ax, slice(1, n + 3))]
        left, right = _along(w.ndim, ax, slice(0, n + 1)), _along(w.ndim, ax, slice(1, n + 2))
        w_l = cells[left] + 0.5 * slope[left]  # states left of the faces −½ .. n − ½
        w_r = cells[right] - 0.5 * slope[right]
        # Face-normal layout (ρ, u_n, u_t…, p): the same arithmetic for every axis, so x/y transposition commutes.
        order = [0, 1 + a, *[1 + b for b in range(ndim) if b != a], ndim + 1]
        flux = riemann([w_l[c] for c in order], [w_r[c] for c in order], g)
        flux = [flux[i] for i in np.argsort(order)]  # back to channel order
        for c in range(len(flux)):
            rhs[c] -= np.diff(flux[c], axis=ax - 1) / spacing[a]
    return rhs


def _max_rate(w: np.ndarray, g: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Per trajectory, max over cells of Σ_a (|u_a| + c) / Δx_a, so that h = cfl / rate; ``w`` channel-first."""
    ndim = w.ndim - 2
    c = np.sqrt(g * w[-1] / w[0])
    rate = sum((np.abs(w[1 + a]) + c) / spacing[a] for a in range(ndim))
    return rate.reshape(rate.shape[0], -1).max(axis=1)


def _admissible(u: np.ndarray) -> np.ndarray:
    """Boolean ``[B, *S]`` of a channel-first state: ρ > 0 and internal energy E − |ρu|²/2ρ > 0 (so p > 0); False for
    NaN."""
    rho = u[0]
    return (rho > 0.0) & (u[-1] - 0.5 * np.sum(u[1:-1] ** 2, axis=0) / rho > 0.0)


def _grow(mask: np.ndarray) -> np.ndarray:
    """``mask`` [B, *S] plus its face neighbours along every spatial axis (whose slopes enter its face fluxes)."""
    out = mask.copy()
    for ax in range(1, mask.ndim):
        out |= np.roll(mask, 1, axis=ax) | np.roll(mask, -1, axis=ax)
    return out


def _forward_euler(
    u: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    spacing: tuple[float, ...],
    bc: BoundaryType,
    scheme: FVScheme,
    w: np.ndarray | None = None,
) -> np.ndarray:
    """u + h L(u) (channel-first, ``h`` broadcasting like ``g``) with the a-posteriori positivity fallback: MUSCL,
    then first order around the cells that lost positivity (widened twice), then first order for the whole
    trajectory. ``w``: the primitive form of ``u`` when the caller has it."""
    w = _to_primitive(u, g) if w is None else w
    first_order = None
    for attempt in range(4):
        new = u + h * euler_rhs(w, g, spacing, bc, scheme, first_order)
        bad = ~_admissible(new)
        if not bad.any():
            return new
        if attempt < 2:
            first_order = _grow(bad if first_order is None else first_order | bad)
        else:
            whole = bad.reshape(bad.shape[0], -1).any(axis=1)
            first_order = first_order | whole.reshape(g.shape)
    raise FloatingPointError("euler solver: a first-order step lost positivity; lower the CFL number")


def _ssp_step(
    u: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    spacing: tuple[float, ...],
    bc: BoundaryType,
    scheme: FVScheme,
    w: np.ndarray | None = None,
) -> np.ndarray:
    """One SSP Runge–Kutta step (Shu & Osher 1988, Shu–Osher form), every stage a convex combination of forward-Euler
    steps."""
    u1 = _forward_euler(u, g, h, spacing, bc, scheme, w)
    if scheme.integrator == "ssp_rk2":
        return 0.5 * u + 0.5 * _forward_euler(u1, g, h, spacing, bc, scheme)
    u2 = 0.75 * u + 0.25 * _forward_euler(u1, g, h, spacing, bc, scheme)
    return u / 3.0 + (2.0 / 3.0) * _forward_euler(u2, g, h, spacing, bc, scheme)


def solve_euler(
    u0: np.ndarray,
    gamma: np.ndarray | float,
    t_out: np.ndarray,
    *,
    spacing: tuple[float, ...],
    bc: BoundaryType = "periodic",
    scheme: FVScheme = FVScheme(),  # noqa: B008 - frozen dataclass, safe as a default
    max_step: float | None = None,
) -> np.ndarray:
    """Integrate the Euler equations from the conserved state ``u0`` at t = 0 to the output times ``t_out``.

    Each trajectory takes its own steps h_b = min(cfl / max_rate_b, max_step, time left to the next output), so a slow
    trajectory is not dragged along by the fastest one of its batch; only unfinished trajectories are advanced.

    Args:
        u0: conserved cell means ``[B, C, *S]`` (ρ, ρu_0, …, E).
        gamma: ratio of specific heats, a scalar or ``[B]``.
        t_out: ``[T]`` non-decreasing output times ≥ 0.
        spacing: cell size along each spatial axis.
        bc: ``periodic``, ``reflective`` or ``outflow`` on every wall.
        scheme: discretisation, see :class:`FVScheme`.
        max_step: optional upper bound on every step (e.g. to give two solvers identical steps).

    Returns:
        float64 ``[B, T, C, *S]``.
    """
    raise_mmap_threshold(16 << 20)
    u0 = np.asarray(u0, dtype=np.float64)
    n_traj, ndim = u0.shape[0], u0.ndim - 2
    if ndim < 1 or u0.shape[1] != ndim + 2 or len(spacing) != ndim:
        raise ValueError(f"u0 must be [B, 2 + D, *S] with D = len(spacing) spatial axes, got {u0.shape}")
    gamma = _gamma(gamma, n_traj)
    t_out = np.asarray(t_out, dtype=np.float64)
    if t_out.ndim != 1 or (t_out.size and (t_out[0] < 0 or np.any(np.diff(t_out) < 0))):
        raise ValueError("t_out must be a 1D non-decreasing array of times >= 0")
    u = np.moveaxis(u0, 1, 0).copy()  # [C, B, *S], C-contiguous, never a view of the caller's array
    if not (np.isfinite(u).all() and _admissible(u).all()):
        raise ValueError("initial state must have finite values with rho > 0 and p > 0")
    spacing = tuple(float(s) for s in spacing)

    out = np.empty((n_traj, t_out.size, *u0.shape[1:]), dtype=np.float64)
    t = np.zeros(n_traj)
    for i, target in enumerate(t_out):
        while True:
            active = np.flatnonzero(t < target)
            if active.size == 0:
                break
            ua, ga = u[:, active], _col(gamma[active], ndim)
            wa = _to_primitive(ua, ga)
            h = scheme.cfl / _max_rate(wa, ga, spacing)
            if max_step is not None:
                h = np.minimum(h, max_step)
            left = target - t[active]
            last = h >= left
            h = np.where(last, left, h)
            u[:, active] = _ssp_step(ua, ga, _col(h, ndim), spacing, bc, scheme, wa)
            t[active] = np.where(last, target, t[active] + h)  # land exactly on the output time
        out[:, i] = np.moveaxis(u, 0, 1)
    return out
