"""PDE-Transformer block: AdaLN-Zero identity at initialisation, conditioning, channel attention, stochastic depth."""

import torch

from ups.core.blocks import DropPath, PDETBlock


def test_adaln_zero_block_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    block = PDETBlock(16, 2, 4, channel_attention=True, cond_dim=8, shift=True)
    x, c = torch.randn(2, 3, 12, 16), torch.randn(2, 8)
    assert torch.equal(block(x, c), x)


def test_conditioning_changes_the_output_once_the_modulation_is_trained():
    torch.manual_seed(0)
    block = PDETBlock(16, 2, 4, cond_dim=8)
    torch.nn.init.normal_(block.modulation.linear.weight, std=0.1)
    x = torch.randn(2, 1, 8, 16)
    c1, c2 = torch.randn(2, 8), torch.randn(2, 8)
    assert not torch.allclose(block(x, c1), block(x, c2))
    assert not torch.allclose(block(x, c1), x)


def test_block_without_adaln_is_a_plain_pre_norm_block():
    block = PDETBlock(16, 2, 4, cond_dim=None)
    assert block.modulation is None
    assert all(n.elementwise_affine for n in block.norms)
    x = torch.randn(1, 1, 8, 16)
    assert not torch.allclose(block(x), x)


def test_channel_attention_mixes_streams_only_when_enabled():
    torch.manual_seed(0)
    for enabled in (False, True):
        block = PDETBlock(16, 2, 4, channel_attention=enabled).eval()
        x = torch.randn(1, 2, 8, 16)
        y = x.clone()
        y[:, 1] += 1.0
        mixed = not torch.allclose(block(x)[:, 0], block(y)[:, 0])
        assert mixed == enabled


def test_drop_path_drops_whole_samples_in_training_only():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(64, 3, 5)
    out = dp.train()(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == 0).all(1).any() and (per_sample == 2).all(1).any()
    assert torch.equal(dp.eval()(x), x)
