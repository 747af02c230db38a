"""Window attention: shifted vs unshifted windows, padding and wrap-around masks, RoPE relativity."""

import torch

from ups.core.attention import Attention, WindowAttention, _segment_mask, apply_rope


def _attn(dim=16, heads=2, window=4, seed=0):
    torch.manual_seed(seed)
    return WindowAttention(dim, heads, window).eval()


def test_shifted_and_unshifted_windows_both_run_and_differ():
    attn = _attn()
    x = torch.randn(2, 16, 16)
    plain, shifted = attn(x, shift=False), attn(x, shift=True)
    assert plain.shape == shifted.shape == x.shape
    assert torch.isfinite(shifted).all()
    assert not torch.allclose(plain, shifted, atol=1e-4)


def test_unshifted_windows_are_independent():
    attn = _attn()
    x = torch.randn(1, 16, 16)
    y = x.clone()
    y[:, 12:] += 1.0  # change only the last window
    assert torch.equal(attn(x)[:, :12], attn(y)[:, :12])


def test_padding_is_masked_so_the_last_partial_window_sees_only_itself():
    attn = _attn()
    x = torch.randn(1, 10, 16)  # windows [0..3] [4..7] [8, 9] + 2 padded slots
    out = attn(x)
    alone = attn.attn(x[:, 8:10])  # plain attention over the two real tokens
    torch.testing.assert_close(out[:, 8:], alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[:, :8], attn(x[:, :8]), rtol=1e-5, atol=1e-6)


def test_shifted_windows_wrap_around_only_on_periodic_domains():
    attn = _attn()
    x = torch.randn(1, 16, 16)
    y = x.clone()
    y[:, -1] += 1.0  # the last token shares a shifted window with the first ones only through the wrap-around
    periodic = (attn(x, shift=True, periodic=True) - attn(y, shift=True, periodic=True))[:, 0].abs().max()
    walled = (attn(x, shift=True, periodic=False) - attn(y, shift=True, periodic=False))[:, 0].abs().max()
    assert periodic > 1e-4
    assert walled == 0


def test_no_mask_when_windows_tile_a_periodic_sequence():
    # no mask lets SDPA choose the flash kernel on GPU
    assert _segment_mask(32, 8, 4, True, torch.device("cpu")) is None
    assert _segment_mask(32, 8, 0, False, torch.device("cpu")) is None
    assert _segment_mask(30, 8, 0, True, torch.device("cpu")) is not None
    assert _segment_mask(32, 8, 4, False, torch.device("cpu")) is not None


def test_rope_scores_depend_on_relative_position_only():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 6, 8), torch.randn(1, 1, 6, 8)
    pos = torch.arange(6)
    a = apply_rope(q, pos) @ apply_rope(k, pos).transpose(-1, -2)
    b = apply_rope(q, pos + 5) @ apply_rope(k, pos + 5).transpose(-1, -2)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_qk_rmsnorm_has_one_gain_per_head_dimension_for_queries_and_keys():
    attn = Attention(16, 4, qk_norm=True)
    assert attn.q_norm.weight.shape == attn.k_norm.weight.shape == (4,)
    assert not any("norm" in n for n, _ in Attention(16, 4, qk_norm=False).named_parameters())
