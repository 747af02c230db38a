"""Declarative gates: load ``gates/<suite>.yaml`` and decide each rule for a candidate against a champion.

A rule compares the candidate's seed statistics with the champion's and returns an outcome with the numbers that
decided it: ``pass``, ``fail``, ``inconclusive`` (the comparison fails but by less than the seed or timing noise),
or ``not_applicable`` (the metric does not exist for the task, e.g. ``bc_violation`` on a periodic domain).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ups.errors import UserInputError
from ups.harness.stats import SeedStat
from ups.metrics import METRICS, parse_metric_name
from ups.registry import Registry

Outcome = Literal["pass", "fail", "inconclusive", "not_applicable"]
RuleName = Literal["max_ratio", "min_delta", "min_rel_improvement", "min_sigma", "max_abs", "min_abs"]


class Gate(BaseModel):
    """One rule of a gate file, e.g. ``{metric: nrmse@16, rule: max_ratio, value: 1.1}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    rule: RuleName
    value: float
    split: str = "test"
    normalise: Literal["machine"] | None = None
    # A failing comparison whose margin is within this absolute tolerance (in the compared metric's units) is
    # inconclusive rather than failed; for timings this is the timer's resolution.
    abs_tol: float = 0.0

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
    # per-task replacement of rules matched by (metric, rule), or new rules: {task: {regression: [...], ...}}
    overrides: dict[str, dict[Literal["regression", "promotion"], list[Gate]]] = {}

    def for_task(self, task: str, gate_set: Literal["regression", "promotion"]) -> list[Gate]:
        gates = {(g.metric, g.rule): g for g in getattr(self, gate_set)}
        for g in self.overrides.get(task, {}).get(gate_set, []):
            gates[(g.metric, g.rule)] = g
        return list(gates.values())


def direction(metric: str) -> str:
    name, _ = parse_metric_name(metric)
    return METRICS.get(name).direction


def load_gate_file(path: str | Path) -> GateFile:
    """Read and validate a gate file; any problem is one line naming the file and the offending entry."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"gate file {path}: not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserInputError(f"gate file {path}: invalid YAML ({str(err).splitlines()[0]})") from None
    try:
        gate_file = GateFile.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise UserInputError(f"gate file {path}: {loc}: {first['msg']}") from None
    for gate_set in ("regression", "promotion"):
        for g in getattr(gate_file, gate_set):
            try:
                direction(g.metric)
            except UserInputError as err:
                raise UserInputError(f"gate file {path}: {gate_set}: {err}") from None
    return gate_file


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    outcome: Outcome
    threshold: float | None
    candidate: float | None
    champion: float | None
    detail: str

    def message(self, task: str) -> str:
        """One line: task, metric, rule, candidate, champion, threshold and why."""
        fmt = lambda x: "n/a" if x is None else f"{x:.6g}"  # noqa: E731
        return (
            f"{task} {self.gate.metric} {self.gate.rule}({self.gate.value:g}) {self.outcome}: "
            f"candidate={fmt(self.candidate)} champion={fmt(self.champion)} threshold={fmt(self.threshold)}"
            f" ({self.detail})"
        )


RuleFn = Callable[[SeedStat, SeedStat, Gate, bool], tuple[float, bool]]
RULES: Registry = Registry("gate rule")


# Each rule returns (threshold, passed) for a lower-is-better metric (`lower=True`) or its mirror image.
@RULES.register("max_ratio")
def _max_ratio(cand: SeedStat, champ: SeedStat, gate: Gate, lower: bool) -> tuple[float, bool]:
    thr = champ.mean * gate.value if lower else champ.mean / gate.value
    return thr, (cand.mean <= thr if lower else cand.mean >= thr)


@RULES.register("min_delta")
def _min_delta(cand: SeedStat, champ: SeedStat, gate: Gate, lower: bool) -> tuple[float, bool]:
    thr = champ.mean - gate.value if lower else champ.mean + gate.value
    return thr, (cand.mean <= thr if lower else cand.mean >= thr)


@RULES.register("min_rel_improvement")
def _min_rel(cand: SeedStat, champ: SeedStat, gate: Gate, lower: bool) -> tuple[float, bool]:
    thr = champ.mean * (1 - gate.value) if lower else champ.mean * (1 + gate.value)
    return thr, (cand.mean <= thr if lower else cand.mean >= thr)


@RULES.register("min_sigma")
def _min_sigma(cand: SeedStat, champ: SeedStat, gate: Gate, lower: bool) -> tuple[float, bool]:
    thr = champ.mean - gate.value * champ.std if lower else champ.mean + gate.value * champ.std
    # strict: an improvement of 0 sigma is no improvement
    return thr, (cand.mean < thr if lower else cand.mean > thr)


@RULES.register("max_abs")
def _max_abs(cand: SeedStat, champ: SeedStat, gate: Gate, lower: bool) -> tuple[float, bool]:
    return gate.value, cand.mean <= gate.value


@RULES.register("min_abs")
def _min_abs(cand: SeedStat, champ: SeedStat, gate: Gate, lower: bool) -> tuple[float, bool]:
    return gate.value, cand.mean >= gate.value


def _noise(cand: SeedStat, champ: SeedStat) -> float:
    """Standard error of the difference of the two means; 0 when neither side has two seeds."""
    var = 0.0
    for s in (cand, champ):
        if s.n >= 2:
            var += s.std**2 / s.n
    return math.sqrt(var)


def evaluate_gate(gate: Gate, cand: SeedStat | None, champ: SeedStat | None) -> GateResult:
    """Decide one gate. ``cand``/``champ`` are the statistics of ``gate.compared_metric`` (None if not recorded)."""
    absolute = gate.rule in ("max_abs", "min_abs")
    if cand is None or cand.mean is None:
        return GateResult(gate, "not_applicable", None, None, champ and champ.mean, "metric not applicable to task")
    if not absolute and (champ is None or champ.mean is None):
        return GateResult(gate, "not_applicable", None, cand.mean, None, "champion has no value for this metric")
    champ = champ or SeedStat(None, 0.0, 0)
    if gate.rule == "min_sigma" and champ.n < 2:
        return GateResult(
            gate, "inconclusive", None, cand.mean, champ.mean, f"champion has n={champ.n} seed; σ unknown"
        )
    lower = direction(gate.compared_metric) == "lower"
    thr, passed = RULES.get(gate.rule)(cand, champ, gate, lower)
    if passed:
        return GateResult(gate, "pass", thr, cand.mean, champ.mean, "within threshold")
    margin = abs(cand.mean - thr)
    noise = 0.0 if absolute else 2.0 * _noise(cand, champ)
    if margin <= max(noise, gate.abs_tol):
        why = f"misses by {margin:.3g}, inside noise {max(noise, gate.abs_tol):.3g}"
        return GateResult(gate, "inconclusive", thr, cand.mean, champ.mean, why)
    return GateResult(gate, "fail", thr, cand.mean, champ.mean, f"misses threshold by {margin:.3g}")
