"""Paired, stratified bootstrap of a candidate's and a champion's mean scores over seeds × test trajectories.

A gate compares the mean of a metric over training seeds and test trajectories. Both are sources of variance: a
different seed trains a different model, a different test set draws different trajectories. Following Bouthillier
et al., "Accounting for variance in machine learning benchmarks" (MLSys 2021), the comparison resamples both:

- **seeds** are drawn with replacement; when candidate and champion have the same seeds (a candidate retrained with
  the champion's seeds), one draw serves both sides, so the comparison is paired by seed;
- **trajectories** are drawn with replacement once per replicate, and that draw is used for every seed of both
  sides: the test set is the same for both, so the comparison is paired by trajectory (a hard trajectory is hard for
  both and cancels in a ratio or difference).

Each replicate gives each side's mean over its drawn seeds and trajectories. A gate turns the pair into its
statistic (ratio, difference, ...) and reads the percentile interval (:func:`interval`). Metrics without
per-trajectory values (timings, ensemble calibration) are resampled over seeds only.

:func:`prob_better` is the paper's *probability of outperforming*, P(A > B): the share of (candidate seed, champion
seed) pairs in which the candidate's run scores better, ties counting one half; paired seeds give the pairs
(i, i), different seeds every (i, j).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ups.metrics.seeds import SeedStat

N_BOOT = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided percentile interval at ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _matrix(stat: SeedStat, seeds: list[int], by_traj: bool) -> np.ndarray:
    """``[n_seeds, n_traj]`` values (``[n_seeds, 1]`` seed means when not ``by_traj``)."""
    if by_traj:
        return np.array([stat.per_traj[s] for s in seeds], dtype=np.float64)
    return np.array([[stat.per_seed[s]] for s in seeds], dtype=np.float64)


def _traj_count(stats: list[SeedStat]) -> int | None:
    """The common trajectory count when every seed of every side has finite per-trajectory values, else None."""
    counts = set()
    for st in stats:
        for s in st.seeds:
            values = st.per_traj.get(s)
            if values is None or not np.all(np.isfinite(values)):
                return None
            counts.add(len(values))
    return counts.pop() if len(counts) == 1 else None


def bootstrap_means(
    cand: SeedStat, champ: SeedStat | None = None, *, n_boot: int = N_BOOT, rng_seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Replicates of the candidate's (and the champion's) mean over resampled seeds × trajectories.

    Returns:
        ``(cand [n_boot], champ [n_boot] | None, design)`` where ``design`` says how it was resampled:
        ``{"paired_seeds": bool, "trajectories": int | None}``.

    Raises:
        ValueError: a side without a finite value.
    """
    sides = [cand] if champ is None else [cand, champ]
    if any(not st.seeds for st in sides):
        raise ValueError("bootstrap needs at least one finite seed value on each side")
    n_traj = _traj_count(sides)
    by_traj = n_traj is not None and n_traj > 1
    paired = champ is not None and cand.seeds == champ.seeds
    rng = np.random.default_rng(rng_seed)
    traj = rng.integers(0, n_traj, size=(n_boot, n_traj)) if by_traj else np.zeros((n_boot, 1), dtype=np.int64)

    def replicate_means(stat: SeedStat, seed_draw: np.ndarray) -> np.ndarray:
        values = _matrix(stat, stat.seeds, by_traj)  # [S, J]
        picked = values[seed_draw[:, :, None], traj[:, None, :]]  # [n_boot, S, J]
        return picked.mean(axis=(1, 2))

    cand_draw = rng.integers(0, len(cand.seeds), size=(n_boot, len(cand.seeds)))
    cand_means = replicate_means(cand, cand_draw)
    if champ is None:
        return cand_means, None, {"paired_seeds": False, "trajectories": n_traj if by_traj else None}
    champ_draw = cand_draw if paired else rng.integers(0, len(champ.seeds), size=(n_boot, len(champ.seeds)))
    return (
        cand_means,
        replicate_means(champ, champ_draw),
        {"paired_seeds": paired, "trajectories": n_traj if by_traj else None},
    )


def interval(estimate: float, replicates: np.ndarray, confidence: float) -> Interval:
    """The two-sided percentile interval of ``replicates`` at ``confidence`` around the point ``estimate``."""
    tail = 100 * (1 - confidence) / 2
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return Interval(estimate, float("nan"), float("nan"), confidence)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def prob_better(cand: SeedStat, champ: SeedStat, *, lower_is_better: bool = True) -> float:
    """P(candidate's run beats the champion's run) over seed pairs, ties counting 1/2 (Bouthillier et al. 2021)."""
    c = np.array([cand.per_seed[s] for s in cand.seeds], dtype=np.float64)
    h = np.array([champ.per_seed[s] for s in champ.seeds], dtype=np.float64)
    # paired seeds: the pairs (i, i); different seeds: every (i, j)
    diff = c - h if cand.seeds == champ.seeds else (c[:, None] - h[None, :]).ravel()
    better = diff < 0 if lower_is_better else diff > 0
    return float(np.mean(better + 0.5 * (diff == 0)))
