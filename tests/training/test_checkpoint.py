"""Checkpoints round-trip model, EMA, optimizer and RNG state exactly, without pickle, and fail in one line."""

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ups.errors import UserInputError
from ups.training.checkpoint import (
    Checkpoint,
    capture_rng,
    load_checkpoint,
    recover_checkpoint,
    restore_rng,
    save_checkpoint,
)


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


def test_a_flipped_tensor_byte_is_one_line_naming_the_file(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=1))
    data = bytearray((path / "tensors.safetensors").read_bytes())
    data[-3] ^= 0x01  # the last weight's bytes: the file still parses, one value changed
    (path / "tensors.safetensors").write_bytes(bytes(data))
    with pytest.raises(UserInputError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"checkpoint {path}: tensors.safetensors does not match the sha256 in state.json "
        f"({json.loads((path / 'state.json').read_text())['tensors_sha256'][:12]}); the file was modified or corrupted"
    )


def test_a_checkpoint_without_a_recorded_hash_still_loads(tmp_path):
    """Checkpoints written before ``tensors_sha256`` existed (the committed champions) load unchecked."""
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={"cls": "mlp"}, step=4))
    state = json.loads((path / "state.json").read_text())
    del state["tensors_sha256"]
    (path / "state.json").write_text(json.dumps(state))
    back = load_checkpoint(path)
    assert back.step == 4 and "tensors_sha256" not in back.state
    assert all(torch.equal(back.model[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("task", ["burgers1d", "diffreact2d", "euler1d", "ns2d"])
def test_the_committed_champion_checkpoints_still_load(task, seed):
    path = Path(__file__).parents[2] / "champions" / "small" / f"{task}.ckpt" / f"s{seed}"
    if not path.is_dir():
        pytest.skip(f"no champion checkpoint {path}")
    assert load_checkpoint(path).model


def test_a_kill_between_the_two_renames_leaves_a_recoverable_copy(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=1))
    old = tmp_path / ".ckpt.old"
    os.replace(path, old)  # the first rename of the next save happened; the kill came before the second
    assert recover_checkpoint(path) == path and load_checkpoint(path).step == 1 and not old.exists()
    assert recover_checkpoint(tmp_path / "absent") is None


def test_saving_never_deletes_the_only_good_copy(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=1))
    os.replace(path, tmp_path / ".ckpt.old")  # only the old copy survived a crash
    save_checkpoint(path, Checkpoint(model=model.state_dict(), meta={}, step=2))
    assert load_checkpoint(path).step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_save_after_a_kill_mid_cleanup_or_mid_write_succeeds_and_clears_debris(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "ckpt", Checkpoint(model=model.state_dict(), meta={}, step=1))
    (tmp_path / ".ckpt.old").mkdir()  # a kill while the previous .old was being removed
    (tmp_path / ".ckpt.old" / "state.json").write_text("{}")
    (tmp_path / ".ckpt.tmp-abc123").mkdir()  # a kill while a temporary copy was being written
    save_checkpoint(path, Checkpoint(model=model.state_dict(), meta={}, step=2))
    assert load_checkpoint(path).step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
