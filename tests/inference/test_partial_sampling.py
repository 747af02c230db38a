"""DiffusionCorrector.sample(start_time=τ): the SDEdit-style partial pass TTC draws its candidates with."""

from __future__ import annotations

import pytest
import torch


def latent(case) -> tuple[torch.Tensor, torch.Tensor]:
    op = case.operator
    with torch.no_grad():
        z = op.encode(op.normalise(case.inputs[:, -1]))
        return z, op.condition(z.shape[0], params=case.params)


def record_times(corrector, monkeypatch) -> list[float]:
    times, forward = [], corrector.forward

    def recording(x, t, *context):
        times.append(float(t[0]))
        return forward(x, t, *context)

    monkeypatch.setattr(corrector, "forward", recording)
    return times


def test_start_time_zero_is_the_default_sampler(burgers):
    z, cond = latent(burgers)
    corr = burgers.corrector
    with torch.no_grad():
        a = corr.sample(z, cond, generator=torch.Generator().manual_seed(0))
        b = corr.sample(z, cond, generator=torch.Generator().manual_seed(0), start_time=0.0)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("sampler", "steps", "expected"),
    [("euler", 4, [0.5, 0.625, 0.75, 0.875]), ("heun", 2, [0.5, 0.75, 0.75, 1.0]), ("consistency", 2, [0.5, 0.75])],
)
def test_the_pass_evaluates_the_model_on_the_grid_mapped_onto_tau_to_one(
    burgers, monkeypatch, sampler, steps, expected
):
    z, cond = latent(burgers)
    times = record_times(burgers.corrector, monkeypatch)
    with torch.no_grad():
        burgers.corrector.sample(z, cond, steps=steps, sampler=sampler, start_time=0.5, guidance_lambda=0.0)
    assert times == pytest.approx(expected)


def test_a_late_start_stays_near_the_init_and_an_early_one_does_not(burgers):
    z, cond = latent(burgers)
    corr = burgers.corrector
    init = z + 0.3 * corr.scale

    def dist(tau):
        with torch.no_grad():
            out = corr.sample(z, cond, generator=torch.Generator().manual_seed(1), start_time=tau, init=init)
        return float((out - init).pow(2).mean().sqrt() / corr.scale.pow(2).mean().sqrt())

    late, early = dist(0.999), dist(0.0)
    assert late < 0.01 < early


def test_start_time_must_be_below_one(burgers):
    z, cond = latent(burgers)
    with pytest.raises(ValueError, match="start_time"):
        burgers.corrector.sample(z, cond, start_time=1.0)
