"""The verdict a reviewer reads: the headline per task (candidate against champion and every baseline) and the gates,
as terminal lines and as Markdown for a pull request comment (``--ups-markdown FILE``; in CI also the job's step
summary, ``$GITHUB_STEP_SUMMARY``).

Every number comes from rows the run already stored; nothing here scores anything.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ups.metrics import format_metric_name

TIME_UNIT = "s/rollout on this machine"
#: The candidate's readings against the reference-solver ladder (:meth:`ups.harness.runner.SuiteRunner.solver_matched`).
SOLVER_METRICS = (
    "solver_s_at_error", "solver_error_at_s", "solver_error_at_s_max", "solver_speedup", "solver_speedup_max",
)  # fmt: skip


@dataclass
class Headline:
    """Test-split nRMSE at the suite's longest horizon, mean over seeds, per task and model label."""

    horizon: int | None = None
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> label -> value
    seeds: dict[str, dict[str, int]] = field(default_factory=dict)
    solver: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> SOLVER_METRICS / "s" -> mean

    @property
    def metric(self) -> str:
        return format_metric_name("nrmse", self.horizon)

    def add_rows(self, label: str, metric_rows: list[dict]) -> None:
        """Take the run's ``nrmse@k`` test rows at the longest horizon it reports."""
        rows = [r for r in metric_rows if r["split"] == "test" and r["metric"] == "nrmse" and r["horizon"] is not None]
        if not rows:
            return
        k = max(r["horizon"] for r in rows)
        self.horizon = k if self.horizon is None else max(self.horizon, k)
        per_task: dict[str, list[float]] = {}
        for r in rows:
            if r["horizon"] == k and r["value"] is not None:
                per_task.setdefault(r["task"], []).append(r["value"])
        for task, vals in per_task.items():
            self.values.setdefault(task, {})[label] = statistics.fmean(vals)
            self.seeds.setdefault(task, {})[label] = len(vals)

    def add_value(self, task: str, label: str, value: float | None, n: int) -> None:
        if value is not None:
            self.values.setdefault(task, {})[label] = value
            self.seeds.setdefault(task, {})[label] = n

    def table(self) -> tuple[list[str], list[list[str]]]:
        """``(header, rows)``: task, each model's value (seeds), × below persistence, and the best baseline."""
        order = ["candidate", "champion", "persistence"]
        labels = order + sorted({lab for v in self.values.values() for lab in v} - set(order))
        labels = [lab for lab in labels if any(lab in v for v in self.values.values())]
        header = ["task", *labels, "× below persistence", "best baseline"]
        rows = []
        for task in sorted(self.values):
            vals = self.values[task]
            cells = [task]
            for lab in labels:
                cells.append(f"{vals[lab]:.4g} ({self.seeds[task][lab]})" if lab in vals else "—")
            cand, floor = vals.get("candidate"), vals.get("persistence")
            cells.append(f"{floor / cand:.2f}×" if cand and floor else "—")
            baselines = {lab: v for lab, v in vals.items() if lab not in ("candidate", "champion")}
            best = min(baselines, key=baselines.get) if baselines else None
            beats = "" if best is None or cand is None else (" (candidate ahead)" if cand <= baselines[best] else "")
            cells.append(f"{best} {baselines[best]:.4g}{beats}" if best else "—")
            rows.append(cells)
        return header, rows

    def add_solver_rows(self, metric_rows: list[dict]) -> None:
        """Take the candidate run's solver-matched readings and its test seconds per rollout (means over seeds)."""
        per: dict[tuple[str, str], list[float]] = {}
        wanted = (*SOLVER_METRICS, "wall_clock_s_per_rollout")
        for r in metric_rows:
            if r["split"] == "test" and r["horizon"] is None and r["value"] is not None and r["metric"] in wanted:
                per.setdefault((r["task"], r["metric"]), []).append(r["value"])
        for (task, metric), vals in per.items():
            self.solver.setdefault(task, {})[metric] = statistics.fmean(vals)

    def solver_table(self) -> tuple[list[str], list[list[str]]]:
        """``(header, rows)``: per task, the candidate's error and time beside the solver's at matched error and at
        matched time, and the speedup (solver seconds at the candidate's error ÷ the candidate's seconds)."""
        header = ["task", f"candidate {self.metric}", "candidate s", "solver s at that error",
                  f"solver {self.metric} at that time", "solver_speedup"]  # fmt: skip
        rows = []
        for task in sorted(t for t, m in self.solver.items() if any(k in m for k in SOLVER_METRICS)):
            m = self.solver[task]
            cells = [self.values.get(task, {}).get("candidate"), m.get("wall_clock_s_per_rollout")]
            rows.append([task, *(_fmt(c) for c in cells), _fmt(m.get("solver_s_at_error")),
                         _bounded(m.get("solver_error_at_s"), m.get("solver_error_at_s_max")),
                         _bounded(m.get("solver_speedup"), m.get("solver_speedup_max"))])  # fmt: skip
        return header, rows


def _bounded(value: float | None, upper: float | None) -> str:
    """A reading, or ``≤ bound`` where only its upper bound is known (docs/metrics.md)."""
    return _fmt(value) if value is not None or upper is None else f"≤ {upper:.4g}"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def gate_lines(gate_rows: list[dict]) -> list[list[str]]:
    """One row per gate: task, set, metric, rule, candidate, champion, threshold, outcome, detail."""
    ordered = sorted(gate_rows, key=lambda g: (g["task"], g["gate_set"] != "regression", g["metric"], g["rule"]))
    return [
        [g["task"], g["gate_set"], g["metric"], g["rule"], _fmt(g["candidate"]), _fmt(g["champion"]),
         _fmt(g["threshold"]), g["outcome"], g.get("detail") or ""]
        for g in ordered
    ]  # fmt: skip


def markdown(
    *,
    suite: str,
    run_id: str,
    judged_against: str,
    headline: Headline,
    gate_rows: list[dict],
    notes: list[str],
) -> str:
    """The verdict as Markdown: outcome counts, the headline table, the gates (failures first), notes."""
    counts: dict[str, int] = {}
    for g in gate_rows:
        counts[f"{g['gate_set']} {g['outcome']}"] = counts.get(f"{g['gate_set']} {g['outcome']}", 0) + 1
    failed = counts.get("regression fail", 0)
    status = "❌ regression gates failed" if failed else "✅ no regression gate failed"
    out = [f"## UPS {suite} suite: {status}", ""]
    outcomes = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none decided (no champion yet)"
    out.append(f"Run `{run_id}`, judged against {judged_against}. Gate outcomes: {outcomes}.")
    out += ["", f"### Headline: test {headline.metric}, mean over seeds (seeds)", ""]
    header, rows = headline.table()
    out += _md_table(header, rows)
    header, rows = headline.solver_table()
    if rows:
        out += ["", f"### Against the task's solver (times in {TIME_UNIT}; docs/metrics.md)", ""]
        out += _md_table(header, rows)
    out += ["", f"### Gates (times in {TIME_UNIT})", ""]
    lines = gate_lines(gate_rows)
    lines.sort(key=lambda r: r[7] != "fail")
    out += _md_table(["task", "set", "metric", "rule", "candidate", "champion", "threshold", "outcome", "why"], lines)
    if notes:
        out += ["", "### Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(out) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return [
        "| " + " | ".join(esc(h) for h in header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(esc(c) for c in row) + " |" for row in rows),
    ]


def _write_table(tr, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(c) for c in col) + 2 for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        tr.write_line("".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def write_summary(tr, session) -> None:
    """The terminal verdict (pytest's terminal reporter ``tr``) of a finished :class:`~ups.harness.session.Session`:
    what it was judged against, the headline table, each candidate run's gates and notes, where the results went."""
    tr.section("UPS verdict")
    for note in session.tidy_notes:
        tr.write_line(note)
    if not session.report:
        return
    tr.write_line(f"judged against {session.judged_against}")
    header, rows = session.headline.table()
    if rows:
        tr.write_line(f"headline: test {session.headline.metric}, mean over seeds (seeds in brackets)")
        _write_table(tr, header, rows)
    header, rows = session.headline.solver_table()
    if rows:
        tr.write_line(f"against the task's solver (means over seeds; {TIME_UNIT}; above 1 the surrogate pays)")
        _write_table(tr, header, rows)
    cols = ("candidate", "champion", "threshold")
    fmt_header = f"{'task':<14}{'gate':<11}{'metric':<26}{'rule':<20}" + "".join(f"{c:>11}" for c in cols)
    for run, notes in session.report:
        row = run.run_row
        tr.write_line(f"run {row['run_id']} ({row['label']}, suite {row['suite']}); times in {TIME_UNIT}")
        tr.write_line(fmt_header + "  outcome")
        for task, gate_set, metric, rule, cand, champ, thr, outcome, _ in gate_lines(run.gate_rows):
            tr.write_line(f"{task:<14}{gate_set:<11}{metric:<26}{rule:<20}{cand:>11}{champ:>11}{thr:>11}  {outcome}")
        for note in notes:
            tr.write_line(note)
    tr.write_line(f"results: {session.db_path}")
    for name, path in session.outputs.items():
        tr.write_line(f"{name}: {path}")
