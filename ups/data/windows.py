"""Training windows from a dataset store: temperature-scaled sampling over regimes, stateless by step.

A *window* is ``horizon + 1`` frames of one trajectory, ``time_stride`` stored frames apart:
``u[traj, t0], u[traj, t0 + s], …, u[traj, t0 + horizon·s]``. Windows are grouped by *regime*:

- the parameter regime of the trajectory (:func:`regime_ids`: one distinct parameter row, or one cell of quantile
  bins of the parameter space; with several tasks the task would be one more axis), crossed with
- the time phase of the window: ``initial`` (it starts at the stored initial condition, t0 = 0, the start every
  evaluation rollout uses) or ``developed`` (t0 > 0).

A batch draws each window in two stages: a group ``i`` with probability

    p_i = n_i^{1/T} / Σ_j n_j^{1/T}

where ``n_i`` is the number of distinct windows of the current horizon in group ``i`` and ``T`` the sampling
temperature (``training.sampling_temperature``), then a window uniformly within the group (a trajectory of the regime,
and a start of the phase). ``T = 1`` samples every window equally often; ``T > 1`` flattens the group distribution
towards uniform, up-weighting small groups (rare regimes, the initial transient); ``T → ∞`` gives every group the same
share; ``T < 1`` sharpens it towards the largest groups.

Translation augmentation (``shift=True``, for periodic tasks whose equations do not depend on position, see
:data:`TRANSLATION_INVARIANT`): every window is rolled by a random whole number of cells along each spatial axis —
an exact symmetry of those PDEs, so it multiplies the data without changing the physics.

Batches are *stateless*: batch ``step`` is drawn from ``numpy.random.default_rng([seed, stream, step])``, so the
data-loader position is just the step (a resumed run draws exactly the batches an uninterrupted one would), and a
global batch of ``size × world`` windows is drawn once and split by rank, so ``world`` DDP ranks with batch ``B``
see exactly the windows one process with batch ``B × world`` sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ups.data.spec import TaskSpec
from ups.data.store import DatasetStore

MAX_DISTINCT_REGIMES = 16  # up to this many distinct parameter rows, each row is its own regime


@dataclass(frozen=True)
class WindowBatch:
    """A batch of windows: physical ``frames [B, H+1, C, *S]`` (float32), ``params [B, P]`` and their origin."""

    frames: torch.Tensor
    params: torch.Tensor
    traj: np.ndarray  # [B] trajectory index in the split
    start: np.ndarray  # [B] first stored frame of each window

    def to(self, device: torch.device | str) -> WindowBatch:
        return WindowBatch(self.frames.to(device), self.params.to(device), self.traj, self.start)


def regime_ids(params: np.ndarray, bins: int = 4) -> np.ndarray:
    """Regime of each trajectory, ``int64 [traj]``.

    With at most :data:`MAX_DISTINCT_REGIMES` distinct parameter rows (e.g. burgers1d's four ν), each distinct row is a
    regime. Otherwise every parameter column is cut into ``bins`` equal-count (quantile) bins and a regime is one cell
    of that product grid. A task without parameters is one regime.
    """
    params = np.asarray(params)
    if params.ndim != 2 or params.shape[1] == 0:
        return np.zeros(params.shape[0], dtype=np.int64)
    rows, inverse = np.unique(params, axis=0, return_inverse=True)
    if rows.shape[0] <= MAX_DISTINCT_REGIMES:
        return inverse.reshape(-1).astype(np.int64)
    cells = np.zeros(params.shape[0], dtype=np.int64)
    for col in params.T:
        edges = np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1])
        cells = cells * bins + np.searchsorted(edges, col, side="right")
    return np.unique(cells, return_inverse=True)[1].reshape(-1).astype(np.int64)


def group_probabilities(sizes: np.ndarray, temperature: float) -> np.ndarray:
    """``p_i = n_i^{1/T} / Σ_j n_j^{1/T}`` for group sizes ``n_i > 0`` (computed in log space, so large ``n`` and
    small ``T`` do not overflow)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if np.any(sizes <= 0) or temperature <= 0:
        raise ValueError(f"group sizes must be > 0 and temperature > 0, got {sizes.tolist()}, T={temperature}")
    logits = np.log(sizes) / temperature
    w = np.exp(logits - logits.max())
    return w / w.sum()


def window_groups(regimes: np.ndarray, n_starts: int) -> tuple[list[np.ndarray], list[tuple[int, int]], np.ndarray]:
    """Groups of windows: ``(members, start ranges, sizes)`` per (regime, phase).

    ``members[i]`` are the trajectories of group ``i``; its windows start in ``range(*starts[i])`` (``(0, 1)`` for the
    initial phase, ``(1, n_starts)`` for the developed one, absent when a trajectory has a single start).
    """
    members, starts, sizes = [], [], []
    for r in np.unique(regimes):
        trajs = np.flatnonzero(regimes == r)
        for lo, hi in ((0, 1), (1, n_starts)):
            if hi > lo:
                members.append(trajs)
                starts.append((lo, hi))
                sizes.append(len(trajs) * (hi - lo))
    return members, starts, np.asarray(sizes)


#: Built-in periodic tasks whose equations have no explicit position dependence: a circular shift of a trajectory is
#: another exact trajectory (ns2d is not here: its Kolmogorov forcing depends on y).
TRANSLATION_INVARIANT = frozenset({"advection1d", "burgers1d", "ks1d"})


class WindowSampler:
    """Windows of one split held in memory (float32), drawn statelessly by step.

    Args:
        fields: ``[traj, time, C, *S]`` physical fields.
        params: ``[traj, P]``.
        time_stride: stored frames per model step.
        temperature: regime sampling temperature ``T``.
        seed: base seed of the batch stream.
        regimes: parameter regime per trajectory; default :func:`regime_ids` of ``params``.
        shift: random circular shifts along every spatial axis (periodic, translation-invariant tasks only).
    """

    def __init__(
        self,
        fields: np.ndarray,
        params: np.ndarray,
        *,
        time_stride: int = 1,
        temperature: float = 1.0,
        seed: int = 0,
        regimes: np.ndarray | None = None,
        shift: bool = False,
    ):
        self.fields = torch.from_numpy(np.ascontiguousarray(fields, dtype=np.float32))
        self.params = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32))
        self.time_stride, self.temperature, self.seed, self.shift = time_stride, temperature, seed, shift
        self.regimes = regime_ids(params) if regimes is None else np.asarray(regimes)

    @classmethod
    def from_store(cls, store: DatasetStore, split: str = "train", **kwargs) -> WindowSampler:
        """Load ``split`` of ``store`` into memory (a small/proxy split; full-size data wants a lazy reader)."""
        return cls(store.fields(split), store.params(split), **kwargs)

    @property
    def n_traj(self) -> int:
        return self.fields.shape[0]

    @property
    def n_frames(self) -> int:
        return self.fields.shape[1]

    @property
    def max_horizon(self) -> int:
        """The longest window, in model steps, that fits a trajectory."""
        return (self.n_frames - 1) // self.time_stride

    def n_windows(self, horizon: int = 1) -> int:
        """Number of distinct windows of ``horizon`` model steps (the size of an "epoch")."""
        return self.n_traj * max(0, self.n_frames - horizon * self.time_stride)

    def probabilities(self, horizon: int) -> np.ndarray:
        """Group probabilities at ``horizon`` (groups in :func:`window_groups` order)."""
        _, _, sizes = window_groups(self.regimes, self.n_frames - horizon * self.time_stride)
        return group_probabilities(sizes, self.temperature)

    def batch(self, step: int, size: int, horizon: int, *, rank: int = 0, world: int = 1, stream: int = 0):
        """Batch ``step``: rank ``rank``'s ``size`` windows of a global batch of ``size × world``.

        Args:
            step: optimizer step (the data-loader position).
            size: windows per rank.
            horizon: model steps per window (capped at :attr:`max_horizon`).
            rank, world: DDP rank and world size.
            stream: separates the batch streams of different stages.
        """
        horizon = min(horizon, self.max_horizon)
        span = horizon * self.time_stride
        members, starts, sizes = window_groups(self.regimes, self.n_frames - span)
        rng = np.random.default_rng([self.seed, stream, step])
        n = size * world
        chosen = rng.choice(len(members), size=n, p=group_probabilities(sizes, self.temperature))
        traj = np.array([members[g][rng.integers(len(members[g]))] for g in chosen], dtype=np.int64)
        start = np.array([rng.integers(*starts[g]) for g in chosen], dtype=np.int64)
        ndim = self.fields.ndim - 3
        shifts = rng.integers(0, self.fields.shape[3:], size=(n, ndim)) if self.shift else None
        mine = slice(rank * size, (rank + 1) * size)
        traj, start = traj[mine], start[mine]
        offsets = np.arange(horizon + 1) * self.time_stride
        index = torch.from_numpy(start[:, None] + offsets[None, :])  # [B, H+1]
        frames = self.fields[torch.from_numpy(traj)[:, None], index]  # [B, H+1, C, *S]
        if shifts is not None:
            axes = tuple(range(2, 2 + ndim))  # spatial axes of one window [H+1, C, *S]
            rolled = [torch.roll(f, tuple(int(k) for k in s), axes) for f, s in zip(frames, shifts[mine], strict=True)]
            frames = torch.stack(rolled)
        return WindowBatch(frames, self.params[torch.from_numpy(traj)], traj, start)


def steady_pairs(store: DatasetStore, split: str, spec: TaskSpec | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and output fields of a steady task (``spec.extra["input"]`` → ``["output"]``), each ``[N, C, *S]``.

    A steady task stores one frame per sample; fields not named as input are outputs.
    """
    spec = spec or store.spec
    fields = torch.from_numpy(store.fields(split))[:, 0]  # [N, C, *S]
    inputs = list(spec.extra.get("input", spec.fields[:1]))
    outputs = list(spec.extra.get("output", [f for f in spec.fields if f not in inputs]))
    a = fields[:, [spec.channel(f) for f in inputs]]
    u = fields[:, [spec.channel(f) for f in outputs]]
    return a.contiguous(), u.contiguous()
