"""Per-metric statistics over seeds (and each seed's trajectories): what champions store and what gates compare."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ups.metrics.registry import format_metric_name, parse_metric_name


def _finite(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


@dataclass(frozen=True)
class SeedStat:
    """``mean`` over seeds, sample ``std`` (ddof=1; 0.0 for one seed), ``n`` seeds, and each seed's value.

    ``per_traj[seed]`` holds the seed's per-trajectory values when the metric is a plain mean over trajectories
    (``MetricDef.batch_mean``), in the split's trajectory order, so that ``per_seed[seed]`` is their mean. Gates pair
    the candidate's and the champion's trajectories through it (:mod:`ups.metrics.bootstrap`); metrics that are not
    trajectory means (ensemble calibration, timings) have none.

    ``mean`` is None when the metric does not apply (every seed reported None).
    """

    mean: float | None
    std: float
    n: int
    per_seed: dict[int, float | None] = field(default_factory=dict)
    per_traj: dict[int, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def from_seeds(
        cls, per_seed: Mapping[int, float | None], per_traj: Mapping[int, Sequence[float]] | None = None
    ) -> SeedStat:
        traj = {int(s): tuple(float(x) for x in v) for s, v in (per_traj or {}).items() if v is not None and len(v)}
        vals = [v for v in per_seed.values() if _finite(v)]
        if not vals:
            return cls(None, 0.0, 0, dict(per_seed), traj)
        std = statistics.stdev(vals) if len(vals) >= 2 else 0.0
        return cls(statistics.fmean(vals), std, len(vals), dict(per_seed), traj)

    @property
    def seeds(self) -> list[int]:
        """The seeds with a finite value, in increasing order."""
        return sorted(s for s, v in self.per_seed.items() if _finite(v))

    def as_dict(self) -> dict:
        """JSON-safe: a NaN or infinite value is written as null (strict JSON has neither), and a seed whose
        trajectories are not all finite keeps no per-trajectory values."""
        finite = lambda v: v if _finite(v) and not math.isinf(v) else None  # noqa: E731
        d = {
            "mean": finite(self.mean),
            "std": self.std if math.isfinite(self.std) else 0.0,
            "n": self.n,
            "per_seed": {str(k): finite(v) for k, v in self.per_seed.items()},
        }
        traj = {str(k): list(v) for k, v in self.per_traj.items() if all(math.isfinite(x) for x in v)}
        if traj:
            d["per_traj"] = traj
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SeedStat:
        per_seed = {int(k): v for k, v in d.get("per_seed", {}).items()}
        per_traj = {int(k): tuple(v) for k, v in d.get("per_traj", {}).items()}
        return cls(d["mean"], float(d.get("std", 0.0)), int(d.get("n", len(per_seed))), per_seed, per_traj)


def stats_from_rows(rows: Iterable[Mapping]) -> dict[str, dict[str, SeedStat]]:
    """``{split: {metric name: SeedStat}}`` from metric rows (``split, seed, metric, horizon, value`` and optional
    ``per_traj``), the shape of the results store's ``metrics`` table and of the harness's shards. The one place
    metric rows become seed statistics."""
    per: dict[str, dict[str, dict[int, float | None]]] = {}
    traj: dict[str, dict[str, dict[int, Sequence[float]]]] = {}
    for r in rows:
        name = format_metric_name(r["metric"], r["horizon"])
        per.setdefault(r["split"], {}).setdefault(name, {})[int(r["seed"])] = r["value"]
        if r.get("per_traj") is not None:
            traj.setdefault(r["split"], {}).setdefault(name, {})[int(r["seed"])] = r["per_traj"]
    return {
        split: {name: SeedStat.from_seeds(seeds, traj.get(split, {}).get(name)) for name, seeds in metrics.items()}
        for split, metrics in per.items()
    }


def rows_from_stats(stats: Mapping[str, Mapping[str, SeedStat]]) -> list[dict]:
    """The inverse of :func:`stats_from_rows`: one row per split, metric name and seed."""
    rows = []
    for split, metrics in stats.items():
        for name, stat in metrics.items():
            metric, horizon = parse_metric_name(name)
            for seed, value in stat.per_seed.items():
                rows.append({"split": split, "seed": int(seed), "metric": metric, "horizon": horizon,
                             "value": value, "per_traj": stat.per_traj.get(seed)})  # fmt: skip
    return rows
