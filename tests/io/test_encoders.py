"""GridEncoder and UPTEncoder: shapes on 1D/2D grids and point clouds, channel separation, neighbour graphs."""

import pytest
import torch

from ups.io.enc_grid import GridEncoder
from ups.io.enc_upt import UPTEncoder
from ups.io.geometry import token_anchors, token_order


@pytest.mark.parametrize(
    ("grid", "tokens", "patch", "merge", "split"),
    [
        ((64,), 16, 1, (4,), (1,)),
        ((64,), 32, 4, (1,), (2,)),
        ((16, 16), 16, 2, (2, 2), (1, 1)),
        ((8, 8), 32, 1, (1, 2), (1, 1)),
    ],
)
def test_grid_encoder_maps_any_tiling_grid_to_the_token_count(grid, tokens, patch, merge, split):
    enc = GridEncoder(2, grid, 8, tokens, patch_size=patch)
    z = enc(torch.randn(3, 2, *grid))
    assert z.shape == (3, tokens, 8)
    assert enc.merge == merge and enc.split == split


def test_channel_separated_grid_encoder_gives_one_stream_per_channel():
    enc = GridEncoder(3, (16, 16), 8, 16, patch_size=2, channel_separated=True)
    u = torch.randn(2, 3, 16, 16)
    z = enc(u)
    assert z.shape == (2, 3 * 16, 8) and enc.n_streams == 3
    v = u.clone()
    v[:, 1] += 1.0  # channel 1 only changes stream 1
    w = enc(v)
    assert torch.equal(z[:, :16], w[:, :16]) and torch.equal(z[:, 32:], w[:, 32:])
    assert not torch.allclose(z[:, 16:32], w[:, 16:32])


def test_grid_encoder_rejects_a_grid_that_is_not_whole_patches():
    with pytest.raises(ValueError, match="patches"):
        GridEncoder(1, (30,), 8, 15, patch_size=4)


def _upt(shape=(4, 4), **kw):
    torch.manual_seed(0)
    anchors = token_anchors(shape, token_order(shape))
    kw = {"supernodes": 32, "k": 8, "num_heads": 2} | kw
    return UPTEncoder(2, 16, anchors, **kw).eval()


@pytest.mark.parametrize("channel_separated", [False, True])
def test_upt_encoder_pools_point_clouds_into_a_fixed_token_count(channel_separated):
    enc = _upt(channel_separated=channel_separated)
    coords = torch.rand(100, 2)
    values = torch.randn(3, 100, 2)
    z = enc(coords, values)
    assert z.shape == (3, (2 if channel_separated else 1) * 16, 16)
    z_batched = enc(coords.expand(3, -1, -1), values)  # per-sample coordinates take the gather path
    torch.testing.assert_close(z, z_batched, rtol=1e-5, atol=1e-5)
    assert enc(torch.rand(57, 2), torch.randn(3, 57, 2)).shape == z.shape  # any number of points


def test_upt_supernodes_are_fixed_in_eval_and_random_in_training():
    enc = _upt()
    assert torch.equal(enc.select(100, torch.device("cpu")), enc.select(100, torch.device("cpu")))
    enc.train()
    draws = {tuple(enc.select(100, torch.device("cpu")).tolist()) for _ in range(3)}
    assert len(draws) > 1
    assert torch.equal(enc.select(20, torch.device("cpu")), torch.arange(20))  # fewer points than supernodes


def test_knn_neighbours_wrap_around_a_periodic_domain():
    x = torch.linspace(0, 1, 21)[:-1, None]  # 20 points, spacing 0.05
    sup = torch.tensor([[0.0]])
    per = _upt(shape=(4,), periodic=True, k=3)
    idx, valid = per.neighbours_of(sup, x)
    assert sorted(idx[0].tolist()) == [0, 1, 19] and valid.all()
    walled = _upt(shape=(4,), periodic=False, k=3)
    assert sorted(walled.neighbours_of(sup, x)[0][0].tolist()) == [0, 1, 2]


def test_radius_neighbours_drop_far_points_but_keep_the_supernode():
    enc = _upt(shape=(4,), neighbours="radius", radius=0.06, k=5)
    x = torch.linspace(0, 1, 21)[:-1, None]
    idx, valid = enc.neighbours_of(torch.tensor([[0.5]]), x)
    assert valid.sum() == 3  # 0.45, 0.5, 0.55
    _, lonely = enc.neighbours_of(torch.tensor([[0.5]]), torch.tensor([[0.5], [0.9]]))
    assert lonely.tolist() == [[True, False]]
