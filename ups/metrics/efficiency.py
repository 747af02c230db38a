"""Efficiency measurements: parameters, FLOPs and energy per step, peak memory.

These are measured on a model and a device by the evaluator, not computed from ``(pred, target)`` arrays; the metric
registry lists their names and directions (kind ``efficiency``, ``measured=True``) so that gate files can name them.
Wall-clock time per rollout is measured in ``ups.eval`` with the pdearena protocol (warm-up, synchronised repeats,
median).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def params_m(model: Any) -> float:
    """Trainable and frozen parameters in millions: ``num_parameters()`` when the model has it, else the sum of
    ``numel`` over ``model.parameters()`` (shared parameters counted once)."""
    if hasattr(model, "num_parameters"):
        return model.num_parameters() / 1e6
    return sum(p.numel() for p in model.parameters()) / 1e6


def flops_per_step(step: Callable[..., Any], example_inputs: Any) -> float:
    """Floating-point operations of one call ``step(*example_inputs)``, counted by ``torch.utils.flop_counter``.

    The counter counts the ops it has formulas for (matmuls, convolutions, attention; 2 FLOPs per multiply-add) and
    nothing else: FFTs and elementwise ops are free to it, so a spectral or persistence model reads low. Runs under
    ``torch.no_grad()``.

    Args:
        step: one model step, e.g. ``model`` or ``lambda x: model.rollout(x, 1)``.
        example_inputs: a tuple of positional arguments, or a single tensor.
    """
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        step(*args)
    return float(counter.get_total_flops())


def peak_mem_mb(device: torch.device | str) -> float:
    """Peak memory in MiB: CUDA ``max_memory_allocated`` on a GPU, else the process's peak resident set size."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def _sync(device: torch.device) -> None:
    torch.cuda.synchronize(device)


def _nvml_handle(pynvml: Any, device: torch.device) -> Any:
    """The NVML handle of a CUDA device, found by PCI bus id (CUDA and NVML may number devices differently)."""
    props = torch.cuda.get_device_properties(device)
    bus_id = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    return pynvml.nvmlDeviceGetHandleByPciBusId_v2(bus_id)


def joules_per_step(
    step: Callable[[], Any], *, device: torch.device | str, min_seconds: float = 1.0, warmup: int = 1
) -> float | None:
    """Energy of one ``step()`` in joules from the GPU's NVML energy counter; ``None`` where there is no counter.

    ``None`` (not applicable) on a CPU device, when ``pynvml`` is not installed (it is not a dependency), or when the
    GPU has no total-energy counter (before Volta). The counter (millijoules since driver load) is read before and
    after as many synchronised calls as fit in ``min_seconds`` (at least one): its refresh period is tens of
    milliseconds, so a single short step would read 0. Includes the GPU's idle power over that time.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    try:
        import pynvml
    except ImportError:
        return None
    pynvml.nvmlInit()
    try:
        handle = _nvml_handle(pynvml, device)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except pynvml.NVMLError:
            return None
        for _ in range(warmup):
            step()
        _sync(device)
        start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        start, n_steps = time.perf_counter(), 0
        while n_steps == 0 or time.perf_counter() - start < min_seconds:
            step()
            n_steps += 1
            _sync(device)
        end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    finally:
        pynvml.nvmlShutdown()
    return (end_mj - start_mj) / 1000.0 / n_steps
