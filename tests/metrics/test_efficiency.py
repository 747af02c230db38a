"""Efficiency helpers: parameter count, counted FLOPs, peak memory, NVML energy (with a stand-in NVML library)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from ups.metrics import efficiency
from ups.metrics.efficiency import flops_per_step, joules_per_step, params_m, peak_mem_mb


def test_params_m_counts_shared_parameters_once():
    linear = torch.nn.Linear(10, 5)  # 50 weights + 5 biases
    assert params_m(linear) == pytest.approx(55e-6)
    assert params_m(torch.nn.Sequential(linear, torch.nn.ReLU(), linear)) == pytest.approx(55e-6)


def test_params_m_uses_the_surrogate_count_when_there_is_one():
    class Surrogate:
        def num_parameters(self) -> int:
            return 2_500_000

    assert params_m(Surrogate()) == 2.5


def test_flops_per_step_counts_two_flops_per_multiply_add():
    model = torch.nn.Linear(16, 8, bias=False)
    assert flops_per_step(model, torch.randn(4, 16)) == 2 * 4 * 16 * 8
    assert flops_per_step(lambda a, b: a @ b, (torch.randn(3, 5), torch.randn(5, 7))) == 2 * 3 * 5 * 7


def test_flops_per_step_does_not_build_a_graph():
    model = torch.nn.Linear(4, 4)
    out = []
    flops_per_step(lambda x: out.append(model(x)), torch.randn(2, 4))
    assert not out[0].requires_grad


def test_peak_mem_mb_on_cpu_is_the_process_peak_rss():
    assert peak_mem_mb("cpu") > 10.0  # a Python process with torch loaded


def test_joules_per_step_is_none_without_an_energy_counter(monkeypatch):
    assert joules_per_step(lambda: None, device="cpu") is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert joules_per_step(lambda: None, device="cuda:0") is None


class _FakeNVML(types.ModuleType):
    """Stand-in for pynvml: a total-energy counter in millijoules that each model step advances by 250 mJ."""

    class NVMLError(Exception):
        pass

    def __init__(self, supported: bool = True):
        super().__init__("pynvml")
        self.energy_mj, self.supported, self.calls = 1_000_000, supported, []

    def nvmlInit(self):  # noqa: N802 (the library's names)
        self.calls.append("init")

    def nvmlShutdown(self):  # noqa: N802
        self.calls.append("shutdown")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        if not self.supported:
            raise self.NVMLError("not supported")
        return self.energy_mj


@pytest.mark.parametrize("supported", [True, False])
def test_joules_per_step_reads_the_counter_around_the_steps(monkeypatch, supported):
    nvml = _FakeNVML(supported)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(efficiency, "_nvml_handle", lambda pynvml, device: "handle")
    monkeypatch.setattr(efficiency, "_sync", lambda device: None)

    def step() -> None:
        nvml.energy_mj += 250

    joules = joules_per_step(step, device="cuda:0", min_seconds=0.05, warmup=2)
    assert joules == (pytest.approx(0.25) if supported else None)
    assert nvml.calls == ["init", "shutdown"]
