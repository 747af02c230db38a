"""Generic split types shared by every task generator and the store.

A dataset is a ``dict[str, SplitData]`` keyed by split name (``train``, ``val``, ``test``, ``ood_*``). Splits are frozen
by the generator's seed and disjoint by construction: every trajectory has one global id, drawn once from one seeded
stream, and each id belongs to exactly one split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
