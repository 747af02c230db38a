"""Conditioner: Δt, PDE parameters on a log scale, boundary type."""

import pytest
import torch

from ups.core.conditioning import BC_KINDS, Conditioner


def _cond(**kw):
    torch.manual_seed(0)
    return Conditioner(16, use_dt=True, param_indices=(0,), use_bc=True, **kw)


@pytest.mark.parametrize("learned", [True, False])
def test_each_input_changes_the_conditioning_vector(learned):
    cond = _cond(learned_fourier=learned)
    dt, p, bc = torch.tensor([0.1]), torch.tensor([[0.01]]), torch.tensor([0])
    base = cond(1, dt=dt, params=p, bc=bc)
    assert base.shape == (1, 16)
    assert not torch.allclose(base, cond(1, dt=dt * 2, params=p, bc=bc))
    assert not torch.allclose(base, cond(1, dt=dt, params=p * 2, bc=bc))
    assert not torch.allclose(base, cond(1, dt=dt, params=p, bc=torch.tensor([BC_KINDS.index("neumann")])))
    assert isinstance(cond.dt.frequencies, torch.nn.Parameter) == learned


def test_missing_inputs_are_reported():
    with pytest.raises(ValueError, match="dt"):
        _cond()(1, params=torch.ones(1, 1), bc=torch.zeros(1, dtype=torch.long))


def test_only_the_selected_parameter_columns_are_embedded():
    cond = Conditioner(8, use_dt=False, param_indices=(1,), use_bc=False)
    p = torch.tensor([[1.0, 2.0]])
    q = torch.tensor([[5.0, 2.0]])
    assert torch.equal(cond(1, params=p), cond(1, params=q))
