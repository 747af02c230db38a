"""Physics guards: the Hodge projection really removes the divergence (measured by the metric's own operator),
positify keeps the integral, and the interface projection meets every budget by interface fluxes only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ups.metrics import divergence
from ups.models.physics_guards import (
    helmholtz_hodge_projection_grid,
    interface_flux_projection,
    positify,
    subdomain_integrals,
)

GRIDS = [((16, 12), (1 / 16, 0.1)), ((7, 6, 5), (0.3, 0.2, 0.1)), ((10,), (0.1,)), ((9, 8), (1.0, 1.0))]
BCS = ["periodic", "walls"]


def rms(x: np.ndarray | torch.Tensor) -> float:
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    return float(np.sqrt(np.mean(np.square(x))))


def random_velocity(grid, seed: int, batch: tuple[int, ...] = (3,), dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, len(grid), *grid, generator=gen, dtype=dtype)


@settings(deadline=None, max_examples=25)
@given(case=st.sampled_from(GRIDS), bc=st.sampled_from(BCS), seed=st.integers(0, 2**31 - 1))
def test_projection_leaves_divergence_at_roundoff_and_is_idempotent(case, bc, seed):
    grid, spacing = case
    u = random_velocity(grid, seed)
    v = helmholtz_hodge_projection_grid(u, spacing=spacing, bc=bc)
    assert v.shape == u.shape and v.dtype == u.dtype
    before = rms(divergence(u.numpy(), spacing=spacing, bc=bc))
    after = rms(divergence(v.numpy(), spacing=spacing, bc=bc))
    assert after < 1e-12 * before  # the metric's own operator, not the guard's
    again = helmholtz_hodge_projection_grid(v, spacing=spacing, bc=bc)
    assert rms(again - v) < 1e-13 * rms(u)


@settings(deadline=None, max_examples=15)
@given(case=st.sampled_from(GRIDS), bc=st.sampled_from(BCS), seed=st.integers(0, 2**31 - 1))
def test_projection_is_orthogonal(case, bc, seed):
    # ⟨Pu, u − Pu⟩ = 0 (on the mirror-extended grid for walls, which weighs every cell of the box equally)
    grid, spacing = case
    u = random_velocity(grid, seed)
    v = helmholtz_hodge_projection_grid(u, spacing=spacing, bc=bc)
    assert abs(float((v * (u - v)).sum())) < 1e-11 * float((u * u).sum())


def periodic_decomposition(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """u = ∇φ + curl ψ on the periodic unit square with band-limited φ, ψ; returns (u, curl ψ)."""
    x = torch.arange(n, dtype=torch.float64) / n
    x, y = torch.meshgrid(x, x, indexing="ij")
    tau = 2 * math.pi
    # φ = sin(2πx) cos(4πy) + cos(6πy);  ψ = sin(2πx) sin(2πy) + cos(4πx)
    grad = torch.stack(
        [
            tau * torch.cos(tau * x) * torch.cos(2 * tau * y),
            -2 * tau * torch.sin(tau * x) * torch.sin(2 * tau * y) - 3 * tau * torch.sin(3 * tau * y),
        ]
    )
    curl = torch.stack(  # (∂y ψ, −∂x ψ)
        [
            tau * torch.sin(tau * x) * torch.cos(tau * y),
            -(tau * torch.cos(tau * x) * torch.sin(tau * y) - 2 * tau * torch.sin(2 * tau * x)),
        ]
    )
    return grad + curl, curl


def test_periodic_projection_recovers_the_curl_part_of_an_analytic_field():
    u, curl = periodic_decomposition()
    v = helmholtz_hodge_projection_grid(u, spacing=(1 / 32, 1 / 32))
    assert torch.allclose(v, curl, atol=1e-11)
    assert torch.allclose(helmholtz_hodge_projection_grid(curl, spacing=(1 / 32, 1 / 32)), curl, atol=1e-11)


def _mirror_np(x: np.ndarray, axis: int, odd: bool) -> np.ndarray:
    return np.concatenate([x, -np.flip(x, axis) if odd else np.flip(x, axis)], axis=axis)


def _central_np(x: np.ndarray, axis: int, h: float) -> np.ndarray:
    return (np.roll(x, -1, axis) - np.roll(x, 1, axis)) / (2 * h)


def test_walled_projection_recovers_the_discrete_curl_part():
    # on the mirror-extended grid: ψ odd about every wall (its curl has no normal component), φ even (∂φ/∂n = 0)
    rng = np.random.default_rng(0)
    n, m, hx, hy = 10, 8, 0.1, 0.2
    psi = _mirror_np(_mirror_np(rng.normal(size=(n, m)), 0, True), 1, True)
    phi = _mirror_np(_mirror_np(rng.normal(size=(n, m)), 0, False), 1, False)
    curl = np.stack([_central_np(psi, 1, hy), -_central_np(psi, 0, hx)])[:, :n, :m]
    grad = np.stack([_central_np(phi, 0, hx), _central_np(phi, 1, hy)])[:, :n, :m]
    u = torch.from_numpy(curl + grad)
    v = helmholtz_hodge_projection_grid(u, spacing=(hx, hy), bc="walls")
    np.testing.assert_allclose(v.numpy(), curl, atol=1e-12)
    removed = helmholtz_hodge_projection_grid(torch.from_numpy(grad), spacing=(hx, hy), bc="walls")
    assert rms(removed) < 1e-13 * rms(grad)


def test_a_divergence_free_field_is_left_unchanged():
    u, curl = periodic_decomposition(16)
    assert torch.allclose(helmholtz_hodge_projection_grid(curl, spacing=(1 / 16, 1 / 16)), curl, atol=1e-12)
    # and the mean flow is kept (a uniform velocity is divergence-free on a periodic domain)
    uniform = torch.ones(2, 8, 8, dtype=torch.float64) * torch.tensor([1.5, -0.5], dtype=torch.float64)[:, None, None]
    assert torch.allclose(helmholtz_hodge_projection_grid(uniform, spacing=(0.1, 0.1)), uniform, atol=1e-14)


def test_float32_input_is_projected_in_float32_and_batched():
    u = random_velocity((16, 16), seed=1, batch=(2, 3), dtype=torch.float32)
    v = helmholtz_hodge_projection_grid(u, spacing=(0.1, 0.1), bc="walls")
    assert v.dtype == torch.float32 and v.shape == u.shape
    assert rms(divergence(v.double().numpy(), spacing=(0.1, 0.1), bc="walls")) < 1e-5 * rms(
        divergence(u.double().numpy(), spacing=(0.1, 0.1), bc="walls")
    )


def test_projection_rejects_bad_input():
    with pytest.raises(ValueError, match="D = 2 components"):
        helmholtz_hodge_projection_grid(torch.zeros(3, 8, 8), spacing=(0.1, 0.1))
    with pytest.raises(ValueError, match="unknown boundary condition"):
        helmholtz_hodge_projection_grid(torch.zeros(2, 8, 8), spacing=(0.1, 0.1), bc="slip")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bc", BCS)
def test_guards_run_on_cuda_and_match_the_cpu(bc):
    u = random_velocity((32, 24), seed=2)
    cpu = helmholtz_hodge_projection_grid(u, spacing=(0.1, 0.2), bc=bc)
    gpu = helmholtz_hodge_projection_grid(u.cuda(), spacing=(0.1, 0.2), bc=bc)
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-12)
    x = torch.randn(4, 16, 16, dtype=torch.float64) + 1.0
    assert torch.allclose(positify(x.cuda(), dims=(-2, -1)).cpu(), positify(x, dims=(-2, -1)), atol=1e-14)
    labels = blocks()
    field = torch.randn(2, 8, 8, dtype=torch.float64)
    target = subdomain_integrals(field, labels, 4) + 1.0
    out = interface_flux_projection(field.cuda(), labels=labels.cuda(), target=target.cuda())
    assert torch.allclose(subdomain_integrals(out.cpu(), labels, 4), target, atol=1e-12)


# --- positify -------------------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(0.0, 2.0), volume=st.floats(1e-3, 10.0))
def test_positify_is_non_negative_and_keeps_the_integral(seed, shift, volume):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 3, 10, 8, generator=gen, dtype=torch.float64) + shift
    x = x + torch.clamp(-(x.sum(dim=(-2, -1), keepdim=True)) / 80 + 1e-3, min=0)  # every slice integral > 0
    out = positify(x, cell_volume=volume, dims=(-2, -1))
    assert bool((out >= 0).all())
    torch.testing.assert_close((out * volume).sum((-2, -1)), (x * volume).sum((-2, -1)), rtol=1e-12, atol=1e-12)


def test_positify_leaves_a_non_negative_field_unchanged_and_empty_cells_empty():
    x = torch.tensor([[0.0, 1.0, 2.0, 0.0]], dtype=torch.float64)
    assert torch.equal(positify(x, dims=(-1,)), x)
    y = torch.tensor([[0.0, -1.0, 3.0, 2.0]], dtype=torch.float64)  # integral 4; positive part 5 -> scale 4/5
    out = positify(y, dims=(-1,))
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 2.4, 1.6]], dtype=torch.float64))


def test_positify_with_non_uniform_cells_keeps_the_weighted_integral():
    x = torch.tensor([[-1.0, 2.0, 3.0]], dtype=torch.float64)
    volume = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    out = positify(x, cell_volume=volume, dims=(-1,))
    assert float((out * volume).sum()) == pytest.approx(float((x * volume).sum()), rel=1e-15)


def test_positify_of_a_negative_integral_warns_and_returns_zeros():
    x = torch.tensor([[-3.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="negative integral"):
        out = positify(x, dims=(-1,))
    assert torch.equal(out[0], torch.zeros(2, dtype=torch.float64)) and torch.equal(out[1], x[1])


# --- interface_flux_projection --------------------------------------------------------------------------------------


def blocks(n: int = 8, size: int = 4) -> torch.Tensor:
    """An n × n grid split into (n / size)² square subdomains."""
    i = torch.arange(n) // size
    return i[:, None] * (n // size) + i[None, :]


def test_every_subdomain_gets_its_budget_and_the_total_is_conserved_when_balanced():
    labels = blocks()
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(3, 8, 8, generator=gen, dtype=torch.float64)
    q = subdomain_integrals(u, labels, 4, cell_volume=0.25)
    move = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    target = q + move - move.mean(-1, keepdim=True)  # mass moves between subdomains, the total stays
    out = interface_flux_projection(u, labels=labels, target=target, cell_volume=0.25)
    torch.testing.assert_close(subdomain_integrals(out, labels, 4, cell_volume=0.25), target, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.sum((-2, -1)), u.sum((-2, -1)), rtol=0, atol=1e-12)
    # only cells on an interface change (the block interiors and the outer ring away from the cuts are untouched)
    on_interface = torch.zeros(8, 8, dtype=torch.bool)
    on_interface[3:5, :] = True
    on_interface[:, 3:5] = True
    assert float((out - u)[:, ~on_interface].abs().max()) < 1e-14
    assert float((out - u)[:, on_interface].abs().max()) > 1e-3


def test_unbalanced_budgets_add_the_difference_uniformly_then_move_the_rest():
    labels = blocks()
    u = torch.zeros(1, 8, 8, dtype=torch.float64)
    target = torch.tensor([[16.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # total +16 over 64 cells
    out = interface_flux_projection(u, labels=labels, target=target)
    torch.testing.assert_close(subdomain_integrals(out, labels, 4), target, rtol=0, atol=1e-12)
    assert float(out.sum()) == pytest.approx(16.0)
    # a single subdomain: the minimal L2 correction of the total is the uniform shift
    whole = torch.zeros(8, 8, dtype=torch.long)
    shifted = interface_flux_projection(u, labels=whole, target=torch.tensor([[6.4]], dtype=torch.float64))
    torch.testing.assert_close(shifted, torch.full_like(u, 0.1))


def test_interface_projection_is_idempotent_and_leaves_a_field_on_budget_alone():
    labels = blocks(12, 4)
    u = torch.randn(2, 12, 12, dtype=torch.float64)
    target = subdomain_integrals(u, labels, 9) + torch.linspace(-1, 1, 9, dtype=torch.float64)
    once = interface_flux_projection(u, labels=labels, target=target)
    twice = interface_flux_projection(once, labels=labels, target=target)
    assert float((twice - once).abs().max()) < 1e-13
    on_budget = interface_flux_projection(u, labels=labels, target=subdomain_integrals(u, labels, 9))
    assert float((on_budget - u).abs().max()) < 1e-13


def test_periodic_interfaces_include_the_seam():
    labels = (torch.arange(8) >= 4).long()[None, :].repeat(6, 1)  # left and right halves of a 6 × 8 periodic grid
    u = torch.zeros(6, 8, dtype=torch.float64)
    target = torch.tensor([1.2, -1.2], dtype=torch.float64)
    out = interface_flux_projection(u, labels=labels, target=target, periodic=True)
    torch.testing.assert_close(subdomain_integrals(out, labels, 2), target, rtol=0, atol=1e-12)
    assert float(out[:, 0].abs().max()) > 0 and float(out[:, 7].abs().max()) > 0  # the seam carries half the flux
    torch.testing.assert_close(out[:, 3], out[:, 0])


def test_interface_projection_checks_its_inputs():
    with pytest.raises(ValueError, match="labels must lie in"):
        interface_flux_projection(torch.zeros(4, 4), labels=blocks(4, 2) + 1, target=torch.zeros(4))
    with pytest.raises(ValueError, match="need u"):
        interface_flux_projection(torch.zeros(4, 4), labels=blocks(4, 2), target=torch.zeros(2, 4))
