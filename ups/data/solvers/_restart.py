"""Grid transfers and the guarded frame-by-frame march shared by the tasks' ``solve_from`` (a solver restarted from
stored frames, :meth:`ups.data.solvers.base.Task.solve_from`).

A reference solver restarted from stored frames works on a grid ``coarsen`` times coarser than the stored one and
brings its result back. For cell-centred data the restriction is the block average (:func:`block_mean`) and the
prolongation is conservative and linear (:func:`prolong_linear`): each stored cell inside a coarse cell gets the coarse
mean plus the cell's offset times a per-axis slope, so the children average back to their parent exactly. Spectral
tasks use spectral truncation and zero-padding instead (in their own modules).

:func:`march` advances a batch one stored frame at a time and drops a trajectory once its state is non-finite or has
grown far beyond its initial size: solvers that re-choose their step from the current state (a CFL rule) would
otherwise take ever more steps on a blowing-up trajectory and stall the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from einops import reduce

from ups.data.spec import TaskSpec
from ups.errors import UserInputError

Slope = Literal["central", "mc", "minmod"]

#: A trajectory whose max |state| exceeds this multiple of its initial max |state| is declared diverged.
BLOWUP = 1e3


def check_coarsen(task: str, shape: tuple[int, ...], coarsen: int, *, even: bool = False) -> tuple[int, ...]:
    """The coarse grid ``shape // coarsen``. A ``coarsen`` that is not a positive integer dividing every axis into at
    least 2 points (the fewest a stencil or a Fourier pair needs), even ones for ``even`` (real FFTs that drop the
    Nyquist mode), is a :class:`UserInputError` naming it."""
    ok = isinstance(coarsen, int | np.integer) and not isinstance(coarsen, bool) and coarsen >= 1
    ok = ok and all(n % coarsen == 0 and n // coarsen >= 2 and (n // coarsen) % (2 if even else 1) == 0 for n in shape)
    if not ok:
        what = "an even number of points" if even else "a whole number of cells"
        raise UserInputError(
            f"task {task}: coarsen={coarsen!r} must be a positive integer leaving {what}, at least 2, on each axis of "
            f"the stored grid {shape}"
        )
    return tuple(n // coarsen for n in shape)


def check_frames(
    task: str, spec: TaskSpec, frames0: np.ndarray, params: np.ndarray, n_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``frames0`` ``[B, C, *S]`` and ``params`` ``[B, P]`` as float64 after checking them against ``spec`` (fields,
    grid, parameter names) and ``n_steps`` ≥ 0; anything else is a :class:`UserInputError` naming what is wrong."""
    frames0 = np.asarray(frames0, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    want = (len(spec.fields), *spec.grid_shape)
    if frames0.ndim != 1 + len(want) or frames0.shape[1:] != want:
        raise UserInputError(f"task {task}: frames0 must be [B, {', '.join(map(str, want))}], got {frames0.shape}")
    if params.shape != (len(frames0), len(spec.param_names)):
        raise UserInputError(
            f"task {task}: params must be [{len(frames0)}, {len(spec.param_names)}] ({', '.join(spec.param_names)}), "
            f"got {params.shape}"
        )
    if not isinstance(n_steps, int | np.integer) or isinstance(n_steps, bool) or n_steps < 0:
        raise UserInputError(f"task {task}: n_steps={n_steps!r} must be a whole number >= 0")
    return frames0, params


def check_step(task: str, step: float) -> float:
    """``step`` as a float; not a positive finite number is a :class:`UserInputError` naming it."""
    if not (isinstance(step, int | float | np.floating | np.integer) and np.isfinite(step) and step > 0):
        raise UserInputError(f"task {task}: step={step!r} must be a positive number")
    return float(step)


def block_mean(x: np.ndarray, r: int, ndim: int) -> np.ndarray:
    """Average over ``r``-cell blocks of the last ``ndim`` axes: ``[..., n_0, ...]`` → ``[..., n_0 / r, ...]``."""
    if r == 1:
        return x
    axes = [f"a{i}" for i in range(ndim)]
    fine = " ".join(f"({a} p{i})" for i, a in enumerate(axes))
    sizes = {f"p{i}": r for i in range(ndim)}
    return reduce(x, f"... {fine} -> ... {' '.join(axes)}", "mean", **sizes)


def fourier_resample(x: np.ndarray, n: int) -> np.ndarray:
    """Periodic nodal values ``x`` ``[..., m]`` brought to n nodes spectrally: the modes |k| < min(m, n)/2 (the Nyquist
    mode dropped), zero above: truncation for n < m, trigonometric interpolation for n > m; ``x`` itself for n = m."""
    m = x.shape[-1]
    if m == n:
        return x
    half = min(m, n) // 2
    x_hat = np.fft.rfft(x, axis=-1)[..., :half]
    return np.fft.irfft(x_hat, n=n, axis=-1) * (n / m)


def _slope(d_left: np.ndarray, d_right: np.ndarray, kind: Slope) -> np.ndarray:
    """Undivided slope of a cell from its one-sided differences: central, or limited (MC, minmod; 0 at extrema)."""
    if kind == "central":
        return 0.5 * (d_left + d_right)
    both = np.sign(d_left) + np.sign(d_right)  # ±2 where the differences agree, 0 at an extremum
    mag = np.minimum(np.abs(d_left), np.abs(d_right))
    if kind == "minmod":
        return 0.5 * both * mag
    return both * np.minimum(mag, 0.25 * np.abs(d_left + d_right))  # MC: sgn · min(2|a|, 2|b|, |a + b| / 2)


def prolong_linear(x: np.ndarray, r: int, ndim: int, *, periodic: bool, slope: Slope) -> np.ndarray:
    """Conservative linear prolongation of cell means ``[..., n, ...]`` → ``[..., r n, ...]`` on the last ``ndim`` axes.

    Along each axis, child ``m`` (0..r−1) of a cell sits at offset ((m + ½)/r − ½) cell widths from its centre and gets
    offset × the cell's slope; the offsets sum to zero, so every block of children averages back to its parent (the
    result's :func:`block_mean` is ``x`` to round-off) and domain totals are kept. Neighbours across the domain edge
    are the periodic images, or, for walls, the edge cell itself (zero gradient, so a wall cell's one-sided
    difference is 0 and a limited slope vanishes there).
    """
    if r == 1:
        return x
    offsets = (np.arange(r) + 0.5) / r - 0.5  # [r], in cell widths
    out = np.asarray(x, dtype=np.float64)
    for a in range(ndim):
        ax = out.ndim - ndim + a
        if periodic:
            left, right = np.roll(out, 1, axis=ax), np.roll(out, -1, axis=ax)
        else:
            idx = np.arange(out.shape[ax])
            left = np.take(out, np.maximum(idx - 1, 0), axis=ax)
            right = np.take(out, np.minimum(idx + 1, idx[-1]), axis=ax)
        s = _slope(out - left, right - out, slope)
        shape = [1] * (out.ndim + 1)
        shape[ax + 1] = r
        children = np.expand_dims(out, ax + 1) + np.expand_dims(s, ax + 1) * offsets.reshape(shape)
        out = children.reshape(*out.shape[:ax], out.shape[ax] * r, *out.shape[ax + 1 :])  # child index i·r + m
    return out


def march(
    y0: np.ndarray, n_steps: int, advance: Callable[[np.ndarray, np.ndarray], np.ndarray], *, blowup: float = BLOWUP
) -> np.ndarray:
    """Advance ``y0`` ``[B, ...]`` one stored frame at a time: ``advance(y, idx)`` maps the states of trajectories
    ``idx`` one frame on. A trajectory whose new state is non-finite or exceeds ``blowup`` × its initial max |y| is
    recorded as computed for that frame, then dropped: its later frames are NaN.

    Returns:
        float64 ``[B, n_steps, ...]``.
    """
    y = np.asarray(y0, dtype=np.float64)
    out = np.full((len(y), n_steps, *y.shape[1:]), np.nan)
    if len(y) == 0:
        return out
    scale = blowup * np.maximum(np.abs(y).reshape(len(y), -1).max(axis=1), 1e-300)  # [B]
    active = np.arange(len(y))
    for i in range(n_steps):
        if active.size == 0:
            break
        with np.errstate(all="ignore"):
            y = advance(y, active)
            size = np.abs(y).reshape(len(y), -1).max(axis=1)
        out[active, i] = y
        ok = np.isfinite(size) & (size <= scale[active])
        y, active = y[ok], active[ok]
    return out


def in_batches(solve: Callable[[slice], np.ndarray], n: int, batch: int) -> np.ndarray:
    """``solve(sl)`` on consecutive slices of ``batch`` trajectories out of ``n``, concatenated along axis 0 (one call
    on an empty slice when ``n = 0``, so the result keeps its shape)."""
    return np.concatenate([solve(slice(lo, lo + batch)) for lo in range(0, max(n, 1), batch)])
