"""Flow samplers: analytic golden values, convergence order on a linear ODE, consistency sampling, bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ups.errors import UserInputError
from ups.models.samplers import (
    SAMPLERS,
    ConsistencySampler,
    EulerSampler,
    FlowSampler,
    HeunSampler,
    make_sampler,
    time_grid,
)

# Linear, time-dependent velocity field v(x, t) = λ x + c t with the exact solution
#   x(t) = (x0 − β) e^{λ t} + α t + β,   α = −c / λ,  β = −c / λ²
LAM, C = -1.3, 0.7


def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
    return LAM * x + C * t


def exact(x0: torch.Tensor, t: float) -> torch.Tensor:
    alpha, beta = -C / LAM, -C / LAM**2
    return (x0 - beta) * math.exp(LAM * t) + alpha * t + beta


def integrate(sampler: FlowSampler, x0: torch.Tensor, n: int) -> torch.Tensor:
    sampler.set_timesteps(n)
    x = x0
    for t in sampler.timesteps:
        x = sampler.step(velocity(x, float(t)), t, x).prev_sample
    return x


def observed_orders(cls: type[FlowSampler]) -> np.ndarray:
    x0 = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    errors = [(integrate(cls(), x0, n) - exact(x0, 1.0)).abs().max().item() for n in (8, 16, 32, 64)]
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


def test_euler_converges_with_first_order():
    np.testing.assert_allclose(observed_orders(EulerSampler), 1.0, atol=0.1)


def test_heun_converges_with_second_order():
    np.testing.assert_allclose(observed_orders(HeunSampler), 2.0, atol=0.1)


def test_golden_values_on_exponential_decay():
    # v = −x from x0 = 1 on 4 uniform steps (h = 1/4): Euler gives (1 − h)^4, Heun (1 − h + h²/2)^4; exact e^{-1}
    x0 = torch.ones(1, dtype=torch.float64)
    for cls, golden in [(EulerSampler, 0.75**4), (HeunSampler, 0.78125**4)]:
        sampler = cls()
        sampler.set_timesteps(4)
        x = x0
        for t in sampler.timesteps:
            x = sampler.step(-x, t, x).prev_sample
        assert x.item() == pytest.approx(golden, rel=1e-14)


def test_heun_evaluates_the_model_at_both_ends_of_every_interval():
    sampler = HeunSampler()
    sampler.set_timesteps(3)
    np.testing.assert_allclose(sampler.timesteps.numpy(), [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1], atol=1e-15)
    assert sampler.order == 2 and sampler.num_steps == 3


def test_pred_original_is_the_straight_line_extrapolation():
    sampler = EulerSampler()
    sampler.set_timesteps(4)
    x, v = torch.tensor([0.3]), torch.tensor([2.0])
    out = sampler.step(v, 0.0, x)
    assert out.prev_sample.item() == pytest.approx(0.3 + 0.25 * 2.0)
    assert out.pred_original.item() == pytest.approx(0.3 + 1.0 * 2.0)


def test_add_noise_is_the_straight_path_and_takes_per_sample_times():
    x0, noise = torch.randn(3, 2, 5), torch.randn(3, 2, 5)
    t = torch.tensor([0.0, 0.25, 1.0])
    xt = FlowSampler.add_noise(x0, noise, t)
    for b in range(3):
        torch.testing.assert_close(xt[b], t[b] * x0[b] + (1 - t[b]) * noise[b])
    torch.testing.assert_close(FlowSampler.add_noise(x0, noise, 0.5), 0.5 * (x0 + noise))


def test_consistency_sampler_with_the_exact_consistency_function_returns_the_data_point():
    # data = δ_μ: x_t = t μ + (1 − t) ε, so F(x, t) = (μ − x) / (1 − t) and f(x, t) = x + (1 − t) F = μ for every t
    mu = torch.tensor([[1.5, -2.0]])
    for steps in (1, 3):
        sampler = ConsistencySampler()
        sampler.set_timesteps(steps)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 2, generator=g)
        for t in sampler.timesteps:
            out = sampler.step((mu - x) / (1 - float(t)), t, x, generator=g)
            torch.testing.assert_close(out.pred_original, mu)
            x = out.prev_sample
        torch.testing.assert_close(x, mu)


def test_consistency_renoising_lands_on_the_forward_path_with_scaled_noise():
    sampler = ConsistencySampler(noise_scale=0.5)
    sampler.set_timesteps(2)  # model times 0 and 1/2
    x = torch.zeros(4)
    out = sampler.step(torch.ones(4), 0.0, x, generator=torch.Generator().manual_seed(3))
    z = torch.randn(4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.pred_original, torch.ones(4))
    torch.testing.assert_close(out.prev_sample, 0.5 * torch.ones(4) + 0.5 * 0.5 * z)


def test_cosine_grid_runs_from_zero_to_one_symmetric_and_denser_at_the_ends():
    grid = time_grid(8, "cosine")
    assert grid[0] == 0.0 and grid[-1] == 1.0
    assert torch.all(grid[1:] > grid[:-1])
    torch.testing.assert_close(grid + grid.flip(0), torch.ones(9, dtype=torch.float64))
    steps = grid.diff()
    assert steps[0] < steps[4] and steps[-1] < steps[4]


def test_step_checks_the_time_and_the_end_of_the_pass():
    sampler = make_sampler("euler", 2)
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="expects t = 0"):
        sampler.step(x, 0.5, x)
    sampler.step(x, 0.0, x)
    sampler.step(x, 0.5, x)
    with pytest.raises(RuntimeError, match="past the last timestep"):
        sampler.step(x, 1.0, x)


def test_registry_lists_samplers_and_rejects_unknown_names():
    assert SAMPLERS.names() == ["consistency", "euler", "heun"]
    with pytest.raises(UserInputError, match="valid: consistency, euler, heun"):
        make_sampler("ddim", 4)
