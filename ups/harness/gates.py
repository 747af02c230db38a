"""Declarative gates: load ``gates/<suite>.yaml`` and decide each rule for a candidate against a champion.

A rule compares the candidate's scores with the champion's through a statistic (a ratio, a difference, ...) whose
interval comes from a paired bootstrap over seeds × test trajectories (:mod:`ups.metrics.bootstrap`), and returns an
outcome with the numbers that decided it: ``pass`` (the whole interval satisfies the rule), ``fail`` (the whole
interval misses it), ``inconclusive`` (the interval straddles the bound: the difference is inside seed and test-set
noise), or ``not_applicable`` (the metric does not exist for the task, e.g. ``bc_violation`` on a periodic domain).
The method, with a worked example, is in docs/gates.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ups.config.safe_yaml import safe_load_text
from ups.errors import UserInputError
from ups.harness.sources import decode_utf8
from ups.metrics import METRICS, parse_metric_name
from ups.metrics.bootstrap import Interval, bootstrap_means, interval, prob_better
from ups.metrics.seeds import SeedStat
from ups.registry import Registry

Outcome = Literal["pass", "fail", "inconclusive", "not_applicable"]
DEFAULT_CONFIDENCE = 0.9
RuleName = Literal["max_ratio", "min_delta", "min_rel_improvement", "min_sigma", "max_abs", "min_abs"]


class Gate(BaseModel):
    """One rule of a gate file, e.g. ``{metric: nrmse@16, rule: max_ratio, value: 1.1}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    rule: RuleName
    value: float = Field(allow_inf_nan=False)
    split: str = "test"
    normalise: Literal["machine"] | None = None
    # A failing comparison whose margin is within this absolute tolerance (in the compared metric's units) is
    # inconclusive rather than failed; for timings this is the timer's resolution.
    abs_tol: float = Field(0.0, ge=0, allow_inf_nan=False)

    @field_validator("value")
    @classmethod
    def _ratio_positive(cls, v: float, info) -> float:
        if info.data.get("rule") == "max_ratio" and v <= 0:
            raise ValueError("a max_ratio value must be > 0")
        if info.data.get("rule") in ("min_sigma", "min_delta", "min_rel_improvement") and v < 0:
            raise ValueError(f"a {info.data['rule']} value must be >= 0")
        return v

    @property
    def compared_metric(self) -> str:
        """The stored metric the rule reads: machine-normalised time when ``normalise: machine``."""
        if self.normalise == "machine":
            return "wall_clock_norm"
        return self.metric

    @property
    def id(self) -> str:
        return f"{self.metric}-{self.rule}"


class GateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regression: list[Gate] = []
    promotion: list[Gate] = []
    # two-sided level of the bootstrap intervals that decide every gate of the file (docs/gates.md)
    confidence: float = Field(DEFAULT_CONFIDENCE, gt=0.5, lt=1.0)
    # per-task replacement of rules matched by (metric, rule), or new rules: {task: {regression: [...], ...}}
    overrides: dict[str, dict[Literal["regression", "promotion"], list[Gate]]] = {}

    def all_gates(self) -> list[tuple[str, Gate]]:
        """Every gate with where it sits: ``regression``, ``promotion`` or ``overrides.<task>.<set>``."""
        out = [(name, g) for name in ("regression", "promotion") for g in getattr(self, name)]
        for task, sets in self.overrides.items():
            out += [(f"overrides.{task}.{name}", g) for name, gates in sets.items() for g in gates]
        return out

    def for_task(self, task: str, gate_set: Literal["regression", "promotion"]) -> list[Gate]:
        gates = {(g.metric, g.rule): g for g in getattr(self, gate_set)}
        for g in self.overrides.get(task, {}).get(gate_set, []):
            gates[(g.metric, g.rule)] = g
        return list(gates.values())


def direction(metric: str) -> str:
    name, _ = parse_metric_name(metric)
    return METRICS.get(name).direction


def load_gate_file(path: str | Path, *, text: str | None = None, where: str | None = None) -> GateFile:
    """Read and validate a gate file; any problem is one line naming the file and the offending entry.

    ``text``: the file's contents when they come from elsewhere than ``path`` (a git ref), named ``where``.
    """
    where = where or str(path)
    if text is None:
        if not Path(path).is_file():
            raise UserInputError(f"gate file {where}: not found")
        text = decode_utf8(Path(path).read_bytes(), f"gate file {where}")
    raw = safe_load_text(text, f"gate file {where}")
    try:
        gate_file = GateFile.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise UserInputError(f"gate file {where}: {loc}: {first['msg']}") from None
    for gate_set, gate in gate_file.all_gates():
        try:
            direction(gate.metric)
        except UserInputError as err:
            raise UserInputError(f"gate file {where}: {gate_set}: {err}") from None
    return gate_file


def check_gates_against(gate_file: GateFile, tasks: dict, where: str) -> None:
    """Every gate must name something the suite scores: a task, a split, a metric and a horizon it has.

    ``tasks``: the suite's ``{task: TaskEntry}`` (splits, horizons). A typo would otherwise make a gate
    ``not_applicable`` and pass silently.

    Raises:
        UserInputError: one line naming the file, the gate and what it names that the suite does not have.
    """
    for task in gate_file.overrides:
        if task not in tasks:
            raise UserInputError(f"gate file {where}: overrides: unknown task {task!r} (suite has {', '.join(tasks)})")
    for gate_set, gate in gate_file.all_gates():
        scope = {gate_set.split(".")[1]: tasks[gate_set.split(".")[1]]} if "." in gate_set else tasks
        name, horizon = parse_metric_name(gate.metric)
        for task, entry in scope.items():
            if gate.split not in entry.splits:
                raise UserInputError(
                    f"gate file {where}: {gate_set} {gate.id}: unknown split {gate.split!r} "
                    f"(task {task} scores {', '.join(entry.splits)})"
                )
            if horizon is not None and (METRICS.get(name).at is None or horizon not in entry.horizons):
                raise UserInputError(
                    f"gate file {where}: {gate_set} {gate.id}: no horizon {horizon} for {name} on task {task} "
                    f"(horizons {entry.horizons})"
                )


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    outcome: Outcome
    threshold: float | None
    candidate: float | None
    champion: float | None
    detail: str
    interval: Interval | None = None  # the rule's statistic and its bootstrap interval
    p_better: float | None = None  # P(candidate's run beats the champion's), Bouthillier et al. 2021

    def message(self, task: str) -> str:
        """One line: task, metric, rule, candidate, champion, threshold and why."""
        fmt = lambda x: "n/a" if x is None else f"{x:.6g}"  # noqa: E731
        return (
            f"{task} {self.gate.metric} {self.gate.rule}({self.gate.value:g}) {self.outcome}: "
            f"candidate={fmt(self.candidate)} champion={fmt(self.champion)} threshold={fmt(self.threshold)}"
            f" ({self.detail})"
        )


@dataclass(frozen=True)
class Rule:
    """How a rule reads a comparison, for a lower-is-better metric (``lower=True``) or its mirror image.

    ``statistic(cand_mean, champ_mean)`` is what the bootstrap resamples (a ratio, a difference, ...); the rule passes
    when the statistic is ``<= bound`` (``sense="le"``) or ``>= bound`` (``"ge"``; strictly above for ``strict``).
    ``threshold`` is the same rule in the metric's own units, for the one-line message.
    """

    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray]
    label: str
    bound: float
    sense: Literal["le", "ge"]
    threshold: float
    strict: bool = False


RuleBuilder = Callable[[Gate, float | None, float, bool], Rule]
RULES: Registry = Registry("gate rule")


# Each builder gets (gate, champion mean, champion seed std, lower is better) and returns the Rule.
@RULES.register("max_ratio")
def _max_ratio(gate: Gate, champ: float | None, sigma: float, lower: bool) -> Rule:
    if lower:
        return Rule(lambda c, h: c / h, "ratio", gate.value, "le", champ * gate.value)
    return Rule(lambda c, h: c / h, "ratio", 1 / gate.value, "ge", champ / gate.value)


@RULES.register("min_delta")
def _min_delta(gate: Gate, champ: float | None, sigma: float, lower: bool) -> Rule:
    if lower:
        return Rule(lambda c, h: h - c, "improvement", gate.value, "ge", champ - gate.value)
    return Rule(lambda c, h: c - h, "improvement", gate.value, "ge", champ + gate.value)


@RULES.register("min_rel_improvement")
def _min_rel(gate: Gate, champ: float | None, sigma: float, lower: bool) -> Rule:
    if lower:
        return Rule(lambda c, h: 1 - c / h, "relative improvement", gate.value, "ge", champ * (1 - gate.value))
    return Rule(lambda c, h: c / h - 1, "relative improvement", gate.value, "ge", champ * (1 + gate.value))


@RULES.register("min_sigma")
def _min_sigma(gate: Gate, champ: float | None, sigma: float, lower: bool) -> Rule:
    # strict: an improvement of 0 sigma is no improvement
    if lower:
        return Rule(lambda c, h: (h - c) / sigma, "improvement/σ", gate.value, "ge", champ - gate.value * sigma, True)
    return Rule(lambda c, h: (c - h) / sigma, "improvement/σ", gate.value, "ge", champ + gate.value * sigma, True)


@RULES.register("max_abs")
def _max_abs(gate: Gate, champ: float | None, sigma: float, lower: bool) -> Rule:
    return Rule(lambda c, h: c, "value", gate.value, "le", gate.value)


@RULES.register("min_abs")
def _min_abs(gate: Gate, champ: float | None, sigma: float, lower: bool) -> Rule:
    return Rule(lambda c, h: c, "value", gate.value, "ge", gate.value)


def _side(rule: Rule, x: float | np.ndarray) -> tuple[bool, bool]:
    """(inside, beyond): whether ``x`` satisfies the rule, and whether it is on the failing side."""
    x = np.asarray(x, dtype=np.float64)
    if rule.sense == "le":
        return bool(np.all(x <= rule.bound)), bool(np.all(x > rule.bound))
    inside = np.all(x > rule.bound) if rule.strict else np.all(x >= rule.bound)
    return bool(inside), bool(np.all(x < rule.bound))


def evaluate_gate(
    gate: Gate,
    cand: SeedStat | None,
    champ: SeedStat | None,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    unit_scale: float | None = None,
) -> GateResult:
    """Decide one gate. ``cand``/``champ`` are the statistics of ``gate.compared_metric`` (None if not recorded).

    The rule's statistic (e.g. the candidate/champion ratio of means) is bootstrapped over seeds × trajectories
    (:mod:`ups.metrics.bootstrap`, paired where the two share seeds and test trajectories). ``pass`` when the whole
    ``confidence`` interval satisfies the rule, ``fail`` when the whole interval misses it (and the miss exceeds
    ``gate.abs_tol``), ``inconclusive`` when it straddles the bound. ``unit_scale`` (machine-normalised timings):
    the reported candidate, champion and threshold are multiplied by it, i.e. shown in seconds on this machine.
    """
    absolute = gate.rule in ("max_abs", "min_abs")
    if cand is None or cand.mean is None:
        return GateResult(gate, "not_applicable", None, None, champ and champ.mean, "metric not applicable to task")
    if not absolute and (champ is None or champ.mean is None):
        return GateResult(gate, "not_applicable", None, cand.mean, None, "champion has no value for this metric")
    shown_champion = champ.mean if champ is not None else None
    if absolute:
        champ = None  # an absolute rule reads the candidate alone
    if gate.rule == "min_sigma" and (champ.n < 2 or champ.std == 0):
        why = f"champion has n={champ.n} seed; σ unknown" if champ.n < 2 else "champion's seeds agree exactly; σ = 0"
        return GateResult(gate, "inconclusive", None, cand.mean, champ.mean, why)
    lower = direction(gate.compared_metric) == "lower"
    rule = RULES.get(gate.rule)(gate, champ and champ.mean, champ.std if champ else 0.0, lower)
    cand_reps, champ_reps, design = bootstrap_means(cand, champ)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(rule.statistic(np.float64(cand.mean), np.float64(champ.mean if champ else np.nan)))
        reps = rule.statistic(cand_reps, champ_reps if champ_reps is not None else np.full_like(cand_reps, np.nan))
    ci = interval(estimate, reps, confidence)
    p_better = None if champ is None else prob_better(cand, champ, lower_is_better=lower)
    inside, beyond = _side(rule, [ci.low, ci.high])
    outcome: Outcome = "pass" if inside else "fail" if beyond else "inconclusive"
    margin = abs(cand.mean - rule.threshold)
    if outcome == "fail" and margin <= gate.abs_tol:
        outcome = "inconclusive"
    sampled = f"{design['trajectories']} trajectories × " if design["trajectories"] else ""
    seeds = f"{cand.n}{'' if champ is None else ' vs ' + str(champ.n)} seeds"
    detail = (
        f"{rule.label} {ci} at {confidence:.0%} over {sampled}{seeds}"
        f"{', paired' if design['paired_seeds'] else ''}; bound {rule.bound:.4g}"
    )
    if p_better is not None:
        detail += f"; P(better)={p_better:.2f}"
    if outcome == "inconclusive" and margin <= gate.abs_tol and not inside:
        detail += f"; misses by {margin:.3g}, inside tolerance {gate.abs_tol:.3g}"
    scale = unit_scale or 1.0
    if unit_scale is not None:
        detail += "; times in s/rollout on this machine (machine-normalised)"
    return GateResult(
        gate,
        outcome,
        rule.threshold * scale,
        cand.mean * scale,
        None if shown_champion is None else shown_champion * scale,
        detail,
        interval=ci,
        p_better=p_better,
    )
