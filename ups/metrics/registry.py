"""The metric registry: which metrics exist, which way is better, and when they apply.

A :class:`MetricDef` wraps one pure metric function with what the evaluator and the gates need to know about it:
its direction, its kind, whether it applies to a task, and the keyword arguments it takes from the task's
:class:`~ups.data.spec.TaskSpec`. :func:`~ups.metrics.scoreboard.compute_scoreboard` turns a rollout into
:class:`MetricValue` rows, the ones the results store keeps (``metric``, ``horizon``, ``value``); gate files name a
per-step row as ``nrmse@16``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ups.data.spec import TaskSpec
from ups.errors import UserInputError
from ups.metrics._arrays import ArrayLike
from ups.registry import Registry

Direction = Literal["lower", "higher"]
Kind = Literal["accuracy", "physics", "reliability", "efficiency"]


def _always(spec: TaskSpec) -> bool:
    return True


def _no_context(spec: TaskSpec) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class MetricFamily:
    """Several metrics computed from one shared intermediate (the FFTs of both arrays, the per-step correlations).

    ``fn(pred, target, **context(spec))`` returns ``{metric name: value}`` for every member; each member's own
    function gives the same value (up to round-off) when called alone. The scoreboard calls a family once per chunk
    of trajectories.
    """

    name: str
    fn: Callable[..., Mapping[str, float | None]]
    context: Callable[[TaskSpec], Mapping[str, Any]] = _no_context


@dataclass(frozen=True)
class MetricDef:
    """One scoreboard metric.

    Attributes:
        name: registry name, also the ``metric`` column of the results store.
        fn: ``fn(pred, target, **context) -> float | None`` on ``[B, T, C, *S]`` arrays; for ensemble metrics
            (``needs_samples``) ``fn(samples, target, **context)`` with ``samples [M, B, T, C, *S]``; None for a
            measured metric.
        direction: ``"lower"`` or ``"higher"`` is better; gates mirror their rules for ``"higher"``.
        kind: ``accuracy``, ``physics``, ``reliability`` or ``efficiency`` (groups columns in reports).
        applies: whether the metric means anything for a task; when False its value is ``None`` (not applicable),
            and gates skip it and say so.
        context: keyword arguments the metric takes from the task (e.g. conserved channels, cell volume).
        at: optional per-step variant ``at(pred, target, k, **context)`` giving the ``name@k`` rows.
        needs_samples: an ensemble metric; ``None`` when the prediction is deterministic (no samples given).
        measured: measured on a model and a device by the evaluator (``ups.metrics.efficiency``), not computed
            from arrays; the scoreboard writes no row for it.
        family: optional shared computation the scoreboard uses instead of ``fn`` (same value up to round-off,
            computed once for all members).
        family_when: for which tasks the scoreboard takes the value from ``family`` (e.g. only on periodic grids,
            where the divergence comes from the same FFTs as the spectra); ``fn`` otherwise.
        batch_mean: the value is a plain mean over trajectories (b) of per-trajectory values, so the scoreboard may
            compute it on chunks of trajectories and average the chunks weighted by size (bounded memory). False
            for metrics that pool over the batch before a non-linear step (``crmse``, the ensemble metrics).
    """

    name: str
    fn: Callable[..., float | None] | None
    direction: Direction
    kind: Kind
    applies: Callable[[TaskSpec], bool] = _always
    context: Callable[[TaskSpec], Mapping[str, Any]] = _no_context
    at: Callable[..., float | None] | None = None
    needs_samples: bool = False
    measured: bool = False
    family: MetricFamily | None = None
    family_when: Callable[[TaskSpec], bool] = _always
    batch_mean: bool = True

    def __post_init__(self) -> None:
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name!r}: direction must be 'lower' or 'higher', got {self.direction!r}")
        if self.kind not in ("accuracy", "physics", "reliability", "efficiency"):
            raise ValueError(f"metric {self.name!r}: unknown kind {self.kind!r}")
        if self.measured != (self.fn is None):
            raise ValueError(f"metric {self.name!r}: a measured metric has no fn, and every other metric has one")
        if self.needs_samples and (self.at is not None or self.family is not None):
            raise ValueError(f"metric {self.name!r}: ensemble metrics have no per-step variant or family")

    def compute(
        self, pred: ArrayLike, target: ArrayLike, spec: TaskSpec, *, samples: ArrayLike | None = None
    ) -> float | None:
        """The metric over the whole rollout for a task; ``None`` when it does not apply (or, for an ensemble
        metric, when there are no ``samples``).

        Raises:
            ValueError: for a measured metric, which has no function of arrays.
        """
        if self.fn is None:
            raise ValueError(
                f"metric {self.name!r} is measured by the evaluator on a model and a device "
                "(ups.metrics.efficiency), not computed from arrays"
            )
        if not self.applies(spec):
            return None
        if self.needs_samples:
            return None if samples is None else self.fn(samples, target, **self.context(spec))
        return self.fn(pred, target, **self.context(spec))

    def uses_family(self, spec: TaskSpec) -> bool:
        """Whether the scoreboard takes this metric's value for ``spec`` from its family."""
        return self.family is not None and self.family_when(spec)

    def compute_at(self, pred: ArrayLike, target: ArrayLike, spec: TaskSpec, k: int) -> float | None:
        """The metric at 1-based predicted step ``k``; ``None`` when it does not apply."""
        if self.at is None:
            raise ValueError(f"metric {self.name!r} has no per-step variant")
        if not self.applies(spec):
            return None
        return self.at(pred, target, k, **self.context(spec))


METRICS: Registry[MetricDef] = Registry("metric")


def register_metric(metric: MetricDef) -> MetricDef:
    """Add ``metric`` to :data:`METRICS` under its own name (duplicates are rejected)."""
    return METRICS.register(metric.name)(metric)


@dataclass(frozen=True)
class MetricValue:
    """One scoreboard row: ``metric`` over the whole rollout (``horizon`` None) or at predicted step ``horizon``.

    ``value`` is None when the metric does not apply to the task, NaN when it is undefined for this data (e.g. a
    zero denominator).

    ``per_traj`` holds the value of each trajectory, in the split's order, for metrics that are a plain mean over
    trajectories (``MetricDef.batch_mean``), so that ``value`` is their mean; None for the others. Gates pair the
    candidate's and the champion's trajectories through it.
    """

    metric: str
    horizon: int | None
    value: float | None
    per_traj: tuple[float, ...] | None = None

    @property
    def name(self) -> str:
        """The gate-file spelling, ``nrmse`` or ``nrmse@16``."""
        return format_metric_name(self.metric, self.horizon)


_NAME = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?:@(?P<k>[0-9]+))?$")


def parse_metric_name(text: str) -> tuple[str, int | None]:
    """Split a gate-file metric name: ``"nrmse@16"`` → ``("nrmse", 16)``, ``"nrmse"`` → ``("nrmse", None)``.

    Raises:
        UserInputError: if the text is not ``name`` or ``name@k`` with an integer ``k >= 1``.
    """
    m = _NAME.match(text.strip()) if isinstance(text, str) else None
    if m is None or (m["k"] is not None and int(m["k"]) < 1):
        raise UserInputError(f"bad metric name {text!r}; expected 'name' or 'name@k' with k >= 1 (e.g. 'nrmse@16')")
    return m["metric"], (int(m["k"]) if m["k"] is not None else None)


def format_metric_name(metric: str, horizon: int | None = None) -> str:
    """Inverse of :func:`parse_metric_name`: ``("nrmse", 16)`` → ``"nrmse@16"``, ``("nrmse", None)`` → ``"nrmse"``."""
    return metric if horizon is None else f"{metric}@{horizon}"
