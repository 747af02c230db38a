"""Generic split types shared by every task generator and the store.

A dataset is a ``dict[str, SplitData]`` keyed by split name (``train``, ``val``, ``test``, ``ood_*``). Splits are frozen
by the generator's seed and disjoint by construction: every trajectory has one global id, drawn once from one seeded
stream, and each id belongs to exactly one split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from ups.data.spec import TaskSpec
from ups.errors import UserInputError

#: In-distribution splits every task has, in canonical order; ``ood_*`` splits follow.
CORE_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitData:
    """One split of a dataset, in memory.

    Attributes:
        fields: field name → float32 array ``[traj, time, *space]``.
        params: float32 ``[traj, n_params]``, columns in ``TaskSpec.param_names`` order.
        ids: int64 ``[traj]``, global trajectory ids (unique across all splits of a dataset).
    """

    fields: dict[str, np.ndarray]
    params: np.ndarray
    ids: np.ndarray

    @property
    def n_traj(self) -> int:
        return int(self.ids.shape[0])


def split_order(names: list[str] | tuple[str, ...]) -> list[str]:
    """Canonical order of split names: train, val, test, then ``ood_*`` and anything else alphabetically."""
    core = [s for s in CORE_SPLITS if s in names]
    return core + sorted(s for s in names if s not in CORE_SPLITS)


class TaskGenerator(Protocol):
    """What a registered task (an entry of ``ups.data.solvers.TASKS``) provides to the data layer.

    ``sizes`` names the available sizes (``small``, ``full``); ``solver`` is a short solver id stored in the store's
    attrs; ``spec``, ``solver_config`` and ``generate`` take a size name.
    """

    sizes: dict
    solver: str

    def spec(self, size: str) -> TaskSpec: ...

    def solver_config(self, size: str) -> dict: ...

    def generate(self, size: str, seed: int) -> dict[str, SplitData]: ...


SizeT = TypeVar("SizeT")


def lookup_size(task: str, sizes: dict[str, SizeT], size: str | SizeT) -> SizeT:
    """A task's size config by name (an already-resolved config passes through); unknown names list the valid ones."""
    if not isinstance(size, str):
        return size
    if size not in sizes:
        raise UserInputError(f"unknown size {size!r} for task {task}; valid: {', '.join(sorted(sizes))}")
    return sizes[size]
