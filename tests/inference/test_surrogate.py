"""InferenceModel / load_surrogate: the Surrogate protocol over the trained pair, with the config's settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.config.schema import ProjectionsConfig
from ups.inference import InferenceModel, load_surrogate, rollout_transient, rollout_ttc
from ups.metrics.flow import divergence
from ups.models.base import Surrogate
from ups.models.persistence import Persistence


def test_load_surrogate_wraps_the_trained_pair_with_its_config(burgers):
    model = load_surrogate(burgers.run)
    assert isinstance(model, Surrogate) and model.n_input == 1 and model.stochastic
    op, corr = model.operator, model.corrector
    assert model.config == op.config and model.projections == op.config.physics.projections
    n_corr = sum(p.numel() for p in corr.parameters())
    assert model.num_parameters() == op.num_parameters() + n_corr and n_corr > 0


def test_rollout_is_deterministic_and_is_the_configured_transient_rollout(burgers):
    model = load_surrogate(burgers.run)
    x, p = burgers.inputs, burgers.params
    out = model.rollout(x, 5, p)
    assert torch.equal(out, model.rollout(x, 5, p))
    cfg = model.config
    expected = rollout_transient(
        model.operator,
        model.corrector,
        x,
        5,
        p,
        cadence=cfg.diffusion.cadence_steps,
        guidance_lambda=cfg.diffusion.guidance_lambda,
        generator=torch.Generator().manual_seed(cfg.run.seed),
    )
    assert torch.equal(out, expected)
    assert not torch.allclose(out, model.operator.rollout(x, 5, p))  # the corrector ran (cadence 2)


def test_ttc_surrogate_searches_and_records_its_search(burgers):
    model = load_surrogate(burgers.run, ttc=True)
    out = model.rollout(burgers.inputs, 2, burgers.params)
    expected, info = rollout_ttc(
        model.operator,
        model.corrector,
        burgers.inputs,
        2,
        burgers.params,
        ttc=model.config.ttc,
        generator=torch.Generator().manual_seed(model.config.run.seed),
    )
    assert torch.equal(out, expected) and torch.equal(model.last_info.chosen, info.chosen)
    ttc = model.config.ttc  # one start beam, then beam_width beams, each proposing `candidates`
    assert (model.last_info.evaluations == ttc.candidates * (1 + ttc.beam_width)).all()


def test_without_a_corrector_ttc_falls_back_to_the_operator(burgers):
    model = InferenceModel(burgers.operator, None, burgers.operator.config, ttc=True)
    assert not model.ttc and not model.stochastic
    out = model.rollout(burgers.inputs, 3, burgers.params)
    assert torch.equal(out, burgers.operator.rollout(burgers.inputs, 3, burgers.params))


def test_sample_ensemble_is_reproducible_by_seed(burgers):
    model = load_surrogate(burgers.run)
    a = model.sample_ensemble(burgers.inputs, 4, burgers.params, 3, seed=7)
    assert a.shape == (3, *burgers.targets[:, :4].shape)
    assert torch.equal(a, model.sample_ensemble(burgers.inputs, 4, burgers.params, 3, seed=7))
    assert not torch.allclose(a[0], a[1])


def test_projections_override_the_config(ns2d):
    model = load_surrogate(ns2d.run, projections=ProjectionsConfig(flux_continuity=True))
    out = model.rollout(ns2d.inputs, 2, ns2d.params)
    spec = model.spec
    sums = out[:, :, list(spec.conserved_channels)].sum(dim=(-2, -1))
    ref = ns2d.inputs[:, :, list(spec.conserved_channels)].sum(dim=(-2, -1))
    scale = ns2d.inputs[:, :, list(spec.conserved_channels)].abs().sum(dim=(-2, -1))
    assert ((sums - ref).abs() / scale).max() < 1e-5


@pytest.mark.gpu
def test_cuda_rollouts_take_and_return_cpu_tensors(ns2d):
    model = load_surrogate(ns2d.run, projections=ProjectionsConfig(hodge_div_free=True)).to("cuda")
    x, p = ns2d.inputs, ns2d.params
    out = model.rollout(x, 3, p)
    assert out.device.type == "cpu" and out.shape == ns2d.targets[:, :3].shape and torch.isfinite(out).all()
    assert torch.equal(out, model.rollout(x, 3, p))
    members = model.sample_ensemble(x, 3, p, 2, seed=0)
    assert members.device.type == "cpu" and not torch.allclose(members[0], members[1])
    model.ttc = True
    frames = model.rollout(x, 2, p)
    assert frames.device.type == "cpu" and torch.isfinite(frames).all() and model.last_info is not None


class CopyWithSpec(Persistence):
    """A non-latent surrogate that knows its task (as the grid baselines do): persistence on ns2d."""

    def __init__(self, spec):
        self.spec = spec


def test_a_non_latent_surrogate_gets_its_own_rollout_then_the_projections(ns2d):
    spec = ns2d.operator.spec
    noisy = ns2d.inputs + 0.1 * torch.randn(ns2d.inputs.shape, generator=torch.Generator().manual_seed(0))
    baseline = CopyWithSpec(spec)
    plain = InferenceModel(baseline, None, ns2d.operator.config)
    assert not plain.latent and not plain.stochastic and plain.num_parameters() == 0
    assert torch.equal(plain.rollout(noisy, 2, ns2d.params), baseline.rollout(noisy, 2, ns2d.params))
    hodge = InferenceModel(baseline, None, ns2d.operator.config, projections=ProjectionsConfig(hodge_div_free=True))
    out = hodge.rollout(noisy, 2, ns2d.params)
    vel = list(spec.velocity_channels)
    div = divergence(out[:, :, vel], spacing=spec.spacing, bc=spec.bc)
    div_before = divergence(noisy[:, :, vel], spacing=spec.spacing, bc=spec.bc)
    assert np.sqrt((div**2).mean()) < 1e-4 * np.sqrt((div_before**2).mean())
    with pytest.raises(ValueError, match="latent"):
        InferenceModel(baseline, ns2d.corrector, ns2d.operator.config)
