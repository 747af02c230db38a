"""TTCReward: the trained decoder (the checkpoint's tensors), task-dependent terms, exact term values."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from ups.config.schema import TTCConfig
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.inference import TTCReward
from ups.models.latent_operator import LatentOperator
from ups.training import load_trained


def weights(**kw) -> TTCConfig:
    return TTCConfig(reward={"weights": kw})


def test_reward_decoder_is_the_trained_one_from_the_checkpoint(burgers_run):
    operator, _ = load_trained(burgers_run)
    reward = TTCReward(operator, operator.spec, TTCConfig())
    assert reward.decoder is operator.decoder
    stored = load_file(str(burgers_run / "checkpoints" / "final" / "tensors.safetensors"))
    prefix = "model.operator.decoder."
    state = reward.decoder.state_dict()
    assert set(state) == {k[len(prefix) :] for k in stored if k.startswith(prefix)}
    for key, value in state.items():
        assert torch.equal(value, stored[prefix + key]), key
    torch.manual_seed(operator.config.run.seed)
    fresh = LatentOperator.build(operator.config, operator.spec, operator.stats).decoder.state_dict()
    differ = [k for k in state if not torch.equal(state[k], fresh[k])]
    assert len(differ) == len(state)  # every tensor moved away from its initialisation in training


def test_burgers_has_only_the_mass_term_and_its_value_is_the_relative_drift(burgers):
    op = burgers.operator
    reward = TTCReward(op, op.spec, TTCConfig())  # default weights: mass 1, energy 0.1, negativity 0.5, tv 0
    assert reward.weights == {"mass": 1.0}  # no energy field, no positive field in burgers1d
    u0 = burgers.inputs[:2, -1]
    u = u0 + 0.1
    ref = reward.reference(u0)
    expected = 0.1 * 32 / u0.abs().sum(dim=(1, 2))  # |Σ(u − u0)| h / Σ|u0| h
    torch.testing.assert_close(reward.terms(u, ref)["mass"], expected)
    torch.testing.assert_close(reward.score_fields(u, ref), -expected)


def test_terms_for_fields_the_task_lacks_are_skipped(burgers):
    op = burgers.operator
    no_conserved = replace(op.spec, conserved=())
    u0 = burgers.inputs[:2, -1]
    u = u0 + 0.3 * torch.sin(torch.linspace(0, 12.0, 32))  # shifted mass and new oscillations
    reward = TTCReward(op, no_conserved, weights(mass=1.0, energy=1.0, penalty_negative=1.0))
    assert reward.weights == {} and reward.terms(u, reward.reference(u0)) == {}
    assert torch.equal(reward.score_fields(u, reward.reference(u0)), torch.zeros(2))

    with_tv = TTCReward(op, no_conserved, weights(mass=1.0, tv=2.0))
    ref = with_tv.reference(u0)
    tv = lambda f: (f.roll(-1, -1) - f).abs().sum(dim=(1, 2))  # noqa: E731  (h cancels in the ratio)
    expected_tv = (tv(u) - tv(u0)).clamp_min(0) / tv(u0)
    assert set(with_tv.terms(u, ref)) == {"tv"}
    torch.testing.assert_close(with_tv.score_fields(u, ref), -2.0 * expected_tv)
    assert (expected_tv > 0).all()


def test_euler_terms_energy_and_negativity_by_value(burgers):
    spec = TaskSpec(
        task="euler1d",
        fields=("rho", "mom", "E"),
        grid_shape=(4,),
        domain=(1.0,),
        dt=1.0,
        conserved=(
            ConservedQuantity("mass", "rho"),
            ConservedQuantity("momentum", "mom"),
            ConservedQuantity("energy", "E"),
        ),
    )
    reward = TTCReward(burgers.operator, spec, TTCConfig())
    assert reward.channels["mass"] == (0, 1) and reward.channels["energy"] == (2,)
    assert reward.weights == {"mass": 1.0, "energy": 0.1, "negativity": 0.5}
    u0 = torch.tensor([[[1.0, 1.0, 2.0, 0.0], [1.0, -1.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]]])
    u = u0.clone()
    u[0, 0, 3] = -0.5  # rho: mass 4 → 3.5, negative mass 0.5
    u[0, 2] *= 1.5  # E: 8 → 12
    terms = reward.terms(u, reward.reference(u0))
    assert terms["mass"].item() == pytest.approx((0.5 / 4 + 0.0) / 2)
    assert terms["energy"].item() == pytest.approx(4 / 8)
    assert terms["negativity"].item() == pytest.approx((0.5 / 4 + 0.0 / 8) / 2)
    total = -(1.0 * terms["mass"] + 0.1 * terms["energy"] + 0.5 * terms["negativity"])
    torch.testing.assert_close(reward.score_fields(u, reward.reference(u0)), total)

    only_rho = TTCReward(burgers.operator, spec, TTCConfig(reward={"mass_field": "rho", "energy_field": "nope"}))
    assert only_rho.channels["mass"] == (0,) and "energy" not in only_rho.weights


def test_reward_grid_decodes_at_its_own_points(burgers):
    op = burgers.operator
    z = op.encode(op.normalise(burgers.targets[:, 1]))  # a later frame: its mass differs from the input's
    u0 = burgers.inputs[:, -1]
    on_task = TTCReward(op, op.spec, TTCConfig())
    fine = TTCReward(op, op.spec, TTCConfig(reward={"grid": [64]}))
    with torch.no_grad():
        coarse, dense = on_task.decode(z), fine.decode(z)
        r_task, r_fine = on_task(z, on_task.reference(u0)), fine(z, fine.reference(u0))
    assert dense.shape == (4, 1, 64)
    torch.testing.assert_close(dense[..., ::2], coarse)  # periodic nodes j/64, j even, are the task's j/32
    assert (r_task < 0).all()
    torch.testing.assert_close(r_fine, r_task, rtol=1e-2, atol=1e-4)  # the same integrals on a finer grid
