"""The scoreboard: every registered metric of a rollout, as the rows the results store keeps.

Metrics whose value is a plain mean over trajectories (``MetricDef.batch_mean``, nearly all of them) are computed one
trajectory at a time, converted to float64 one at a time, and averaged: the same number (up to the order of the
float sums) without ever holding a float64 copy of the whole rollout. On a ``[64, 32, 4, 64, 64]`` rollout that is
the difference between a few cache-sized temporaries and ~1 GB of them, most of whose time goes to page faults. The
per-trajectory values are kept on the row (``MetricValue.per_traj``): gates pair candidate and champion trajectory by
trajectory (:mod:`ups.metrics.bootstrap`). Trajectories run on a few threads. The other metrics get the whole arrays.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ups._memory import raise_mmap_threshold
from ups.data.spec import TaskSpec
from ups.metrics._arrays import ArrayLike, as_float64
from ups.metrics.registry import METRICS, MetricDef, MetricValue

MAX_THREADS = 4  # each thread holds a few trajectory-sized temporaries; more threads buy little for memory-bound work


def default_threads() -> int:
    """``UPS_METRIC_THREADS`` when set (e.g. 1 under pytest-xdist, where every worker already has a core), else the
    CPUs this process may run on (its affinity, not the host's count), at most :data:`MAX_THREADS`."""
    if os.environ.get("UPS_METRIC_THREADS", "").strip():
        return max(1, int(os.environ["UPS_METRIC_THREADS"]))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, available))


def _shape(x: ArrayLike) -> tuple[int, ...]:
    return tuple(int(n) for n in (x.shape if hasattr(x, "shape") else np.shape(x)))


def compute_scoreboard(
    pred: ArrayLike,
    target: ArrayLike,
    spec: TaskSpec,
    *,
    horizons: Iterable[int] = (1, 4, 16),
    samples: ArrayLike | None = None,
    threads: int | None = None,
) -> list[MetricValue]:
    """Score a rollout with every registered metric that is computed from arrays.

    Rows: one per registered metric (in name order; measured efficiency metrics are left out, the evaluator adds
    them) over the whole rollout, ``horizon=None``, value ``None`` where the metric does not apply to ``spec`` or, for
    an ensemble metric, where ``samples`` is None; then, for each metric with a per-step variant (``nrmse``,
    ``pearson``), one row per ``k`` in ``horizons`` with ``k <= T`` (longer horizons are omitted, not padded), in the
    given order. Metrics of one :class:`~ups.metrics.registry.MetricFamily` share one computation.

    Args:
        pred: decoded prediction ``[B, T, C, *S]``, predicted steps only (numpy or torch, any float dtype).
        target: ground truth, same shape.
        spec: the task's facts; ``C`` must equal ``len(spec.fields)`` and ``S`` must equal ``spec.grid_shape``.
        horizons: 1-based predicted steps for the ``name@k`` rows.
        samples: optional ensemble ``[M, B, T, C, *S]`` (e.g. corrector samples) for ``ece``, ``crps`` and
            ``spread_skill``; a deterministic prediction has none.
        threads: threads that score trajectories concurrently (default: :func:`default_threads`). The values do not
            depend on it.

    Raises:
        ValueError: on mismatched shapes, a shape that disagrees with ``spec``, or a horizon < 1.
    """
    shape = _shape(pred)
    if _shape(target) != shape:
        raise ValueError(f"pred and target shapes differ: {shape} vs {_shape(target)}")
    if len(shape) < 4 or 0 in shape[:3]:
        raise ValueError(f"expected arrays shaped [B, T, C, *S] (ndim >= 4) with no empty axis, got shape {shape}")
    if shape[2] != len(spec.fields) or shape[3:] != tuple(spec.grid_shape):
        raise ValueError(
            f"arrays [B, T, C, *S] = {shape} do not match task {spec.task!r}: "
            f"C = {len(spec.fields)} fields {spec.fields}, S = {tuple(spec.grid_shape)}"
        )
    if samples is not None and _shape(samples)[1:] != shape:
        raise ValueError(f"samples must be [M, {', '.join(map(str, shape))}] (members first), got {_shape(samples)}")
    ks = list(dict.fromkeys(int(k) for k in horizons))
    if any(k < 1 for k in ks):
        raise ValueError(f"horizons are 1-based predicted steps, got {ks}")
    steps = [k for k in ks if k <= shape[1]]

    defs = [d for d in (METRICS.get(name) for name in METRICS.names()) if not d.measured]
    per_trajectory = [d for d in defs if d.batch_mean and not d.needs_samples and d.applies(spec)]
    raise_mmap_threshold(min(4 * 8 * int(np.prod(shape[1:])), 24 << 20))
    per_traj = _per_trajectory_values(pred, target, spec, per_trajectory, steps, threads or default_threads())
    values: dict[tuple[str, int | None], float | None] = {key: float(np.mean(v)) for key, v in per_traj.items()}
    for d in defs:
        if (d.name, None) not in values:
            values[(d.name, None)] = _as_float(d.compute(pred, target, spec, samples=samples))
            if d.at is not None:  # only for a metric that does not apply: a per-step row of None
                values.update({(d.name, k): _as_float(d.compute_at(pred, target, spec, k)) for k in steps})
    keys = [(d.name, None) for d in defs] + [(d.name, k) for d in defs if d.at is not None for k in steps]
    return [MetricValue(name, k, values[(name, k)], per_traj.get((name, k))) for name, k in keys]


def _trajectory_values(
    pred: ArrayLike, target: ArrayLike, spec: TaskSpec, defs: list[MetricDef], steps: list[int]
) -> dict[tuple[str, int | None], float]:
    """Every metric in ``defs`` (and its ``@k`` rows) on one trajectory (``[1, T, C, *S]``), families computed once."""
    p, y = as_float64(pred), as_float64(target)
    families: dict[str, Mapping[str, Any]] = {}
    values: dict[tuple[str, int | None], float] = {}
    for d in defs:
        if d.uses_family(spec):
            if d.family.name not in families:
                families[d.family.name] = d.family.fn(p, y, **d.family.context(spec))
            values[(d.name, None)] = float(families[d.family.name][d.name])
        else:
            values[(d.name, None)] = float(d.fn(p, y, **d.context(spec)))
        for k in steps if d.at is not None else ():
            values[(d.name, k)] = float(d.at(p, y, k, **d.context(spec)))
    return values


def _per_trajectory_values(
    pred: ArrayLike,
    target: ArrayLike,
    spec: TaskSpec,
    defs: list[MetricDef],
    steps: list[int],
    threads: int,
) -> dict[tuple[str, int | None], tuple[float, ...]]:
    """Every metric in ``defs`` (and their ``@k`` rows) on each trajectory, in trajectory order.

    Trajectories run on ``threads`` threads (numpy and scipy.fft release the GIL in their loops); the values do not
    depend on the thread count.
    """
    n_traj = _shape(pred)[0]

    def run(b: int) -> dict[tuple[str, int | None], float]:
        return _trajectory_values(pred[b : b + 1], target[b : b + 1], spec, defs, steps)

    if threads > 1 and n_traj > 1:
        with ThreadPoolExecutor(max_workers=min(threads, n_traj)) as pool:
            per_b = list(pool.map(run, range(n_traj)))
    else:
        per_b = [run(b) for b in range(n_traj)]
    return {key: tuple(v[key] for v in per_b) for key in (per_b[0] if per_b else {})}


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)
