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


def test_distance_bias_is_minus_half_squared_periodic_distance_over_width_squared():
    anchors = token_anchors((8,), token_order((8,)))  # centres (j + 0.5) / 8
    dec = AnyPointDecoder(8, 1, anchors, hidden_dim=16, num_layers=1, num_heads=2, local_bias=True)
    first = dec.distance_bias(torch.tensor([[0.99]]))[0]  # [h, 1, 8]
    # widths start at 1 and 2 token spacings (1/8, 2/8); anchor 0 (0.0625) is 0.0725 away across the periodic seam
    d = torch.tensor(0.0725)
    assert first.shape == (2, 1, 8)
    torch.testing.assert_close(first[0, 0, 0], -0.5 * d**2 / (1 / 8) ** 2)
    torch.testing.assert_close(first[1, 0, 0], -0.5 * d**2 / (2 / 8) ** 2)
    walls = AnyPointDecoder(8, 1, anchors, hidden_dim=16, num_layers=1, num_heads=2, local_bias=True, periodic=False)
    far = torch.tensor(0.99 - 0.0625)  # no wrap between walls
    torch.testing.assert_close(walls.distance_bias(torch.tensor([[0.99]]))[0][0, 0, 0], -0.5 * far**2 / (1 / 8) ** 2)


def test_local_bias_makes_an_untrained_decoder_read_the_nearest_tokens():
    """A change to one token moves the decoded field near that token's anchor, not across the domain (at init)."""
    anchors = token_anchors((16,), token_order((16,)))
    q = (torch.arange(64, dtype=torch.float32)[:, None] + 0.5) / 64
    z = torch.randn(1, 16, 8)
    bumped = z.clone()
    bumped[0, 3] += 5.0  # token 3: anchor 0.22, points 12-15

    def response(local: bool) -> torch.Tensor:
        torch.manual_seed(0)
        dec = AnyPointDecoder(8, 1, anchors, hidden_dim=16, num_layers=1, num_heads=2, local_bias=local).eval()
        with torch.no_grad():
            return (dec(bumped, q) - dec(z, q)).abs()[0, :, 0]

    local, flat = response(True), response(False)
    near, far = slice(12, 16), slice(40, 48)  # the bumped token's points; half a domain away
    assert local[near].mean() > 20 * local[far].mean()
    assert flat[near].mean() < 3 * flat[far].mean()  # without the prior every point reads every token alike
