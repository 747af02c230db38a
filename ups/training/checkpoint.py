"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint directory holds ``tensors.safetensors`` (model weights under ``model.*``, EMA weights under ``ema.*``,
optimizer state tensors under ``optim.<param index>.<key>``, the torch RNG state) and ``state.json`` (step, epoch,
stage, the model's config dump, optimizer hyper-parameters, scheduler state, numpy and Python RNG states, metrics).
Loading never unpickles, so a checkpoint from an untrusted source cannot run code.

Integrity: ``state.json`` records ``tensors_sha256``, the sha256 of the tensors file's bytes, and
:func:`load_checkpoint` compares it before it trusts a weight (a flipped byte in a weight would otherwise score NaN or,
worse, a plausible number). Checkpoints written before the field existed carry none and still load: the committed
champions under ``champions/`` are such checkpoints, and the harness pins each of them separately by a sha256 of the
whole directory (``ups.harness.champions.dir_sha256``).

Crash safety: a save writes a temporary sibling directory (files fsynced) and swaps it in with two renames,
``<name>`` → ``.<name>.old`` and temporary → ``<name>``, removing ``.<name>.old`` only once the new copy is in place. At
every instant one complete checkpoint exists under ``<name>`` or ``.<name>.old``; :func:`recover_checkpoint` puts the
old copy back when a kill fell between the two renames, and a save starts with it, so saving never deletes the only
good copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as dump_tensors

from ups.errors import UserInputError

TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """Everything needed to rebuild a model and resume its training exactly."""

    model: dict[str, torch.Tensor]
    meta: dict[str, Any]  # the model's own metadata (config dump, class name) to rebuild it
    step: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # epoch, stage, scheduler, metrics, ...
    ema: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None  # torch optimizer state_dict
    rng: dict[str, Any] | None = None  # capture_rng() output


def capture_rng() -> dict[str, Any]:
    """Torch, numpy and Python RNG states (CPU; CUDA when present)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(legacy=False),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for idx, per_param in opt_state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _jsonable_rng(rng: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": rng["torch"]}
    for i, s in enumerate(rng.get("cuda", [])):
        tensors[f"rng.cuda.{i}"] = s
    np_state = dict(rng["numpy"])  # MT19937: {"key": uint32[624], "pos": int}
    np_state["state"] = {k: v.tolist() if isinstance(v, np.ndarray) else int(v) for k, v in np_state["state"].items()}
    py_version, py_state, py_gauss = rng["python"]
    return tensors, {"numpy": np_state, "python": [py_version, list(py_state), py_gauss]}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` as a directory at ``path`` (atomic replace)."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in ckpt.model.items()}
    if ckpt.ema is not None:
        tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ckpt.ema.items()}
    state: dict[str, Any] = {"format_version": FORMAT_VERSION, "step": ckpt.step, "meta": ckpt.meta, **ckpt.state}
    if ckpt.optimizer is not None:
        opt_tensors, state["optimizer"] = _flatten_optimizer(ckpt.optimizer)
        tensors |= opt_tensors
    if ckpt.rng is not None:
        rng_tensors, state["rng"] = _jsonable_rng(ckpt.rng)
        tensors |= rng_tensors
    blob = dump_tensors(tensors)
    state["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        _write_synced(tmp / TENSORS, blob)
        _write_synced(tmp / STATE, json.dumps(state, indent=1, sort_keys=True).encode())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = _old(path)
    if _complete(path):
        shutil.rmtree(old, ignore_errors=True)  # a leftover of a kill mid-cleanup; ``path`` is the good copy
        os.replace(path, old)
    os.replace(tmp, path)
    _sync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)
    for debris in path.parent.glob(f".{path.name}.tmp-*"):  # temporaries of saves killed mid-write
        shutil.rmtree(debris, ignore_errors=True)
    return path


def recover_checkpoint(path: str | Path) -> Path | None:
    """Make ``path`` the last complete checkpoint again after a crash; return it, or None when there is none.

    A save killed between its two renames leaves only ``.<name>.old``: it is moved back to ``path``. Nothing else is
    touched, so a damaged ``path`` stays for :func:`load_checkpoint` to report.
    """
    path = Path(path)
    if _complete(path):
        return path
    old = _old(path)
    if not path.exists() and _complete(old):
        os.replace(old, path)
        _sync_dir(path.parent)
        return path
    return None


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _complete(path: Path) -> bool:
    return (path / TENSORS).is_file() and (path / STATE).is_file()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    """fsync a directory, so the renames in it survive a power loss (not only a killed process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory; a missing, malformed or corrupted one is a one-line :class:`UserInputError`.

    The tensors file is checked against the ``tensors_sha256`` its ``state.json`` records; a checkpoint that records
    none (written before the field existed) is read unchecked.
    """
    path = Path(path)
    if not _complete(path):
        raise UserInputError(f"checkpoint {path}: not found (expected {TENSORS} and {STATE})")
    try:
        state = json.loads((path / STATE).read_text())
        blob = (path / TENSORS).read_bytes()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserInputError(f"checkpoint {path}: unreadable ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise UserInputError(f"checkpoint {path}: unknown format_version {version!r}")
    expected = state.pop("tensors_sha256", None)
    if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
        raise UserInputError(
            f"checkpoint {path}: {TENSORS} does not match the sha256 in {STATE} "
            f"({str(expected)[:12]}); the file was modified or corrupted"
        )
    try:
        tensors = load_tensors(blob)
    except (SafetensorError, ValueError) as err:
        raise UserInputError(f"checkpoint {path}: unreadable ({str(err).splitlines()[0]})") from None
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optim": {}, "rng": {}}
    for name, value in tensors.items():
        prefix, rest = name.split(".", 1)
        groups[prefix][rest if prefix in ("model", "ema") else name] = value
    optimizer = _unflatten_optimizer(groups["optim"], state.pop("optimizer")) if "optimizer" in state else None
    rng = None
    if "rng" in state:
        rs = state.pop("rng")
        np_state = rs["numpy"]
        np_state["state"]["key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
        rng = {
            "torch": groups["rng"]["rng.torch"],
            "numpy": np_state,
            "python": (rs["python"][0], tuple(rs["python"][1]), rs["python"][2]),
        }
        cuda = [groups["rng"][k] for k in sorted(k for k in groups["rng"] if k.startswith("rng.cuda."))]
        if cuda:
            rng["cuda"] = cuda
    step = state.pop("step")
    meta = state.pop("meta")
    state.pop("format_version")
    return Checkpoint(
        model=groups["model"],
        meta=meta,
        step=step,
        state=state,
        ema=groups["ema"] or None,
        optimizer=optimizer,
        rng=rng,
    )
