"""The base class of every task in :data:`ups.data.solvers.TASKS`, and the split bookkeeping the tasks share.

A task has named sizes (frozen dataclasses: grid, horizon, trajectories per split, parameter ranges), and for each
size a :class:`TaskSpec`, a solver config recorded in the store, and a generator frozen by one seed. The split
convention is the same for every task: trajectory ``i`` of the task's one seeded random stream gets global id ``i``,
and the splits take consecutive id blocks in ``counts`` order, so they are disjoint by construction.

This module sits beside the solvers on purpose: the dataset cache key hashes every ``*.py`` of this folder, so a change
here regenerates the cached data just as a change to a solver does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from ups.data.spec import TaskSpec
from ups.data.splits import SplitData
from ups.errors import UserInputError

SizeT = TypeVar("SizeT")
RangeT = TypeVar("RangeT")

#: The split whose physical parameters are drawn from outside the training range.
OOD_REGIME = "ood_regime"


class Task(ABC, Generic[SizeT]):
    """A registered task: its sizes, and per size the :class:`TaskSpec`, the solver config and the seeded generator.

    Every public method takes a size by name or an already-resolved size config (tests build small ones). A task
    defines ``name``, ``solver`` (a short solver id stored in the store's attrs), ``sizes``, and the hooks
    :meth:`make_spec` and :meth:`sample`; :meth:`derived_config` and :meth:`solve_from` are optional.
    """

    name: ClassVar[str]
    solver: ClassVar[str]
    sizes: ClassVar[dict[str, Any]]

    @classmethod
    def size(cls, size: str | SizeT) -> SizeT:
        """The size config by name (a config passes through); an unknown name lists the valid ones."""
        if not isinstance(size, str):
            return size
        if size not in cls.sizes:
            raise UserInputError(f"unknown size {size!r} for task {cls.name}; valid: {', '.join(sorted(cls.sizes))}")
        return cls.sizes[size]

    @classmethod
    def spec(cls, size: str | SizeT) -> TaskSpec:
        return cls.make_spec(cls.size(size))

    @classmethod
    def solver_config(cls, size: str | SizeT) -> dict:
        """Every field of the size config, then the quantities derived from them (:meth:`derived_config`)."""
        cfg = cls.size(size)
        return asdict(cfg) | cls.derived_config(cfg)

    @classmethod
    def generate(cls, size: str | SizeT, seed: int) -> dict[str, SplitData]:
        """Every split of the dataset, frozen by ``seed``: :meth:`sample` on ``np.random.default_rng(seed)``."""
        return cls.sample(cls.size(size), np.random.default_rng(seed))

    @classmethod
    @abstractmethod
    def make_spec(cls, cfg: SizeT) -> TaskSpec:
        """The :class:`TaskSpec` of size config ``cfg``."""

    @classmethod
    def derived_config(cls, cfg: SizeT) -> dict:
        """Solver quantities derived from the size config (internal grids, steps), recorded with it; none by default."""
        return {}

    @classmethod
    @abstractmethod
    def sample(cls, cfg: SizeT, rng: np.random.Generator) -> dict[str, SplitData]:
        """Every split of size config ``cfg``, drawn from ``rng`` alone."""

    @classmethod
    def restartable(cls) -> bool:
        """Whether the task defines :meth:`solve_from` (steady tasks keep the default, which refuses)."""
        return cls.solve_from.__func__ is not Task.solve_from.__func__

    @classmethod
    def solve_from(
        cls,
        cfg: SizeT,
        split: str,
        frames0: np.ndarray,
        params: np.ndarray,
        n_steps: int,
        *,
        coarsen: int = 1,
        step: float = 1.0,
    ) -> np.ndarray:
        """The task's reference solver restarted from stored frames (a solver baseline at a chosen cost).

        Args:
            cfg: the size config (or name) the frames were stored at.
            split: the split the frames come from (some splits change the domain or the walls).
            frames0: float64 ``[B, C, *S]`` stored frames at t = 0: every field in the store's field order, on the
                stored grid of ``split``.
            params: ``[B, P]`` as stored (the store's ``param_names`` order).
            n_steps: number of stored frame spacings to advance.
            coarsen: solve on a grid ``coarsen`` times coarser per axis than the stored grid (1: the stored grid);
                values that do not divide the stored grid are a :class:`UserInputError`.
            step: the solver's own step rule scaled by this factor (2: internal steps twice as long). An unstable
                rung is legitimate: a diverging trajectory returns non-finite values, never an exception or a hang.

        Returns:
            float64 ``[B, n_steps, C, *S]`` at t = dt, 2 dt, ..., n_steps dt, on the stored grid.
        """
        raise UserInputError(f"task {cls.name}: its solver cannot restart from stored frames")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A registered task (one that sets ``name``) must define every hook; a shared base such as ``EulerTask``
        may leave some to its subclasses. Checked here because tasks are used as classes, never instantiated."""
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            missing = sorted(n for n in dir(cls) if getattr(getattr(cls, n, None), "__isabstractmethod__", False))
            if missing:
                raise TypeError(f"task {cls.__dict__['name']!r} does not define {', '.join(missing)}")


def split_blocks(counts: dict[str, int]) -> dict[str, slice]:
    """The consecutive id block of each split, in ``counts`` order: ``{"train": slice(0, 48), "val": ...}``."""
    blocks, start = {}, 0
    for name, count in counts.items():
        blocks[name] = slice(start, start + count)
        start += count
    return blocks


def pack_splits(counts: dict[str, int], fields: dict[str, np.ndarray], params: np.ndarray) -> dict[str, SplitData]:
    """Cut arrays of every trajectory in id order into one :class:`SplitData` per split (see :func:`split_blocks`).

    Args:
        counts: trajectories per split, in split order.
        fields: field name → ``[traj, time, *space]``, stored as given (float32 expected).
        params: ``[traj, n_params]``, cast to float32.
    """
    return {
        name: SplitData(
            fields={f: a[sl] for f, a in fields.items()},
            params=params[sl].astype(np.float32),
            ids=np.arange(sl.start, sl.stop, dtype=np.int64),
        )
        for name, sl in split_blocks(counts).items()
    }


def draw_per_split(
    counts: dict[str, int], train: RangeT, ood: RangeT, draw: Callable[[RangeT, int], np.ndarray]
) -> np.ndarray:
    """Draw a parameter split by split, in ``counts`` order, and concatenate along the trajectory axis (id order).

    ``draw(ood, count)`` for ``ood_regime`` and ``draw(train, count)`` for every other split (train, val, test and
    OOD splits that change something else, such as the geometry or the boundary).
    """
    return np.concatenate([draw(ood if name == OOD_REGIME else train, count) for name, count in counts.items()])
