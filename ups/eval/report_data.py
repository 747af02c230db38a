"""The curves of the evaluation report, computed with the scoreboard's own metric functions.

Each curve is what a scoreboard metric averages, unrolled along one axis, so the report shows exactly what the numbers
measure: the radial energy spectrum of ``spectral_error`` (same shells, same channels), the per-step centred Pearson
correlation of ``pearson``/``rollout_horizon``, and the PIT coverage behind ``ece``, read as the coverage of central
predictive intervals. Everything here is a pure function of numpy arrays shaped ``[B, T, C, *S]`` (ensembles
``[M, B, T, C, *S]``); :mod:`ups.report.eval_report` turns the results into charts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ups.data.spec import TaskSpec
from ups.metrics import METRICS, energy_spectrum, pearson_per_step, pit_coverage
from ups.metrics._arrays import ArrayLike, as_float64

#: nominal coverages of the central intervals in the calibration diagram
NOMINAL: tuple[float, ...] = tuple(np.round(np.arange(1, 10) * 0.1, 1))  # 0.1, 0.2, ..., 0.9
#: at most this many cells per spatial axis in a 2D rollout panel (a strided view keeps the page small)
PANEL_CELLS = 32


def spectrum_channels(spec: TaskSpec) -> list[int] | None:
    """The channels ``spectral_error`` sums its energy spectrum over for ``spec`` (None: all channels)."""
    channels = METRICS.get("spectral_error").context(spec)["channels"]
    return None if channels is None else [int(c) for c in channels]


def last_step_spectrum(x: ArrayLike, channels: Sequence[int] | None = None) -> np.ndarray:
    """Radial energy spectrum of the last step, mean over trajectories: ``[k_max]`` for shells k = 1..k_max.

    Formula: ``mean_b E[b, T, k]`` with ``E`` from :func:`ups.metrics.energy_spectrum` (orthonormal FFT, integer
    shells ``⌊|k|⌋``, summed over ``channels``): the spectrum ``spectral_error`` compares, at the final frame.

    Args:
        x: ``[B, T, C, *S]`` fields.
        channels: channels whose energy is summed (the velocity for a kinetic-energy spectrum); None: all.
    """
    x = as_float64(x)
    return energy_spectrum(x[:, -1:], channels)[:, 0].mean(axis=0)


def correlation_per_step(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Centred Pearson correlation against time, mean over trajectories: ``[T]`` for predicted steps 1..T.

    Formula: ``mean_b ρ[b, t]`` with ρ from :func:`ups.metrics.pearson_per_step` (one centring over all channels and
    cells of a frame): the curve whose mean is ``pearson`` and whose first drop below 0.8 is ``rollout_horizon``.
    """
    return pearson_per_step(pred, target).mean(axis=0)


def central_coverage(samples: ArrayLike, target: ArrayLike, nominal: Sequence[float] = NOMINAL) -> np.ndarray:
    """Observed coverage of the ensemble's central predictive intervals, ``[len(nominal)]``.

    Formula: the central interval of nominal coverage α spans the predictive quantiles ``(1 − α)/2`` and ``(1 + α)/2``,
    and the truth lies in it exactly when its PIT does, so the observed coverage is
    ``F((1 + α)/2) − F((1 − α)/2)`` with ``F(p) = mean 1[PIT ≤ p]`` from :func:`ups.metrics.pit_coverage` (the
    randomised-rank PIT that ``ece`` uses, pooled over every point). A calibrated ensemble gives α (the diagonal); an
    over-confident one (spread too small) falls below it, an under-confident one lies above.

    Args:
        samples: ensemble ``[M, B, T, C, *S]``.
        target: ground truth ``[B, T, C, *S]``.
        nominal: coverages α in (0, 1).
    """
    alpha = np.asarray(nominal, dtype=np.float64)
    if np.any((alpha <= 0) | (alpha >= 1)):
        raise ValueError(f"nominal coverages must lie in (0, 1), got {list(nominal)}")
    cdf = pit_coverage(samples, target, levels=np.concatenate([(1 - alpha) / 2, (1 + alpha) / 2]))
    return cdf[len(alpha) :] - cdf[: len(alpha)]


def panel_steps(n_steps: int, count: int = 4) -> list[int]:
    """Up to ``count`` 1-based predicted steps spread over ``1..n_steps``, first and last included."""
    return sorted({int(round(s)) for s in np.linspace(1, n_steps, min(count, n_steps))})


def rollout_panel_records(
    series: Mapping[str, ArrayLike], fields: Sequence[str], steps: Sequence[int], *, trajectory: int = 0
) -> list[dict]:
    """Long-form records of one trajectory at a few steps, for line charts (1D) or heatmaps (2D).

    Args:
        series: name → ``[B, T, C, *S]`` (e.g. target, prediction, persistence), all the same shape.
        fields: channel names, ``len(fields) == C``.
        steps: 1-based predicted steps to show.
        trajectory: which trajectory.

    Returns:
        1D: one record per (series, step, field, cell) ``{series, step, field, x, value}`` with ``x`` the cell index.
        2D: the first field only, cells strided to at most :data:`PANEL_CELLS` per axis, records
        ``{series, step, field, i, j, value}`` with ``(i, j)`` the cell's indices on the full grid.
    """
    records = []
    for name, x in series.items():
        x = as_float64(x[trajectory : trajectory + 1])[0]  # [T, C, *S]
        if x.ndim not in (3, 4):
            raise ValueError(f"rollout panels draw 1D or 2D fields, got space shape {x.shape[2:]}")
        for step in steps:
            frame = x[step - 1]  # [C, *S]
            if frame.ndim == 2:
                records += [
                    {"series": name, "step": step, "field": f, "x": i, "value": float(v)}
                    for f, row in zip(fields, frame, strict=True)
                    for i, v in enumerate(row)
                ]
            else:
                stride = [max(1, -(-n // PANEL_CELLS)) for n in frame.shape[1:]]
                sub = frame[0, :: stride[0], :: stride[1]]
                records += [
                    {"series": name, "step": step, "field": fields[0], "i": i * stride[0], "j": j * stride[1],
                     "value": float(sub[i, j])}
                    for i in range(sub.shape[0])
                    for j in range(sub.shape[1])
                ]  # fmt: skip
    return records


@dataclass(frozen=True)
class SplitCurves:
    """The report's data for one split.

    Attributes:
        split: the split's name.
        steps: the 1-based predicted steps of the rollout panels.
        panels: :func:`rollout_panel_records` of target, prediction and persistence.
        spectrum: series → ``[k_max]`` last-step energy spectrum (shells 1..k_max).
        correlation: ``prediction`` and ``persistence`` → ``[T]`` correlation with the target per step.
        nominal: the central-interval coverages α of the calibration diagram.
        coverage: ``[len(nominal)]`` observed coverage of the prediction's ensemble, or None without an ensemble.
    """

    split: str
    steps: tuple[int, ...]
    panels: list[dict]
    spectrum: dict[str, np.ndarray]
    correlation: dict[str, np.ndarray]
    nominal: tuple[float, ...]
    coverage: np.ndarray | None


def split_curves(
    split: str,
    pred: ArrayLike,
    target: ArrayLike,
    persistence: ArrayLike,
    spec: TaskSpec,
    *,
    samples: ArrayLike | None = None,
    nominal: Sequence[float] = NOMINAL,
) -> SplitCurves:
    """Every curve of one split's report section (see :class:`SplitCurves`).

    Args:
        split: the split's name.
        pred: the model's rollout ``[B, T, C, *S]``.
        target: the truth, same shape.
        persistence: the persistence baseline's rollout on the same inputs, same shape.
        spec: the task (field names, and the spectrum's channels as ``spectral_error`` uses them).
        samples: the model's ensemble ``[M, B, T, C, *S]``, or None for a deterministic model.
        nominal: coverages α of the calibration diagram.
    """
    series = {"target": target, "prediction": pred, "persistence": persistence}
    steps = panel_steps(int(np.shape(target)[1]))
    channels = spectrum_channels(spec)
    return SplitCurves(
        split=split,
        steps=tuple(steps),
        panels=rollout_panel_records(series, spec.fields, steps),
        spectrum={name: last_step_spectrum(x, channels) for name, x in series.items()},
        correlation={name: correlation_per_step(series[name], target) for name in ("prediction", "persistence")},
        nominal=tuple(float(a) for a in nominal),
        coverage=None if samples is None else central_coverage(samples, target, nominal),
    )
