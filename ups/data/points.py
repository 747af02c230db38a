"""Any grid task served as irregular point clouds, for the UPT encoder and the any-point decoder (Alkin et al.,
"Universal Physics Transformers", NeurIPS 2024), so they are exercised on non-grid input.

A :class:`PointSet` picks ``N`` nodes of a grid: their flat C-order indices and their coordinates ``[N, d]``.
:func:`gather` takes a field's values at those nodes. Three modes:

``full``
    every node, in C order.
``random``
    ``n_points`` nodes drawn uniformly without replacement.
``mesh``
    ``n_points`` nodes spread like the vertices of an unstructured mesh: the grid is cut into cubic blocks of edge
    ``b`` (the largest edge that still leaves at least ``n_points`` blocks), ``n_points`` blocks are drawn, and one
    node is drawn inside each (stratified, "jittered-lattice" sampling). Points cover the domain evenly, without the
    clumps and holes of ``random``, and at irregular positions.

Every point is a true grid node, so its values are the stored values exactly. Points jittered off the grid would
need interpolated values, and the interpolation error would then pass for model error in every score; that is why
the mesh-like mode restricts its jitter to the grid nodes. Indices are returned sorted, and a point set depends only on
``(grid, mode, n_points, seed)``: the same seed gives the same points on every machine (NumPy's PCG64 generator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ups.data.store import DatasetStore

PointMode = Literal["full", "random", "mesh"]
POINT_MODES: tuple[str, ...] = ("full", "random", "mesh")
_SPACE_AXES = ("x", "y", "z")
Coords = Mapping[str, np.ndarray] | Sequence[np.ndarray]


@dataclass(frozen=True)
class PointSet:
    """Nodes picked from a grid.

    Attributes:
        index: int64 ``[N]``, sorted flat C-order indices into the grid (``np.ravel_multi_index`` of the nodes).
        coords: float64 ``[N, d]``, the nodes' coordinates, axes in grid order (x, y, z).
        grid_shape: the grid the indices refer to.
    """

    index: np.ndarray
    coords: np.ndarray
    grid_shape: tuple[int, ...]

    @property
    def n_points(self) -> int:
        return int(self.index.shape[0])


def _axes(coords: Coords) -> list[np.ndarray]:
    """Per-axis 1-D coordinates: a store's ``coords()`` dict (``x``[, ``y``, ``z``]; ``t`` ignored) or a sequence."""
    if isinstance(coords, Mapping):
        axes = [np.asarray(coords[a], dtype=np.float64) for a in _SPACE_AXES if a in coords]
    else:
        axes = [np.asarray(c, dtype=np.float64) for c in coords]
    if not axes or any(a.ndim != 1 for a in axes):
        raise ValueError("coords must be one 1-D array per spatial axis")
    return axes


def grid_points(coords: Coords) -> np.ndarray:
    """float64 ``[prod S, d]``: the coordinates of every node, in C order (the ``full`` point set)."""
    mesh = np.meshgrid(*_axes(coords), indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=-1)


def sample_points(
    coords: Coords, mode: PointMode = "random", n_points: int | None = None, seed: int | np.random.SeedSequence = 0
) -> PointSet:
    """Pick nodes of the grid spanned by ``coords`` (see the module docstring for the modes).

    Args:
        coords: per-axis coordinates; a store's ``coords()`` works as is.
        mode: ``full``, ``random`` or ``mesh``.
        n_points: points to pick (``random`` and ``mesh``); values above the grid size are capped at it.
        seed: seeds the pick; ``full`` ignores it.
    """
    axes = _axes(coords)
    shape = tuple(len(a) for a in axes)
    total = int(np.prod(shape))
    if mode == "full":
        index = np.arange(total, dtype=np.int64)
    elif mode in ("random", "mesh"):
        if n_points is None or n_points < 1:
            raise ValueError(f"mode {mode!r} needs n_points >= 1, got {n_points}")
        n = min(int(n_points), total)
        rng = np.random.default_rng(seed)
        index = rng.choice(total, size=n, replace=False) if mode == "random" else _mesh_index(shape, n, rng)
        index = np.sort(index).astype(np.int64)
    else:
        raise ValueError(f"unknown point mode {mode!r}; valid: {', '.join(POINT_MODES)}")
    nodes = np.unravel_index(index, shape)
    points = np.stack([a[i] for a, i in zip(axes, nodes, strict=True)], axis=-1)
    return PointSet(index=index, coords=points, grid_shape=shape)


def _mesh_index(shape: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    """One random node in each of ``n`` distinct random blocks of the largest edge leaving at least ``n`` blocks."""
    edge = 1
    while edge < max(shape) and _n_blocks(shape, edge + 1) >= n:
        edge += 1
    blocks_shape = tuple(-(-s // edge) for s in shape)  # ceil: edge blocks may be partial
    blocks = np.unravel_index(rng.choice(int(np.prod(blocks_shape)), size=n, replace=False), blocks_shape)
    jitter = rng.random((len(shape), n))
    nodes = []
    for s, k, u in zip(shape, blocks, jitter, strict=True):
        origin = k * edge
        extent = np.minimum(edge, s - origin)  # a partial block at the far edge
        nodes.append(origin + np.floor(u * extent).astype(np.int64))
    return np.ravel_multi_index(tuple(nodes), shape)


def _n_blocks(shape: tuple[int, ...], edge: int) -> int:
    return int(np.prod([-(-s // edge) for s in shape]))


def gather(values: np.ndarray, points: PointSet) -> np.ndarray:
    """Values at the points: ``[..., C, *S]`` → ``[..., N, C]`` (exact copies of the grid values)."""
    d = len(points.grid_shape)
    if tuple(values.shape[values.ndim - d :]) != points.grid_shape:
        raise ValueError(f"values of shape {values.shape} do not end with the grid shape {points.grid_shape}")
    flat = values.reshape(*values.shape[: values.ndim - d], -1)  # [..., C, (S)]
    return np.moveaxis(np.take(flat, points.index, axis=-1), -1, -2)  # [..., C, N] -> [..., N, C]


def to_points(
    sample: np.ndarray, coords: Coords, mode: PointMode = "random", n_points: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One grid sample ``[C, *S]`` as a point cloud: ``(coords [N, d], values [N, C])``."""
    points = sample_points(coords, mode, n_points, seed)
    return points.coords, gather(sample, points)


def to_points_batched(
    batch: np.ndarray,
    coords: Coords,
    mode: PointMode = "random",
    n_points: int | None = None,
    seed: int = 0,
    shared: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch ``[B, T, C, *S]`` as point clouds, one point set per trajectory for all its frames.

    Args:
        shared: one point set for the whole batch (coords ``[N, d]``) or one per trajectory, trajectory ``b`` seeded
            with ``(seed, b)`` (coords ``[B, N, d]``).

    Returns:
        ``(coords, values [B, T, N, C])``.
    """
    if shared:
        points = sample_points(coords, mode, n_points, seed)
        return points.coords, gather(batch, points)
    sets = [sample_points(coords, mode, n_points, _seed(seed, b)) for b in range(batch.shape[0])]
    values = np.stack([gather(traj, p) for traj, p in zip(batch, sets, strict=True)])
    return np.stack([p.coords for p in sets]), values


def _seed(seed: int, key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), int(key)])


class PointCloudView:
    """A split of a store served as point clouds: item ``i`` is trajectory ``i`` on its own point set.

    The point set of a trajectory is seeded with ``(seed, trajectory id)``, so it does not depend on the order in
    which trajectories are read. Reads one trajectory at a time from the store.
    """

    def __init__(
        self, store: DatasetStore, split: str, mode: PointMode = "random", n_points: int | None = None, seed: int = 0
    ):
        self.store, self.split, self.mode, self.n_points, self.seed = store, split, mode, n_points, seed
        self._ids = store.ids(split)
        self._coords = store.coords()
        self._arrays = [store.array(split, field) for field in store.spec.fields]

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def points(self, i: int) -> PointSet:
        return sample_points(self._coords, self.mode, self.n_points, _seed(self.seed, self._ids[i]))

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        """``coords`` float64 ``[N, d]``, ``values`` float32 ``[T, N, C]`` (channels in ``spec.fields`` order),
        ``index`` int64 ``[N]`` and ``id``."""
        if not 0 <= i < len(self):
            raise IndexError(f"trajectory {i} out of range 0..{len(self) - 1}")
        traj = np.stack([arr[i] for arr in self._arrays], axis=1)  # [T, C, *S]
        points = self.points(i)
        return {"coords": points.coords, "values": gather(traj, points), "index": points.index, "id": self._ids[i]}
