"""Scoreboard metrics: pure functions ``metric(pred, target, **context)`` on ``[B, T, C, *S]`` rollouts.

``B`` batch, ``T`` predicted steps (input frames are never included), ``C`` channels, ``S`` space. Inputs may be
numpy arrays or torch tensors; everything is computed in float64 and returned as a Python float. Zero denominators
give NaN with a ``RuntimeWarning``, never an eps. Ensemble metrics take ``samples [M, B, T, C, *S]`` in place of
``pred``. Formulas: ``docs/metrics.md``.
"""

from ups.metrics import catalog as catalog  # registers every metric in METRICS
from ups.metrics._arrays import safe_ratio
from ups.metrics.accuracy import brmse, crmse, max_err, nrmse, nrmse_at, nrmse_per_step, psnr, rel_l2, rmse
from ups.metrics.boundary import bc_violation
from ups.metrics.ensemble import crps, ece, pit_coverage, spread_skill, spread_skill_ratio
from ups.metrics.flow import div_free_error, divergence, gradient_norm2
from ups.metrics.physics import (
    ConservationBudgets,
    conservation_budgets,
    conservation_gap,
    conservation_gap_per_step,
    domain_integrals,
)
from ups.metrics.registry import (
    METRICS,
    MetricDef,
    MetricFamily,
    MetricValue,
    format_metric_name,
    parse_metric_name,
    register_metric,
)
from ups.metrics.scoreboard import compute_scoreboard
from ups.metrics.shocks import shock_iou, shock_mask, shock_precision
from ups.metrics.spectral import energy_spectrum, frmse_high, frmse_low, frmse_mid, frmse_per_step, spectral_error
from ups.metrics.temporal import (
    HorizonDetails,
    pearson,
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
    "MetricFamily",
    "MetricValue",
    "bc_violation",
    "brmse",
    "compute_scoreboard",
    "conservation_budgets",
    "conservation_gap",
    "conservation_gap_per_step",
    "crmse",
    "crps",
    "div_free_error",
    "divergence",
    "domain_integrals",
    "ece",
    "energy_spectrum",
    "format_metric_name",
    "frmse_high",
    "frmse_low",
    "frmse_mid",
    "frmse_per_step",
    "gradient_norm2",
    "max_err",
    "nrmse",
    "nrmse_at",
    "nrmse_per_step",
    "parse_metric_name",
    "pearson",
    "pearson_at",
    "pearson_per_step",
    "pit_coverage",
    "psnr",
    "register_metric",
    "rel_l2",
    "rmse",
    "rollout_horizon",
    "rollout_horizon_details",
    "safe_ratio",
    "shock_iou",
    "shock_mask",
    "shock_precision",
    "spectral_error",
    "spread_skill",
    "spread_skill_ratio",
]
