"""GridDecoder: the inverse layout of the GridEncoder — each token decodes exactly onto the cells it was read from."""

import pytest
import torch

from ups.io.dec_grid import GridDecoder
from ups.io.enc_grid import GridEncoder

CASES = [
    ((256,), 32, 1, False),  # 8 cells merge into a token
    ((256,), 64, 2, False),  # patches of 2, 2 patches per token
    ((16,), 32, 1, False),  # a cell splits into 2 tokens
    ((32, 32), 64, 1, False),  # Morton-ordered 8x8 tokens, 4x4 cells each
    ((16, 16), 64, 4, False),  # one 4x4 patch per token
    ((8, 8), 256, 1, False),  # each cell splits into 2x2 tokens
    ((32, 32), 64, 2, True),  # channel-separated streams
]


def footprint(enc: GridEncoder, u: torch.Tensor, token: int) -> torch.Tensor:
    """Grid cells (row-major, channel 0) whose value the encoder's ``token`` reads."""
    z = enc(u)
    flat = u.reshape(1, u.shape[1], -1)
    out = torch.zeros(flat.shape[-1], dtype=torch.bool)
    for i in range(flat.shape[-1]):
        v = flat.clone()
        v[0, 0, i] += 1.0
        out[i] = (enc(v.reshape(u.shape))[:, token] - z[:, token]).abs().sum() > 0
    return out


@pytest.mark.parametrize(("grid", "tokens", "patch", "separated"), CASES)
def test_each_token_decodes_onto_the_cells_it_encodes(grid, tokens, patch, separated):
    torch.manual_seed(0)
    enc = GridEncoder(2, grid, 8, tokens, patch_size=patch, channel_separated=separated)
    dec = GridDecoder(enc, 2, 8, 8)
    u = torch.randn(1, 2, *grid)
    z = enc(u)
    out = dec(z)
    assert out.shape == (1, u[0, 0].numel(), 2)
    for token in (0, 3, z.shape[1] // enc.n_streams - 1):
        z2 = z.clone()
        z2[:, token] += torch.linspace(-1.0, 1.0, z.shape[-1])  # not constant: the LayerNorm would remove it
        moved = (dec(z2) - out).abs()
        assert torch.equal(moved[0, :, 0] > 0, footprint(enc, u, token)), token
        if separated:
            assert moved[0, :, 1].max() == 0  # the other channel's stream is untouched


def test_it_decodes_the_task_grid_only():
    enc = GridEncoder(1, (64,), 8, 16)
    dec = GridDecoder(enc, 1, 8, 8)
    z = torch.randn(2, 16, 8)
    assert torch.equal(dec(z), dec(z, torch.rand(64, 1)))
    with pytest.raises(ValueError, match="task grid points only"):
        dec(z, torch.rand(10, 1))
