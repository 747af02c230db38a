"""PDE-Transformer backbone: zero increment at init, shift equivariance, U-shape, channel separation, checkpointing."""

import pytest
import torch

from ups.config.schema import PDETConfig
from ups.core.pdet import PDETransformer


def _cfg(**kw) -> PDETConfig:
    base = dict(input_dim=16, hidden_dim=16, depths=(2, 2, 2), u_stages=(1, 2, 4), group_size=4, num_heads=2)
    return PDETConfig(**(base | kw))


def _randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (including the zero-initialised AdaLN and output maps) a random value."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.2)
    return module.eval()


def test_increment_is_zero_at_initialisation():
    net = PDETransformer(_cfg(), cond_dim=8)
    z = torch.randn(2, 32, 16)
    assert torch.equal(net(z, torch.randn(2, 8)), torch.zeros_like(z))


@pytest.mark.parametrize("streams", [1, 3])
def test_shifting_the_tokens_by_whole_coarse_windows_shifts_the_output(streams):
    cfg = _cfg(channel_separated=streams > 1)
    net = _randomise(PDETransformer(cfg, n_streams=streams, cond_dim=8, periodic=True))
    n = 64  # tokens per stream; a whole window at the coarsest stage is group_size · 4 = 16 tokens
    z, c = torch.randn(2, streams * n, 16), torch.randn(2, 8)

    def roll(t, k):
        return torch.roll(t.unflatten(1, (streams, n)), k, dims=2).flatten(1, 2)

    out = net(z, c)
    torch.testing.assert_close(net(roll(z, 16), c), roll(out, 16), rtol=1e-4, atol=1e-4)
    # a one-token shift moves tokens across window borders: no equivariance, so the check above is not vacuous
    assert not torch.allclose(net(roll(z, 1), c), roll(out, 1), atol=1e-3)


def test_u_shape_splits_depth_between_down_and_up_paths():
    net = PDETransformer(_cfg(depths=(3, 2, 4)))
    assert [len(s) for s in net.down_stages] == [2, 1, 4]
    assert [len(s) for s in net.up_stages] == [1, 1]  # coarse to fine: stage 1 then stage 0
    assert sum(len(s) for s in [*net.down_stages, *net.up_stages]) == 9
    shifts = [b.shift for s in [*net.down_stages, *net.up_stages] for b in s]
    assert shifts == [i % 2 == 1 for i in range(9)]
    flat = PDETransformer(_cfg(u_shape=False))
    assert len(flat.down_stages) == 1 and len(flat.down_stages[0]) == 6 and not flat.merges


def test_sequences_that_are_not_whole_windows_are_padded():
    net = _randomise(PDETransformer(_cfg(group_size=8, u_stages=(1, 2, 4)), cond_dim=8, periodic=False))
    out = net(torch.randn(2, 20, 16), torch.randn(2, 8))  # stage token counts 20, 10, 5: all padded
    assert out.shape == (2, 20, 16) and torch.isfinite(out).all()


def test_activation_checkpointing_gives_the_same_gradients():
    cfg = _cfg(drop_path=0.0)
    a = _randomise(PDETransformer(cfg, cond_dim=8)).train()
    b = _randomise(PDETransformer(cfg, cond_dim=8, checkpointing=True)).train()
    z, c = torch.randn(2, 32, 16), torch.randn(2, 8)
    for net in (a, b):
        net(z, c).square().mean().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_stochastic_depth_rate_grows_with_depth():
    net = PDETransformer(_cfg(drop_path=0.2))
    rates = [b.drop_path.p for s in [*net.down_stages, *net.up_stages] for b in s]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
