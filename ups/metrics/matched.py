"""A surrogate against the numerical solver at equal accuracy and at equal runtime (McGreivy & Hakim, Nature Machine
Intelligence 2024: compare against an efficient solver, at matched error or matched cost).

The solver is run on a ladder of cheaper settings (coarser grids, longer steps), each giving one point (seconds per
rollout, error). Its cost–error curve is the lower-left frontier of those points: the settings that no other setting
beats on both time and error. Between two frontier points time and error are interpolated linearly in log–log
(discretisation error is a power of the cost, so the frontier is close to straight there).

- ``solver_s_at_error``: the solver's seconds per rollout at the surrogate's error;
- ``solver_error_at_s``: the solver's error at the surrogate's seconds per rollout;
- ``speedup`` = ``solver_s_at_error`` ÷ the surrogate's seconds: above 1, the surrogate pays for itself.

Nothing is extrapolated. Outside the ladder's range a reading is None, and where the ladder still bounds it the bound
is given instead:

- a surrogate less accurate than the cheapest setting: the solver would match its error in less than that setting's
  time, so ``speedup_max`` = that time ÷ the surrogate's seconds is an upper bound (below 1: the surrogate does not
  pay, whatever a coarser setting would give; above 1: undecided, the ladder needs coarser settings);
- a surrogate slower than the finest setting: the solver's error at the surrogate's time is at most that setting's,
  ``error_at_s_max``;
- a surrogate more accurate than the finest setting, or faster than the cheapest: no reading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Matched:
    """The matched readings of one surrogate against one solver ladder (None: outside the ladder's range)."""

    solver_s_at_error: float | None
    solver_error_at_s: float | None
    speedup: float | None
    speedup_max: float | None  # an upper bound of the speedup, where only that is known
    error_at_s_max: float | None  # an upper bound of the solver's error at the surrogate's time, where only that is
    reach: str  # "" when both readings are inside the ladder, else why one is not (for the report)


def frontier(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The cost–error frontier of ``(seconds, error)`` points: finite, positive points that no other point beats on
    both; sorted by time, so error strictly decreases along it."""
    pts = sorted((t, e) for t, e in points if _positive(t) and _positive(e))
    out: list[tuple[float, float]] = []
    for t, e in pts:
        if not out or e < out[-1][1]:
            if out and t == out[-1][0]:
                out[-1] = (t, e)
            else:
                out.append((t, e))
    return out


def _positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _loglog(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """y at x on the straight line through (x0, y0), (x1, y1) in log–log coordinates."""
    if x0 == x1:
        return y0
    w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return math.exp(math.log(y0) + w * (math.log(y1) - math.log(y0)))


def time_at_error(front: list[tuple[float, float]], error: float) -> float | None:
    """The frontier's seconds at ``error``; None outside its error range."""
    if not front or not _positive(error) or not front[-1][1] <= error <= front[0][1]:
        return None
    for (t0, e0), (t1, e1) in zip(front, front[1:], strict=False):
        if e1 <= error <= e0:
            return _loglog(error, e0, e1, t0, t1)
    return front[0][0]  # a one-point frontier at exactly ``error``


def error_at_time(front: list[tuple[float, float]], seconds: float) -> float | None:
    """The frontier's error at ``seconds``; None outside its time range."""
    if not front or not _positive(seconds) or not front[0][0] <= seconds <= front[-1][0]:
        return None
    for (t0, e0), (t1, e1) in zip(front, front[1:], strict=False):
        if t0 <= seconds <= t1:
            return _loglog(seconds, t0, t1, e0, e1)
    return front[0][1]  # a one-point frontier at exactly ``seconds``


def match(ladder: Iterable[tuple[float, float]], seconds: float, error: float) -> Matched:
    """The surrogate's ``(seconds, error)`` against the solver ``ladder`` of ``(seconds, error)`` points."""
    front = frontier(ladder)
    s_at_e = time_at_error(front, error)
    e_at_s = error_at_time(front, seconds)
    speedup = None if s_at_e is None or not _positive(seconds) else s_at_e / seconds
    speedup_max = error_max = None
    reach = []
    if not front:
        reach.append("no finite solver setting")
    else:
        (fast, worst), (slow, best) = front[0], front[-1]
        if error > worst:
            speedup_max = fast / seconds if _positive(seconds) else None
            reach.append(f"less accurate than the cheapest solver setting ({fast:.3g} s, error {worst:.3g})")
        elif error < best:
            reach.append(f"more accurate than the finest solver setting (error {best:.3g})")
        if seconds > slow:
            error_max = best
            reach.append(f"slower than the finest solver setting ({slow:.3g} s, error {best:.3g})")
        elif seconds < fast:
            reach.append(f"faster than the cheapest solver setting ({fast:.3g} s)")
    return Matched(s_at_e, e_at_s, speedup, speedup_max, error_max, "; ".join(reach))
