"""How often do the gates decide right? False alarms and detections of the regression gates, measured.

Run: ``python benchmarks/bench_gate_decisions.py [--task burgers1d] [--seeds 12] [--draws 1000]``; two processes
started side by side share the training (file locks), e.g. ``for i in 1 2; do python benchmarks/... & done; wait``.

1. Trains the small suite's candidate (``configs/small/{task}.yaml``) on ``--seeds`` seeds, and a degraded variant
   (``configs/bench/{task}_half_budget.yaml``: the same config with the operator trained for half its steps) on as
   many, with the harness's own cached trainer and scorer (test split, the suite's steps and horizons).
2. Without retraining, draws ``--draws`` times a 3-seed "candidate" and a disjoint 3-seed "champion" and decides the
   gate the way CI does: seeds relabelled 0, 1, 2 on both sides (a rerun pairs seeds by label), trajectories paired.
   - **false alarm**: both sets from the candidate config (identical configs, other seeds), yet the gate fails;
   - **detection**: the candidate set from the degraded config, or from the candidate config with every trajectory
     scaled by 1 + δ (δ = 10%, 25%, 50%: a regression of known size with the seeds' real noise), and the gate fails.
   Each over a grid of gate values and confidence levels, plus the timing gate (false alarms only: no slower variant).
3. Prints a Markdown table (docs/gates.md holds it) and writes the raw counts as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ups.harness.gates import Gate, evaluate_gate
from ups.harness.runner import SuiteRunner, TaskEvaluation
from ups.harness.suite import SuiteConfig, load_suite
from ups.metrics.seeds import SeedStat

ROOT = Path(__file__).resolve().parents[1]
VALUES = (1.0, 1.05, 1.10, 1.20)
LEVELS = (0.8, 0.9, 0.95)
SCALES = (0.10, 0.25, 0.50)
TIMING = Gate(metric="wall_clock_s_per_rollout", rule="max_ratio", value=1.5, normalise="machine", abs_tol=0.02)


def runner_for(config: str, task: str, seeds: list[int], cache_dir: Path) -> SuiteRunner:
    small = load_suite(ROOT / "configs" / "suites" / "small_eval.yaml")
    entry = small.tasks[task].model_copy(update={"splits": ["test"]})
    suite = SuiteConfig.model_validate(
        small.model_dump() | {"seeds": seeds, "candidate": {"config": config}, "baselines": {}, "tasks": {task: entry}}
    )
    return SuiteRunner(suite, root=ROOT, cache_dir=cache_dir)


def train_and_score(runner: SuiteRunner, task: str, label: str) -> TaskEvaluation:
    """Every seed's test-split scoreboard: free seeds first (another process may hold the rest), then the rest."""
    results, started, done_times = {}, time.time(), []
    for wait in (False, True):
        for seed in runner.seeds:
            if seed in results:
                continue
            t0 = time.time()
            result = runner._evaluate_cached("candidate", task, seed, "test", wait=wait)
            if result is None:
                continue
            results[seed] = result
            done_times.append(time.time() - t0)
            left = len(runner.seeds) - len(results)
            eta = statistics.median(done_times) * left
            print(f"{label} seed {seed}: done ({len(results)}/{len(runner.seeds)}, "
                  f"{time.time() - started:.0f} s, ETA ~{eta:.0f} s)", flush=True)  # fmt: skip
    return TaskEvaluation(task, tuple(results[s] for s in runner.seeds))


def relabel(stat: SeedStat, seeds: list[int], scale: float = 1.0) -> SeedStat:
    """``stat`` restricted to ``seeds``, relabelled 0, 1, 2, ... (as a rerun with the same seed list would be)."""
    per_seed = {i: stat.per_seed[s] * scale for i, s in enumerate(seeds)}
    per_traj = {i: [x * scale for x in stat.per_traj[s]] for i, s in enumerate(seeds) if s in stat.per_traj}
    return SeedStat.from_seeds(per_seed, per_traj)


def fail_rate(pool_c: SeedStat, pool_h: SeedStat, gate: Gate, confidence: float, draws: np.ndarray, scale=1.0):
    """Share of draws (rows: 3 candidate seeds, then 3 champion seeds) in which ``gate`` fails."""
    fails = 0
    for row in draws:
        cand, champ = relabel(pool_c, list(row[:3]), scale), relabel(pool_h, list(row[3:]))
        fails += evaluate_gate(gate, cand, champ, confidence=confidence).outcome == "fail"
    return fails / len(draws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="burgers1d")
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--cache-dir", default=".ups_cache")
    parser.add_argument("--out", default="reports/gate_decisions.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per process, as each of the suite's two xdist workers has
    seeds = list(range(args.seeds))
    cache = Path(args.cache_dir)
    good = train_and_score(runner_for("configs/small/{task}.yaml", args.task, seeds, cache), args.task, "candidate")
    bad_cfg = "configs/bench/{task}_half_budget.yaml"
    bad = train_and_score(runner_for(bad_cfg, args.task, seeds, cache), args.task, "half budget")

    nrmse_good, nrmse_bad = good.stats["test"]["nrmse"], bad.stats["test"]["nrmse"]
    rng = np.random.default_rng(0)
    same = np.array([rng.choice(seeds, size=6, replace=False) for _ in range(args.draws)])
    # degraded candidate: 3 seeds of the degraded pool against 3 distinct seeds of the good pool
    cross = np.array([np.r_[rng.choice(seeds, 3, replace=False), rng.choice(seeds, 3, replace=False)]
                      for _ in range(args.draws)])  # fmt: skip
    ratio = nrmse_bad.mean / nrmse_good.mean
    rows = []
    for value in VALUES:
        for level in LEVELS:
            gate = Gate(metric="nrmse", rule="max_ratio", value=value)
            row = {"value": value, "confidence": level,
                   "false_alarm": fail_rate(nrmse_good, nrmse_good, gate, level, same),
                   "half_budget": fail_rate(nrmse_bad, nrmse_good, gate, level, cross)}  # fmt: skip
            for d in SCALES:
                row[f"+{d:.0%}"] = fail_rate(nrmse_good, nrmse_good, gate, level, same, scale=1 + d)
            rows.append(row)
    timing = {
        level: fail_rate(good.stats["test"]["wall_clock_norm"], good.stats["test"]["wall_clock_norm"], TIMING, level,
                         same)
        for level in LEVELS
    }  # fmt: skip

    per_seed = [nrmse_good.per_seed[s] for s in seeds]
    print(f"\n{args.task}: {args.seeds} seeds per config, {args.draws} draws of 3 vs 3 seeds, trajectories paired")
    spread = f"seed std; min {min(per_seed):.4g}, max {max(per_seed):.4g}"
    print(f"candidate nRMSE {nrmse_good.mean:.4g} ± {nrmse_good.std:.3g} ({spread}); "
          f"half budget {nrmse_bad.mean:.4g} ± {nrmse_bad.std:.3g}: ratio {ratio:.3f}\n")  # fmt: skip
    cols = ["false_alarm", "half_budget", *(f"+{d:.0%}" for d in SCALES)]
    print("| nrmse max_ratio | confidence | false alarm | detects half budget (×" + f"{ratio:.2f}) | "
          + " | ".join(f"detects {c}" for c in cols[2:]) + " |")  # fmt: skip
    print("|---" * (2 + len(cols)) + "|")
    for r in rows:
        print(f"| {r['value']:.2f} | {r['confidence']:.2f} | " + " | ".join(f"{100 * r[c]:.1f}%" for c in cols) + " |")
    print("\n| timing gate max_ratio 1.5 (machine-normalised, abs_tol 0.02) | confidence | false alarm |")
    print("|---|---|---|")
    for level, rate in timing.items():
        print(f"| wall_clock_s_per_rollout | {level:.2f} | {100 * rate:.1f}% |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"task": args.task, "seeds": args.seeds, "draws": args.draws, "ratio": ratio,
                               "nrmse": {"good": nrmse_good.as_dict(), "half_budget": nrmse_bad.as_dict()},
                               "rows": rows, "timing": {str(k): v for k, v in timing.items()}}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
