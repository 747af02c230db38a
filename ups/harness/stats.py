"""Per-metric statistics over seeds: what champions store and what gates compare."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeedStat:
    """``mean`` over seeds, sample ``std`` (ddof=1; 0.0 for one seed), ``n`` seeds, and each seed's value.

    ``mean`` is None when the metric does not apply (every seed reported None).
    """

    mean: float | None
    std: float
    n: int
    per_seed: dict[int, float | None] = field(default_factory=dict)

    @classmethod
    def from_seeds(cls, per_seed: dict[int, float | None]) -> SeedStat:
        vals = [v for v in per_seed.values() if v is not None and not math.isnan(v)]
        if not vals:
            return cls(None, 0.0, 0, dict(per_seed))
        std = statistics.stdev(vals) if len(vals) >= 2 else 0.0
        return cls(statistics.fmean(vals), std, len(vals), dict(per_seed))

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
            "per_seed": {str(k): v for k, v in self.per_seed.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> SeedStat:
        per_seed = {int(k): v for k, v in d.get("per_seed", {}).items()}
        return cls(d["mean"], float(d.get("std", 0.0)), int(d.get("n", len(per_seed))), per_seed)
