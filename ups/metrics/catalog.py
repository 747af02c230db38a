"""Every scoreboard metric of DESIGN.md ("Scoreboard metrics"), registered in :data:`~ups.metrics.registry.METRICS`.

Each entry says which way is better, when the metric applies to a task, and which task facts (``TaskSpec``) it
takes. ``docs/metrics.md`` has the table and every formula.
"""

from __future__ import annotations

from typing import Any

from ups.data.spec import TaskSpec
from ups.metrics.accuracy import accuracy_scores, brmse, crmse, max_err, nrmse, nrmse_at, psnr, rel_l2, rmse
from ups.metrics.boundary import bc_violation
from ups.metrics.ensemble import crps, ece, spread_skill
from ups.metrics.flow import div_free_error
from ups.metrics.physics import conservation_gap
from ups.metrics.registry import MetricDef, MetricFamily, register_metric
from ups.metrics.shocks import shock_iou, shock_precision, shock_scores
from ups.metrics.spectral import frmse_high, frmse_low, frmse_mid, spectral_error, spectral_scores
from ups.metrics.temporal import correlation_scores, pearson, pearson_at, rollout_horizon


def _has_conserved(spec: TaskSpec) -> bool:
    return len(spec.conserved) > 0


def _conservation_context(spec: TaskSpec) -> dict[str, Any]:
    return {"conserved_channels": spec.conserved_channels, "cell_volume": spec.cell_volume}


def _is_rollout(spec: TaskSpec) -> bool:
    return not spec.steady


def _has_walls(spec: TaskSpec) -> bool:
    return spec.bc in ("dirichlet", "neumann")


def _bc_context(spec: TaskSpec) -> dict[str, Any]:
    return {"bc": spec.bc, "bc_value": spec.bc_value, "spacing": spec.spacing, "channels": spec.bc_channels}


def _is_incompressible(spec: TaskSpec) -> bool:
    return spec.incompressible and len(spec.velocity) == spec.ndim and spec.bc != "none"


def _flow_context(spec: TaskSpec) -> dict[str, Any]:
    return {"velocity_channels": spec.velocity_channels, "spacing": spec.spacing, "bc": spec.bc}


def _is_periodic(spec: TaskSpec) -> bool:
    return spec.bc == "periodic"


def _energy_context(spec: TaskSpec) -> dict[str, Any]:
    # kinetic-energy spectrum when the task stores a velocity, else the spectrum of all fields together
    return {"channels": spec.velocity_channels or None}


def _spectral_family_context(spec: TaskSpec) -> dict[str, Any]:
    # on a periodic grid the divergence comes from the same FFTs as the spectra
    if _is_incompressible(spec) and _is_periodic(spec):
        return {**_energy_context(spec), "velocity_channels": spec.velocity_channels, "spacing": spec.spacing}
    return _energy_context(spec)


def _has_shocks(spec: TaskSpec) -> bool:
    return spec.shock_field is not None


def _shock_context(spec: TaskSpec) -> dict[str, Any]:
    return {"channel": spec.channel(spec.shock_field), "spacing": spec.spacing, "periodic": spec.bc == "periodic"}


ACCURACY = MetricFamily("accuracy", accuracy_scores)
SPECTRAL = MetricFamily("spectral", spectral_scores, _spectral_family_context)
CORRELATION = MetricFamily("correlation", correlation_scores)
SHOCKS = MetricFamily("shocks", shock_scores, _shock_context)

# accuracy
register_metric(MetricDef("nrmse", nrmse, "lower", "accuracy", at=nrmse_at, family=ACCURACY))
register_metric(MetricDef("rel_l2", rel_l2, "lower", "accuracy", family=ACCURACY))
register_metric(MetricDef("rmse", rmse, "lower", "accuracy", family=ACCURACY))
register_metric(MetricDef("max_err", max_err, "lower", "accuracy", family=ACCURACY))
register_metric(MetricDef("psnr", psnr, "higher", "accuracy", family=ACCURACY))
register_metric(MetricDef("crmse", crmse, "lower", "accuracy", batch_mean=False))  # √ of a batch mean
register_metric(MetricDef("brmse", brmse, "lower", "accuracy", family=ACCURACY))
for _name, _fn in (("frmse_low", frmse_low), ("frmse_mid", frmse_mid), ("frmse_high", frmse_high)):
    register_metric(MetricDef(_name, _fn, "lower", "accuracy", family=SPECTRAL))

# physics
register_metric(
    MetricDef(
        "conservation_gap", conservation_gap, "lower", "physics", applies=_has_conserved, context=_conservation_context
    )
)
register_metric(MetricDef("bc_violation", bc_violation, "lower", "physics", applies=_has_walls, context=_bc_context))
register_metric(
    MetricDef(
        "div_free_error",
        div_free_error,
        "lower",
        "physics",
        applies=_is_incompressible,
        context=_flow_context,
        family=SPECTRAL,
        family_when=_is_periodic,
    )
)
register_metric(
    MetricDef("spectral_error", spectral_error, "lower", "physics", context=_energy_context, family=SPECTRAL)
)
for _name, _fn in (("shock_iou", shock_iou), ("shock_precision", shock_precision)):
    register_metric(
        MetricDef(_name, _fn, "higher", "physics", applies=_has_shocks, context=_shock_context, family=SHOCKS)
    )

# reliability: ensemble calibration (None for deterministic predictions) and correlation over the rollout
for _name, _fn in (("ece", ece), ("crps", crps), ("spread_skill", spread_skill)):
    register_metric(MetricDef(_name, _fn, "lower", "reliability", needs_samples=True))
# horizon in predicted steps (comparable with the @k rows); physical time is in rollout_horizon_details
register_metric(
    MetricDef("rollout_horizon", rollout_horizon, "higher", "reliability", applies=_is_rollout, family=CORRELATION)
)
register_metric(
    MetricDef("pearson", pearson, "higher", "reliability", applies=_is_rollout, at=pearson_at, family=CORRELATION)
)

# efficiency: measured on a model and a device by the evaluator (ups.metrics.efficiency, ups.eval), not from arrays
for _name in (
    "wall_clock_s_per_rollout",  # median seconds per trajectory, device synchronised
    "wall_clock_norm",  # wall_clock_s_per_rollout / reference workload seconds on the same machine
    "peak_mem_mb",
    "params_m",
    "flops_per_step",
    "joules_per_step",  # None where no energy counter exists
):
    register_metric(MetricDef(_name, None, "lower", "efficiency", measured=True))
