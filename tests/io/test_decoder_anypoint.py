"""AnyPointDecoder: pointwise decoding, so chunking and query order do not change results."""

import torch

from ups.io.decoder_anypoint import AnyPointDecoder
from ups.io.geometry import token_anchors, token_order


def _decoder(**kw):
    torch.manual_seed(0)
    anchors = token_anchors((4, 4), token_order((4, 4)))
    return AnyPointDecoder(8, 3, anchors, hidden_dim=16, num_layers=2, num_heads=2, **kw).eval()


def test_chunked_decoding_equals_decoding_all_points_at_once():
    z, q = torch.randn(2, 16, 8), torch.rand(50, 2)
    whole = _decoder(query_chunk=1000)(z, q)
    chunked = _decoder(query_chunk=7)(z, q)
    assert whole.shape == (2, 50, 3)
    torch.testing.assert_close(whole, chunked, rtol=1e-5, atol=1e-6)


def test_each_point_is_decoded_independently_of_the_others():
    dec = _decoder()
    z, q = torch.randn(2, 16, 8), torch.rand(30, 2)
    perm = torch.randperm(30)
    torch.testing.assert_close(dec(z, q)[:, perm], dec(z, q[perm]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dec(z, q)[:, :5], dec(z, q[:5]), rtol=1e-5, atol=1e-6)
    per_sample = dec(z, q.expand(2, -1, -1))  # [B, Q, d] queries
    torch.testing.assert_close(per_sample, dec(z, q), rtol=1e-5, atol=1e-6)


def test_stream_embeddings_tell_channel_separated_tokens_apart():
    anchors = token_anchors((8,), token_order((8,)))
    dec = AnyPointDecoder(8, 2, anchors, n_streams=2, hidden_dim=16, num_heads=2)
    z = torch.randn(1, 16, 8)
    swapped = torch.cat([z[:, 8:], z[:, :8]], dim=1)
    q = torch.rand(10, 1)
    assert not torch.allclose(dec(z, q), dec(swapped, q))
