"""Staged, config-driven training: optimisation, checkpoints, guards.

Public API: :func:`train` (also ``ups train``), :func:`load_trained`, :func:`load_steady_prior`, :class:`TrainResult`
and :class:`TrainingAborted`. Submodules import lazily so that ``ups.training.checkpoint`` / ``optim`` stay cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainResult", "TrainingAborted", "load_steady_prior", "load_trained", "train"]

_EXPORTS = {
    "TrainResult": "ups.training.trainer",
    "train": "ups.training.trainer",
    "TrainingAborted": "ups.training.guards",
    "load_trained": "ups.training.state",
    "load_steady_prior": "ups.training.state",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ups.training' has no attribute {name!r}")
