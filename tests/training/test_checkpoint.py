"""Checkpoints round-trip model, EMA, optimizer and RNG state exactly, without pickle, and fail in one line."""

import random

import numpy as np
import pytest
import torch

from ups.errors import UserInputError
from ups.training.checkpoint import Checkpoint, capture_rng, load_checkpoint, restore_rng, save_checkpoint


def trained_pair():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
    return model, opt


def test_round_trip_resumes_bitwise(tmp_path):
    model, opt = trained_pair()
    ckpt = Checkpoint(
        model=model.state_dict(), meta={"cls": "mlp"}, step=3, state={"epoch": 1}, optimizer=opt.state_dict(),
        ema={k: v * 0.5 for k, v in model.state_dict().items()}, rng=capture_rng(),
    )  # fmt: skip
    save_checkpoint(tmp_path / "ckpt", ckpt)
    expected = [torch.randn(3) for _ in range(2)], np.random.rand(2), random.random()

    back = load_checkpoint(tmp_path / "ckpt")
    assert back.step == 3 and back.state == {"epoch": 1} and back.meta == {"cls": "mlp"}
    model2 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model2.load_state_dict(back.model)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2, betas=(0.9, 0.95))
    opt2.load_state_dict(back.optimizer)
    restore_rng(back.rng)
    got = [torch.randn(3) for _ in range(2)], np.random.rand(2), random.random()
    assert all(torch.equal(a, b) for a, b in zip(expected[0], got[0], strict=True))
    assert np.array_equal(expected[1], got[1]) and expected[2] == got[2]
    # one more identical optimizer step on both gives bitwise-identical weights
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(back.ema[k], v) for k, v in ckpt.ema.items())


def test_overwrite_is_atomic_and_keeps_one_copy(tmp_path):
    model, _ = trained_pair()
    save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=1))
    save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=2))
    assert load_checkpoint(tmp_path / "ckpt").step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("damage", ["missing", "truncated", "pickle"])
def test_bad_checkpoint_is_one_line(tmp_path, damage):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=1))
    if damage == "missing":
        (path / "state.json").unlink()
    elif damage == "truncated":
        data = (path / "tensors.safetensors").read_bytes()
        (path / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    else:  # a pickle renamed to look like a checkpoint is rejected, never unpickled
        torch.save(model.state_dict(), path / "tensors.safetensors")
    with pytest.raises(UserInputError, match="checkpoint"):
        load_checkpoint(path)
