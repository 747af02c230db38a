"""Ensemble (probabilistic) metrics: calibration error from the PIT, CRPS, and the spread–skill ratio.

An ensemble is ``samples [M, B, T, C, *S]`` (members first, e.g. M corrector samples of one rollout) scored against
``target [B, T, C, *S]``. A deterministic prediction has no ensemble, and these metrics are ``None`` for it (the
scoreboard's job, not theirs).

References: PIT histograms and rank statistics (Hamill, 2001, "Interpretation of rank histograms for verifying
ensemble forecasts", MWR); the fair ensemble CRPS (Ferro, 2014, "Fair scores for ensemble forecasts", QJRMS); the
spread–skill ratio with the finite-ensemble factor √((M+1)/M) (Fortin et al., 2014, "Why should ensemble spread
match the RMSE of the ensemble mean?", J. Hydrometeorology).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ups.metrics._arrays import ArrayLike, as_float64, check_samples, safe_ratio

LEVELS: tuple[float, ...] = tuple(np.round(np.arange(1, 20) * 0.05, 2))  # 0.05, 0.10, ..., 0.95


CHUNK_BYTES = 16 * 2**20  # float64 bytes of the ensemble held at once


def _chunks(samples: ArrayLike, target: ArrayLike) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Check the shapes, then yield ``(samples[:, i:j], target[i:j])`` as float64, a few trajectories at a time.

    Every ensemble statistic below is a sum over points, so it is accumulated chunk by chunk: the ensemble is never
    copied whole to float64.
    """
    x_shape, y_shape = tuple(np.shape(samples)), tuple(np.shape(target))
    check_samples(samples[:, :1], target[:1])  # the [M, B, T, C, *S] checks, on one trajectory
    if x_shape[1:] != y_shape:
        raise ValueError(f"samples must be [M, B, T, C, *S] = [M, {', '.join(map(str, y_shape))}], got {x_shape}")
    per_trajectory = 8 * x_shape[0] * int(np.prod(y_shape[1:]))
    step = max(1, CHUNK_BYTES // max(per_trajectory, 1))
    for start in range(0, y_shape[0], step):
        yield as_float64(samples[:, start : start + step]), as_float64(target[start : start + step])


def _ranks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point, ``a = #{m : x_m < y}`` and ``e = #{m : x_m == y}`` (int32 arrays shaped like ``y``)."""
    below = np.zeros(y.shape, dtype=np.int32)
    equal = np.zeros(y.shape, dtype=np.int32)
    for member in x:  # one member at a time: no [M, ...] boolean temporaries
        below += member < y
        equal += member == y
    return below, equal


def pit_coverage(samples: ArrayLike, target: ArrayLike, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Observed frequency ``mean 1[PIT ≤ p]`` of the truth's PIT at each level p, ``[len(levels)]``.

    The PIT of the truth y among M members is the randomised rank PIT ``(r + U) / (M + 1)``, where r is y's rank
    among the M + 1 values (ties broken uniformly at random) and U ~ Uniform(0, 1). For an ensemble whose members and
    truth are exchangeable (a calibrated ensemble), this PIT is exactly Uniform(0, 1) for any M, so the coverage is
    p at every level; the plain empirical CDF ``#{x_m ≤ y} / M`` is not (it is biased by ~1/M).

    No random numbers are drawn: the indicator is replaced by its expectation over U and the tie-break, which is
    ``(min(a + e + 1, q) − min(a, q)) / (e + 1)`` with ``q = p (M + 1)``, ``a = #{x_m < y}``, ``e = #{x_m = y}``.
    The mean is over every point (b, t, c, S) pooled, so each trajectory weighs the same (a batch mean divides by B).

    Returns NaN at every level if any input is NaN.
    """
    levels_arr = np.asarray(levels, dtype=np.float64)
    m = int(np.shape(samples)[0])
    # the indicator's expectation depends on (a, e) only: evaluate it on their joint histogram, not on every point
    counts = np.zeros((m + 1) ** 2, dtype=np.int64)
    for x, y in _chunks(samples, target):
        if np.isnan(x).any() or np.isnan(y).any():
            return np.full(levels_arr.shape, np.nan)
        below, equal = _ranks(x, y)
        counts += np.bincount((below * (m + 1) + equal).ravel(), minlength=(m + 1) ** 2)
    a = np.arange(m + 1, dtype=np.float64)[:, None]
    e = np.arange(m + 1, dtype=np.float64)[None, :]
    q = levels_arr[:, None, None] * (m + 1)
    expect = (np.minimum(a + e + 1, q) - np.minimum(a, q)) / (e + 1)  # [L, a, e]
    return np.einsum("lae,ae->l", expect, counts.reshape(m + 1, m + 1)) / counts.sum()


def ece(samples: ArrayLike, target: ArrayLike, *, levels: Sequence[float] = LEVELS) -> float:
    """Expected calibration error of an ensemble. Lower is better; 0 for a calibrated ensemble.

    Formula: ``mean_p |mean_{b,t,c,S} 1[PIT ≤ p] − p|`` over the levels p ∈ {0.05, 0.10, …, 0.95}, with the
    randomised rank PIT of :func:`pit_coverage` (its expectation, so the value is deterministic). An over-confident
    ensemble (spread too small) puts the truth outside the members: PIT piles up at 0 and 1 and ECE approaches 0.25.

    Args:
        samples: ensemble ``[M, B, T, C, *S]``.
        target: ground truth ``[B, T, C, *S]``.
        levels: probability levels p.
    """
    coverage = pit_coverage(samples, target, levels)
    return float(np.mean(np.abs(coverage - np.asarray(levels, dtype=np.float64))))


def crps(samples: ArrayLike, target: ArrayLike) -> float:
    """Fair (unbiased) ensemble CRPS, in the units of the fields. Lower is better.

    Formula, per point: ``mean_m |x_m − y| − Σ_{m≠m'} |x_m − x_m'| / (2 M (M − 1))`` (Ferro's fair estimator: the
    expected CRPS of the distribution the members are drawn from, without the 1/M bias of the plain estimator that
    divides by 2M²). The pair sum uses the sorted members: ``Σ_{m<m'} |x_m − x_m'| = Σ_i (2i − M + 1) x_(i)``.
    Then the mean over S, c, t, b (a plain mean over every point). Channels are not normalised: a channel with large
    values weighs more.

    Returns:
        The scalar CRPS; NaN (with a ``RuntimeWarning``) for M < 2, where the fair estimator is undefined.
    """
    m = int(np.shape(samples)[0])
    rank_weights = 2.0 * np.arange(m) - m + 1  # (2i − M + 1), i = 0..M−1
    skill_sum = pair_sum = 0.0
    n_points = 0
    for x, y in _chunks(samples, target):
        skill_sum += sum(float(np.sum(np.abs(member - y))) for member in x) / m
        pair_sum += float(rank_weights @ np.sort(x, axis=0).reshape(m, -1).sum(axis=1))  # Σ_points Σ_{m<m'} |Δx|
        n_points += y.size
    spread = safe_ratio(np.float64(pair_sum / n_points), np.float64(m * (m - 1)), "crps")
    return float(skill_sum / n_points - spread)


def spread_skill_ratio(samples: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Spread–skill ratio per channel, ``[C]``; 1 for a calibrated ensemble.

    Formula, per channel c, pooling (b, t, S): ``SSR_c = √((M+1)/M) · √mean var_m(x) / √mean (x̄ − y)²`` with the
    unbiased member variance (ddof = 1) and the ensemble mean x̄. The factor √((M+1)/M) makes a calibrated ensemble
    of any size score 1 (the ensemble mean of M members errs by σ²(1 + 1/M)).

    NaN (with a ``RuntimeWarning``) for M < 2 or where the ensemble mean equals the target everywhere.
    """
    m = int(np.shape(samples)[0])
    var_sum = err_sum = 0.0
    n_points = 0
    for x, y in _chunks(samples, target):
        axes = (0, 1, *range(3, y.ndim))  # (b, t, S) of the target
        err_sum = err_sum + np.sum((x.mean(axis=0) - y) ** 2, axis=axes)
        if m > 1:
            var_sum = var_sum + np.sum(np.var(x, axis=0, ddof=1), axis=axes)
        n_points += y.size // y.shape[2]
    err2 = np.asarray(err_sum) / n_points
    if m < 2:
        return safe_ratio(np.zeros_like(err2), np.zeros_like(err2), "spread_skill")
    return safe_ratio(np.sqrt((m + 1) / m * np.asarray(var_sum) / n_points), np.sqrt(err2), "spread_skill")


def spread_skill(samples: ArrayLike, target: ArrayLike) -> float:
    """Spread–skill mismatch ``mean_c |ln SSR_c|``. Lower is better; 0 for a calibrated ensemble.

    The scoreboard needs one direction, and the spread–skill ratio is best at 1, not at an end: ``|ln SSR|`` is 0 for
    a calibrated ensemble and treats over- and under-dispersion by the same factor alike (SSR = 0.5 and SSR = 2 both
    give ln 2). The raw ratios are :func:`spread_skill_ratio`. An ensemble whose members are all equal gives +inf.
    """
    ssr = spread_skill_ratio(samples, target)
    with np.errstate(divide="ignore"):
        return float(np.mean(np.abs(np.log(ssr))))
