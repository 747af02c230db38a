"""Post-decode projections inside rollouts: divergence at round-off, budgets restored, positivity with the integral."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.config.schema import ProjectionsConfig
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.inference import positive_channels, project_frames, rollout_transient
from ups.inference.physics import integrals
from ups.metrics.flow import divergence


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))


def relative_divergence(frames: torch.Tensor, spec: TaskSpec) -> float:
    """RMS of the spectral divergence the metrics use, over the RMS velocity gradient scale ``|u| / h``."""
    vel = frames[:, :, list(spec.velocity_channels)]
    div = divergence(vel, spacing=spec.spacing, bc=spec.bc)
    return rms(div) / (rms(vel) / spec.spacing[0])


def test_hodge_projection_leaves_ns2d_rollouts_divergence_free_at_roundoff(ns2d):
    op, spec = ns2d.operator, ns2d.operator.spec
    assert spec.incompressible and spec.velocity == ("u", "v")
    g = torch.Generator().manual_seed(0)
    raw = rollout_transient(op, ns2d.corrector, ns2d.inputs, 4, ns2d.params, cadence=2, generator=g)
    g = torch.Generator().manual_seed(0)
    hodge = ProjectionsConfig(hodge_div_free=True)
    projected = rollout_transient(
        op, ns2d.corrector, ns2d.inputs, 4, ns2d.params, cadence=2, projections=hodge, generator=g
    )
    before, after = relative_divergence(raw, spec), relative_divergence(projected, spec)
    assert before > 1e-2  # a learned decoder does not produce divergence-free velocities by itself
    assert after < 1e-5  # float32 round-off
    assert after < 1e-4 * before
    w = spec.channel("w")
    assert torch.equal(projected[:, :, w], raw[:, :, w])  # only the velocity channels are projected


def test_flux_continuity_restores_the_input_budgets_of_the_conserved_fields(ns2d):
    op, spec = ns2d.operator, ns2d.operator.spec
    flux = ProjectionsConfig(flux_continuity=True, hodge_div_free=True)
    raw = rollout_transient(op, None, ns2d.inputs, 3, ns2d.params)
    out = rollout_transient(op, None, ns2d.inputs, 3, ns2d.params, projections=flux)
    chans, vol = spec.conserved_channels, spec.cell_volume
    budget = integrals(ns2d.inputs[:, -1], chans, vol, 2)[:, None]  # [B, 1, Q]
    scale = integrals(ns2d.inputs[:, -1].abs(), chans, vol, 2)[:, None]
    drift_raw = ((integrals(raw, chans, vol, 2) - budget).abs() / scale).max()
    drift_out = ((integrals(out, chans, vol, 2) - budget).abs() / scale).max()
    assert drift_raw > 1e-3 and drift_out < 1e-5
    assert relative_divergence(out, spec) < 1e-5  # the uniform budget shift keeps the Hodge projection exact


def test_no_projection_applies_to_a_task_without_the_structure(burgers):
    all_on = ProjectionsConfig(hodge_div_free=True, positivity_clamp=True)
    op = burgers.operator  # burgers1d: no velocity field, no positive field
    assert torch.equal(
        rollout_transient(op, None, burgers.inputs, 2, burgers.params, projections=all_on),
        op.rollout(burgers.inputs, 2, burgers.params),
    )


def test_positivity_clamp_removes_negative_density_and_keeps_its_integral():
    spec = TaskSpec(
        task="euler1d",
        fields=("rho", "mom", "E"),
        grid_shape=(4,),
        domain=(1.0,),
        dt=1.0,
        conserved=(ConservedQuantity("mass", "rho"), ConservedQuantity("energy", "E")),
    )
    assert positive_channels(spec) == (0, 2)
    u = torch.tensor([[[1.0, -0.5, 2.0, 1.5], [-1.0, 2.0, -3.0, 1.0], [3.0, 3.0, -1.0, 3.0]]])
    out = project_frames(u, spec, ProjectionsConfig(positivity_clamp=True), reference=u)
    assert (out[:, [0, 2]] >= 0).all()
    assert torch.equal(out[:, 1], u[:, 1])  # momentum may be negative
    # integrals kept: rho 4.0 → [1, 0, 2, 1.5]·(4/4.5); E 8.0 → [3, 3, 0, 3]·(8/9)
    assert out[0, 0].tolist() == pytest.approx([v * 4.0 / 4.5 for v in (1.0, 0.0, 2.0, 1.5)])
    assert out[0, 2].sum().item() == pytest.approx(8.0)
