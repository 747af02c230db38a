"""The solver-matched readings (ups.metrics.matched) against hand-computed values."""

import math

import pytest

from ups.metrics.matched import error_at_time, frontier, match, time_at_error

# A ladder whose error falls as time^-2: 0.1 at 1 ms, 0.1 / 16 at 4 ms, 0.1 / 256 at 16 ms.
LADDER = [(0.001, 0.1), (0.004, 0.1 / 16), (0.016, 0.1 / 256)]


def test_frontier_drops_dominated_and_non_finite_points():
    pts = [(0.004, 0.02), (0.001, 0.1), (0.002, 0.2), (0.003, math.nan), (0.005, math.inf), (0.0, 0.01), (0.016, 0.001)]
    assert frontier(pts) == [(0.001, 0.1), (0.004, 0.02), (0.016, 0.001)]
    assert frontier([(0.001, 0.1), (0.001, 0.05)]) == [(0.001, 0.05)]  # same time: the better error


def test_loglog_interpolation_is_exact_on_a_power_law():
    front = frontier(LADDER)
    # on the power law error = 0.1 (t / 1 ms)^-2, t = 2 ms gives 0.025
    assert error_at_time(front, 0.002) == pytest.approx(0.025, rel=1e-12)
    assert time_at_error(front, 0.025) == pytest.approx(0.002, rel=1e-12)
    assert time_at_error(front, 0.1 / 16) == pytest.approx(0.004, rel=1e-12)
    assert time_at_error(front, 0.1) == pytest.approx(0.001) and error_at_time(front, 0.016) == pytest.approx(0.1 / 256)


def test_nothing_is_extrapolated():
    front = frontier(LADDER)
    assert time_at_error(front, 0.5) is None and time_at_error(front, 1e-6) is None
    assert error_at_time(front, 1.0) is None and error_at_time(front, 1e-4) is None


def test_match_inside_the_ladder():
    m = match(LADDER, 0.008, 0.025)  # the solver needs 2 ms for 0.025; at 8 ms it reaches 0.1 * 8^-2
    assert m.solver_s_at_error == pytest.approx(0.002) and m.speedup == pytest.approx(0.25)
    assert m.solver_error_at_s == pytest.approx(0.1 / 64)
    assert m.speedup_max is None and m.error_at_s_max is None and m.reach == ""


def test_match_outside_the_ladder_gives_bounds_only():
    # slower than the finest and less accurate than the cheapest: the speedup is at most 1 ms / 0.2 s
    m = match(LADDER, 0.2, 0.5)
    assert m.solver_s_at_error is None and m.speedup is None and m.solver_error_at_s is None
    assert m.speedup_max == pytest.approx(0.005) and m.error_at_s_max == pytest.approx(0.1 / 256)
    assert "less accurate than the cheapest" in m.reach and "slower than the finest" in m.reach
    # a persistence-like model, instant and inaccurate: its bound is above 1 and decides nothing
    m = match(LADDER, 1e-5, 0.5)
    assert m.speedup is None and m.speedup_max == pytest.approx(100.0) and "faster than the cheapest" in m.reach
    # fast and accurate beyond the ladder: no reading at all
    m = match(LADDER, 1e-4, 1e-5)
    assert (m.solver_s_at_error, m.speedup, m.speedup_max, m.solver_error_at_s, m.error_at_s_max) == (None,) * 5
    assert match([(0.001, math.nan)], 0.1, 0.1).reach == "no finite solver setting"
