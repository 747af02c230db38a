"""Scoreboard metrics: pure functions ``metric(pred, target, **context)`` on ``[B, T, C, *S]`` rollouts.

``B`` batch, ``T`` predicted steps (input frames are never included), ``C`` channels, ``S`` space. Inputs may be
numpy arrays or torch tensors; everything is computed in float64 and returned as a Python float. Zero denominators
give NaN with a ``RuntimeWarning``, never an eps. Formulas: ``docs/metrics.md``.
"""

from ups.metrics._arrays import safe_ratio
from ups.metrics.accuracy import nrmse, nrmse_at, nrmse_per_step, rel_l2
from ups.metrics.physics import ConservationBudgets, conservation_budgets, conservation_gap, domain_integrals
from ups.metrics.registry import (
    METRICS,
    MetricDef,
    MetricValue,
    compute_scoreboard,
    format_metric_name,
    parse_metric_name,
    register_metric,
)
from ups.metrics.temporal import (
    HorizonDetails,
    pearson_at,
    pearson_per_step,
    rollout_horizon,
    rollout_horizon_details,
)

__all__ = [
    "METRICS",
    "ConservationBudgets",
    "HorizonDetails",
    "MetricDef",
    "MetricValue",
    "compute_scoreboard",
    "conservation_budgets",
    "conservation_gap",
    "domain_integrals",
    "format_metric_name",
    "nrmse",
    "nrmse_at",
    "nrmse_per_step",
    "parse_metric_name",
    "pearson_at",
    "pearson_per_step",
    "register_metric",
    "rel_l2",
    "rollout_horizon",
    "rollout_horizon_details",
    "safe_ratio",
]
