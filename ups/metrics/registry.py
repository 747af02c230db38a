"""The metric registry and the scoreboard: which metrics exist, which way is better, and when they apply.

A :class:`MetricDef` wraps one pure metric function with what the evaluator and the gates need to know about it:
its direction, its kind, whether it applies to a task, and the keyword arguments it takes from the task's
:class:`~ups.data.spec.TaskSpec`. :func:`compute_scoreboard` turns a rollout into the rows the results store keeps
(``metric``, ``horizon``, ``value``); gate files name a per-step row as ``nrmse@16``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ups.data.spec import TaskSpec
from ups.errors import UserInputError
from ups.metrics._arrays import ArrayLike, check_pair
from ups.metrics.accuracy import nrmse, nrmse_at, rel_l2
from ups.metrics.physics import conservation_gap
from ups.metrics.temporal import rollout_horizon
from ups.registry import Registry

Direction = Literal["lower", "higher"]
Kind = Literal["accuracy", "physics", "reliability", "efficiency"]


def _always(spec: TaskSpec) -> bool:
    return True


def _no_context(spec: TaskSpec) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class MetricDef:
    """One scoreboard metric.

    Attributes:
        name: registry name, also the ``metric`` column of the results store.
        fn: ``fn(pred, target, **context) -> float | None`` on ``[B, T, C, *S]`` arrays.
        direction: ``"lower"`` or ``"higher"`` is better; gates mirror their rules for ``"higher"``.
        kind: ``accuracy``, ``physics``, ``reliability`` or ``efficiency`` (groups columns in reports).
        applies: whether the metric means anything for a task; when False its value is ``None`` (not applicable),
            and gates skip it and say so.
        context: keyword arguments the metric takes from the task (e.g. conserved channels, cell volume).
        at: optional per-step variant ``at(pred, target, k, **context)`` giving the ``name@k`` rows.
    """

    name: str
    fn: Callable[..., float | None]
    direction: Direction
    kind: Kind
    applies: Callable[[TaskSpec], bool] = _always
    context: Callable[[TaskSpec], Mapping[str, Any]] = _no_context
    at: Callable[..., float | None] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name!r}: direction must be 'lower' or 'higher', got {self.direction!r}")
        if self.kind not in ("accuracy", "physics", "reliability", "efficiency"):
            raise ValueError(f"metric {self.name!r}: unknown kind {self.kind!r}")

    def compute(self, pred: ArrayLike, target: ArrayLike, spec: TaskSpec) -> float | None:
        """The metric over the whole rollout for a task; ``None`` when it does not apply."""
        if not self.applies(spec):
            return None
        return self.fn(pred, target, **self.context(spec))

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


def _has_conserved(spec: TaskSpec) -> bool:
    return len(spec.conserved) > 0


def _conservation_context(spec: TaskSpec) -> dict[str, Any]:
    return {"conserved_channels": spec.conserved_channels, "cell_volume": spec.cell_volume}


def _is_rollout(spec: TaskSpec) -> bool:
    return not spec.steady


register_metric(MetricDef("nrmse", nrmse, "lower", "accuracy", at=nrmse_at))
register_metric(MetricDef("rel_l2", rel_l2, "lower", "accuracy"))
register_metric(
    MetricDef(
        "conservation_gap",
        conservation_gap,
        "lower",
        "physics",
        applies=_has_conserved,
        context=_conservation_context,
    )
)
# Horizon in predicted steps (comparable with the nrmse@k rows); physical time is in rollout_horizon_details.
register_metric(MetricDef("rollout_horizon", rollout_horizon, "higher", "reliability", applies=_is_rollout))


@dataclass(frozen=True)
class MetricValue:
    """One scoreboard row: ``metric`` over the whole rollout (``horizon`` None) or at predicted step ``horizon``.

    ``value`` is None when the metric does not apply to the task, NaN when it is undefined for this data (e.g. a
    zero denominator).
    """

    metric: str
    horizon: int | None
    value: float | None

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


def compute_scoreboard(
    pred: ArrayLike, target: ArrayLike, spec: TaskSpec, *, horizons: Iterable[int] = (1, 4, 16)
) -> list[MetricValue]:
    """Score a rollout with every registered metric.

    Rows: one per registered metric (in name order) over the whole rollout, ``horizon=None``, value ``None`` where
    the metric does not apply to ``spec``; then, for each metric with a per-step variant (``nrmse``), one row per
    ``k`` in ``horizons`` with ``k <= T`` (longer horizons are omitted, not padded), in the given order.

    Args:
        pred: decoded prediction ``[B, T, C, *S]``, predicted steps only.
        target: ground truth, same shape.
        spec: the task's facts; ``C`` must equal ``len(spec.fields)`` and ``S`` must equal ``spec.grid_shape``.
        horizons: 1-based predicted steps for the ``name@k`` rows.

    Raises:
        ValueError: on mismatched shapes, a shape that disagrees with ``spec``, or a horizon < 1.
    """
    p, y = check_pair(pred, target)  # convert once; every metric then gets float64 numpy
    if p.shape[2] != len(spec.fields) or p.shape[3:] != tuple(spec.grid_shape):
        raise ValueError(
            f"arrays [B, T, C, *S] = {p.shape} do not match task {spec.task!r}: "
            f"C = {len(spec.fields)} fields {spec.fields}, S = {tuple(spec.grid_shape)}"
        )
    ks = list(dict.fromkeys(int(k) for k in horizons))
    if any(k < 1 for k in ks):
        raise ValueError(f"horizons are 1-based predicted steps, got {ks}")
    n_steps = p.shape[1]
    defs = [METRICS.get(name) for name in METRICS.names()]
    rows = [MetricValue(d.name, None, _as_float(d.compute(p, y, spec))) for d in defs]
    for d in defs:
        if d.at is not None:
            rows += [MetricValue(d.name, k, _as_float(d.compute_at(p, y, spec, k))) for k in ks if k <= n_steps]
    return rows


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)
