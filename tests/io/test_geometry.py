"""Token grids, Morton order, anchors, Fourier features."""

import pytest
import torch

from ups.io.geometry import displacement, fourier_features, token_anchors, token_grid_shape, token_order


def test_token_grid_follows_the_grid_aspect_ratio():
    assert token_grid_shape(512, (64, 64)) in {(16, 32), (32, 16)}
    assert token_grid_shape(32, (128, 32)) == (16, 2) or token_grid_shape(32, (128, 32)) == (8, 4)
    assert token_grid_shape(48, (256,)) == (48,)


def test_tiling_requires_whole_patches_per_axis():
    assert token_grid_shape(512, (64, 64), tile=True) in {(16, 32), (32, 16)}
    assert token_grid_shape(512, (256,), tile=True) == (512,)
    with pytest.raises(ValueError, match="cannot tile"):
        token_grid_shape(7, (64, 64), tile=True)
    with pytest.raises(ValueError, match="cannot tile"):
        token_grid_shape(48, (256,), tile=True)


def test_morton_order_makes_runs_of_consecutive_tokens_compact_blocks():
    order = token_order((4, 8))
    rows, cols = order // 8, order % 8
    for size, (h, w) in [(2, (1, 2)), (4, (2, 2)), (8, (2, 4)), (16, (4, 4))]:
        for start in range(0, 32, size):
            r, c = rows[start : start + size], cols[start : start + size]
            assert (r.max() - r.min() + 1, c.max() - c.min() + 1) == (h, w)
    assert sorted(order.tolist()) == list(range(32))
    assert torch.equal(token_order((3, 5)), torch.arange(15))  # not powers of two: row-major


def test_anchors_are_cell_centres_in_sequence_order():
    order = token_order((2, 2))
    anchors = token_anchors((2, 2), order)
    assert anchors.shape == (4, 2)
    assert set(map(tuple, anchors.tolist())) == {(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)}


def test_periodic_fourier_features_wrap_and_walled_ones_stay_unique():
    f = torch.tensor([1.0, 2.0])
    x = torch.tensor([[0.0], [1.0], [0.3]])
    per = fourier_features(x, f, periodic=True)
    assert per.shape == (3, 4)
    torch.testing.assert_close(per[0], per[1], atol=1e-6, rtol=0)
    walled = fourier_features(x, f, periodic=False)
    assert not torch.allclose(walled[0], walled[1])


def test_periodic_displacement_is_the_minimum_image():
    d = displacement(torch.tensor([0.9, -0.9, 0.2]), periodic=True)
    torch.testing.assert_close(d, torch.tensor([-0.1, 0.1, 0.2]))
