"""The scoreboard: every registered metric of a rollout, as the rows the results store keeps.

Metrics whose value is a plain mean over trajectories (``MetricDef.batch_mean``, nearly all of them) are computed on
chunks of trajectories converted to float64 one at a time, and the chunk values are averaged weighted by chunk size:
the same number (up to the order of the float sums) without ever holding a float64 copy of the whole rollout. On a
``[64, 32, 4, 64, 64]`` rollout that is the difference between a few cache-sized temporaries and ~1 GB of them, most
of whose time goes to page faults. Chunks run on a few threads. The other metrics get the whole arrays.
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

CHUNK_BYTES = 4 * 2**20  # float64 bytes per array per chunk: cache-sized, and reused by the allocator (no faults)
MAX_THREADS = 4  # each thread holds a few chunk-sized temporaries; more threads buy little for memory-bound work


def default_threads() -> int:
    """``UPS_METRIC_THREADS`` when set (e.g. 1 under pytest-xdist, where every worker already has a core), else the
    CPUs this process may run on (its affinity, not the host's count), at most :data:`MAX_THREADS`."""
    if os.environ.get("UPS_METRIC_THREADS", "").strip():
        return max(1, int(os.environ["UPS_METRIC_THREADS"]))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, available))


def _shape(x: ArrayLike) -> tuple[int, ...]:
    return tuple(int(n) for n in (x.shape if hasattr(x, "shape") else np.shape(x)))


def trajectories_per_chunk(shape: tuple[int, ...], chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many trajectories of a ``[B, T, C, *S]`` rollout fit in ``chunk_bytes`` of float64 (at least one)."""
    per_trajectory = 8 * int(np.prod(shape[1:]))
    return max(1, chunk_bytes // max(per_trajectory, 1))


def compute_scoreboard(
    pred: ArrayLike,
    target: ArrayLike,
    spec: TaskSpec,
    *,
    horizons: Iterable[int] = (1, 4, 16),
    samples: ArrayLike | None = None,
    chunk_bytes: int = CHUNK_BYTES,
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
        chunk_bytes: float64 bytes per array per chunk of trajectories.
        threads: threads that score chunks concurrently (default: :func:`default_threads`). The values do not
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
    chunked = [d for d in defs if d.batch_mean and not d.needs_samples and d.applies(spec)]
    per_chunk = trajectories_per_chunk(shape, chunk_bytes)
    raise_mmap_threshold(min(4 * per_chunk * 8 * int(np.prod(shape[1:])), 24 << 20))
    values = _chunked_values(pred, target, spec, chunked, steps, per_chunk, threads or default_threads())
    for d in defs:
        if (d.name, None) not in values:
            values[(d.name, None)] = _as_float(d.compute(pred, target, spec, samples=samples))
            if d.at is not None:  # only for a metric that does not apply: a per-step row of None
                values.update({(d.name, k): _as_float(d.compute_at(pred, target, spec, k)) for k in steps})
    rows = [MetricValue(d.name, None, values[(d.name, None)]) for d in defs]
    rows += [MetricValue(d.name, k, values[(d.name, k)]) for d in defs if d.at is not None for k in steps]
    return rows


def _chunk_values(
    pred: ArrayLike, target: ArrayLike, spec: TaskSpec, defs: list[MetricDef], steps: list[int]
) -> dict[tuple[str, int | None], float]:
    """Every metric in ``defs`` (and its ``@k`` rows) on one chunk of trajectories, families computed once."""
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


def _chunked_values(
    pred: ArrayLike,
    target: ArrayLike,
    spec: TaskSpec,
    defs: list[MetricDef],
    steps: list[int],
    per_chunk: int,
    threads: int,
) -> dict[tuple[str, int | None], float | None]:
    """Size-weighted mean over chunks of trajectories of every metric in ``defs`` (and their ``@k`` rows).

    Chunks run on ``threads`` threads (numpy and scipy.fft release the GIL in their loops); the chunk values are
    summed in chunk order, so the result does not depend on the thread count.
    """
    n_traj = _shape(pred)[0]
    starts = range(0, n_traj, per_chunk)

    def run(start: int) -> dict[tuple[str, int | None], float]:
        return _chunk_values(pred[start : start + per_chunk], target[start : start + per_chunk], spec, defs, steps)

    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(starts))) as pool:
            chunk_values = list(pool.map(run, starts))
    else:
        chunk_values = [run(start) for start in starts]
    totals: dict[tuple[str, int | None], float] = {}
    for start, values in zip(starts, chunk_values, strict=True):
        weight = min(per_chunk, n_traj - start) / n_traj
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + weight * value
    return dict(totals)


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)
