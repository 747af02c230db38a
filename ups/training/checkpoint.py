"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint directory holds ``tensors.safetensors`` (model weights under ``model.*``, EMA weights under ``ema.*``,
optimizer state tensors under ``optim.<param index>.<key>``, the torch RNG state) and ``state.json`` (step, epoch,
stage, the model's config dump, optimizer hyper-parameters, scheduler state, numpy and Python RNG states, metrics).
Loading never unpickles, so a checkpoint from an untrusted source cannot run code.

Writes go to a temporary sibling directory that is renamed into place, so a run killed mid-write keeps its previous
checkpoint intact.
"""

from __future__ import annotations

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
from safetensors.torch import load_file, save_file

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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    save_file(tensors, str(tmp / TENSORS))
    (tmp / STATE).write_text(json.dumps(state, indent=1, sort_keys=True))
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory; a missing or malformed one is a one-line :class:`UserInputError`."""
    path = Path(path)
    if not (path / TENSORS).is_file() or not (path / STATE).is_file():
        raise UserInputError(f"checkpoint {path}: not found (expected {TENSORS} and {STATE})")
    try:
        tensors = load_file(str(path / TENSORS))
        state = json.loads((path / STATE).read_text())
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise UserInputError(f"checkpoint {path}: unreadable ({str(err).splitlines()[0]})") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise UserInputError(f"checkpoint {path}: unknown format_version {state.get('format_version')!r}")
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
