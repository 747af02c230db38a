"""rollout_transient: the operator alone is operator.rollout; the corrector runs on its cadence or on a physics gap."""

from __future__ import annotations

import pytest
import torch

from ups.data.spec import ConservedQuantity, TaskSpec
from ups.inference import physics_gap, rollout_transient
from ups.inference.physics import conservation_guidance


@pytest.fixture
def spy(monkeypatch):
    """``spy(case) -> calls``: after a rollout, ``calls`` lists (operator steps taken so far, batch size) for every
    corrector call."""

    def install(case):
        steps, calls = [0], []
        step, sample = case.operator.step, case.corrector.sample

        def counting_step(z, cond):
            steps[0] += 1
            return step(z, cond)

        def counting_sample(z, *args, **kwargs):
            calls.append((steps[0], z.shape[0]))
            return sample(z, *args, **kwargs)

        monkeypatch.setattr(case.operator, "step", counting_step)
        monkeypatch.setattr(case.corrector, "sample", counting_sample)
        return calls

    return install


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_without_a_corrector_it_is_exactly_the_operator_rollout(burgers):
    op = burgers.operator
    expected = op.rollout(burgers.inputs, 5, burgers.params)
    assert torch.equal(rollout_transient(op, None, burgers.inputs, 5, burgers.params), expected)
    # a corrector that never fires (cadence off, no gap threshold) changes nothing either
    quiet = rollout_transient(op, burgers.corrector, burgers.inputs, 5, burgers.params, cadence=0, generator=gen())
    assert torch.equal(quiet, expected)


def test_corrector_runs_exactly_at_multiples_of_the_cadence(burgers, spy):
    plain = burgers.operator.rollout(burgers.inputs, 7, burgers.params)
    calls = spy(burgers)
    out = rollout_transient(
        burgers.operator, burgers.corrector, burgers.inputs, 7, burgers.params, cadence=3, generator=gen()
    )
    batch = burgers.inputs.shape[0]
    assert calls == [(3, batch), (6, batch)]
    assert torch.equal(out[:, :2], plain[:, :2])  # nothing corrected before step 3
    assert not torch.allclose(out[:, 2], plain[:, 2])  # the corrected latent decodes differently


def test_default_cadence_is_the_correctors_config(burgers, spy):
    calls = spy(burgers)
    assert burgers.corrector.config.cadence_steps == 2
    rollout_transient(burgers.operator, burgers.corrector, burgers.inputs, 5, burgers.params, generator=gen())
    assert [step for step, _ in calls] == [2, 4]


def test_gap_trigger_fires_on_a_tiny_threshold_and_not_on_a_huge_one(burgers, spy):
    calls = spy(burgers)
    op, corr, x, p = burgers.operator, burgers.corrector, burgers.inputs, burgers.params
    rollout_transient(op, corr, x, 4, p, cadence=0, gap_threshold=1e-12, generator=gen())
    assert [step for step, _ in calls] == [1, 2, 3, 4]
    calls.clear()
    out = rollout_transient(op, corr, x, 4, p, cadence=0, gap_threshold=1e6, generator=gen())
    assert calls == [] and torch.equal(out, op.rollout(x, 4, p))


def test_gap_trigger_corrects_only_the_samples_over_the_threshold(burgers, spy):
    op, corr, x, p = burgers.operator, burgers.corrector, burgers.inputs, burgers.params
    plain = op.rollout(x, 1, p)
    calls = spy(burgers)
    gaps = physics_gap(plain[:, 0], x[:, -1], op.spec)
    threshold = float(gaps.median())
    over = gaps > threshold
    assert 0 < int(over.sum()) < x.shape[0]
    out = rollout_transient(op, corr, x, 1, p, cadence=0, gap_threshold=threshold, generator=gen())
    assert calls == [(1, int(over.sum()))]
    assert torch.equal(out[~over], plain[~over])
    assert not torch.allclose(out[over], plain[over])


def test_same_generator_seed_same_rollout_and_another_seed_differs(burgers):
    def run(seed):
        return rollout_transient(
            burgers.operator, burgers.corrector, burgers.inputs, 4, burgers.params, cadence=1, generator=gen(seed)
        )

    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


def test_physics_gap_is_the_max_relative_drift_of_the_conserved_integrals():
    spec = TaskSpec(
        task="toy",
        fields=("a", "b", "c"),
        grid_shape=(4,),
        domain=(2.0,),
        dt=1.0,
        conserved=(ConservedQuantity("qa", "a"), ConservedQuantity("qb", "b")),
    )
    ref = torch.tensor([[[1.0, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]]])
    u = ref.clone()
    u[0, 0] += 0.25  # ∫a drifts by 4·0.25·h = 0.5 against ∫|a| = 4·h = 2: gap 0.25
    u[0, 1, 0] += 0.4  # ∫b drifts by 0.4·h = 0.2 against ∫|b| = 2: gap 0.1
    u[0, 2] += 100.0  # c is not conserved: ignored
    assert physics_gap(u, ref, spec).item() == pytest.approx(0.25)
    no_conserved = TaskSpec(task="toy", fields=("a", "b", "c"), grid_shape=(4,), domain=(2.0,), dt=1.0)
    assert physics_gap(u, ref, no_conserved).item() == 0.0


def test_conservation_guidance_residual_is_the_squared_relative_drift():
    spec = TaskSpec(
        task="toy", fields=("a",), grid_shape=(4,), domain=(1.0,), dt=1.0, conserved=(ConservedQuantity("qa", "a"),)
    )
    ref = torch.tensor([[[1.0, 2.0, 3.0, 2.0]]])
    residual = conservation_guidance(lambda z: z, ref, spec)
    assert residual(ref).item() == 0.0
    assert residual(ref + 0.5).item() == pytest.approx((0.5 * 4 / 8) ** 2)
    no_conserved = TaskSpec(task="toy", fields=("a",), grid_shape=(4,), domain=(1.0,), dt=1.0)
    assert conservation_guidance(lambda z: z, ref, no_conserved) is None
