"""Flow samplers, one per file (diffusers-style): ``set_timesteps(n)``, ``step(model_output, t, x)``, ``add_noise``.

``EulerSampler`` (first order) and ``HeunSampler`` (second order) integrate the flow ODE of a flow-matching /
rectified-flow model; ``ConsistencySampler`` is the few-step sampler of a consistency-distilled student. See
:mod:`ups.models.samplers.base` for the time convention and the sampling loop.
"""

from ups.models.samplers.base import FlowSampler, Spacing, StepOutput, time_grid
from ups.models.samplers.consistency import ConsistencySampler
from ups.models.samplers.euler import EulerSampler
from ups.models.samplers.heun import HeunSampler
from ups.registry import Registry

#: name → sampler class.
SAMPLERS: Registry = Registry("sampler")
SAMPLERS.register("euler")(EulerSampler)
SAMPLERS.register("heun")(HeunSampler)
SAMPLERS.register("consistency")(ConsistencySampler)


def make_sampler(name: str, num_steps: int, spacing: Spacing = "linear", **kwargs) -> FlowSampler:
    """Build the sampler registered as ``name`` with its timesteps set (``kwargs`` go to its constructor)."""
    sampler = SAMPLERS.get(name)(spacing=spacing, **kwargs)
    sampler.set_timesteps(num_steps)
    return sampler


__all__ = [
    "SAMPLERS",
    "ConsistencySampler",
    "EulerSampler",
    "FlowSampler",
    "HeunSampler",
    "Spacing",
    "StepOutput",
    "make_sampler",
    "time_grid",
]
