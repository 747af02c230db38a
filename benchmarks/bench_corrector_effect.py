"""Does the diffusion corrector earn its place? The same trained weights rolled out with and without it.

Run: ``python benchmarks/bench_corrector_effect.py [--champions champions/small] [--tasks burgers1d ns2d ...]``.

For every task and seed of the champion snapshot (the small suite's candidate, trained with its corrector), on the
suite's data, test split, 16 steps from the stored initial frame:

- **operator alone**: the operator's rollout, corrector switched off (``corrector=None``, same weights);
- **with corrector**: the suite's setting (``diffusion.cadence_steps`` of the config, noise from ``run.seed``);
- **ensemble**: ``--members`` corrector-sampled rollouts (the suite's ensemble) for CRPS and ECE. The operator alone
  is deterministic: its CRPS is that of a one-member ensemble, i.e. its mean absolute error, and a calibration error
  is undefined (every level's coverage is 0 or 1), so calibration can only be compared where the corrector's
  ensemble is at least as accurate.

Prints a Markdown table (docs/small_suite.md holds it): nRMSE@16, rollout-mean nRMSE, CRPS per task, mean over seeds.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from ups.data.generate import cached_dataset
from ups.data.store import DatasetStore
from ups.eval.evaluate import rollout_split, sample_split
from ups.harness.suite import load_suite
from ups.inference.surrogate import InferenceModel
from ups.metrics.accuracy import nrmse, nrmse_at
from ups.metrics.ensemble import crps, ece
from ups.training.state import load_trained

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="configs/suites/small_eval.yaml")
    ap.add_argument("--champions", default=None, help="default: the suite's champions folder")
    ap.add_argument("--tasks", nargs="*", default=None)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--cache-dir", default=".ups_cache")
    args = ap.parse_args()
    torch.set_num_threads(1)

    suite = load_suite(ROOT / args.suite)
    champions = ROOT / (args.champions or suite.champions)
    rows = []
    for task in args.tasks or list(suite.tasks):
        entry = suite.tasks[task]
        store = DatasetStore.open(cached_dataset(task, entry.size, suite.data_seed, Path(args.cache_dir)))
        k = entry.steps
        per = {"op": [], "op_mean": [], "op_crps": [], "corr": [], "corr_mean": [], "ens_crps": [], "ens_ece": []}
        for seed_dir in sorted((champions / f"{task}.ckpt").glob("s*")):
            operator, corrector = load_trained(seed_dir)
            cfg = operator.config
            alone = InferenceModel(operator, None, cfg)
            full = InferenceModel(operator, corrector, cfg)
            pred, target = rollout_split(alone, store, "test", k)
            per["op"].append(nrmse_at(pred, target, k))
            per["op_mean"].append(nrmse(pred, target))
            per["op_crps"].append(float(torch.mean(torch.abs(pred - target))))  # CRPS of one member = MAE
            pred_c, _ = rollout_split(full, store, "test", k)
            per["corr"].append(nrmse_at(pred_c, target, k))
            per["corr_mean"].append(nrmse(pred_c, target))
            seed = int(seed_dir.name[1:])

            def draw(inputs, steps, params, full=full, seed=seed):
                return full.sample_ensemble(inputs, steps, params, args.members, seed)

            samples = sample_split(draw, store, "test", k, full.n_input)
            per["ens_crps"].append(crps(samples, target))
            per["ens_ece"].append(ece(samples, target))
            print(f"{task} {seed_dir.name}: " + ", ".join(f"{n} {v[-1]:.4g}" for n, v in per.items()), flush=True)
        rows.append((task, len(per["op"]), {n: statistics.fmean(v) for n, v in per.items()}))

    print(
        f"\n| task | seeds | nRMSE@{k} operator alone | with corrector | rollout mean alone | with corrector "
        "| CRPS alone (= MAE) | CRPS corrector ensemble | ECE ensemble |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task, n, m in rows:
        print(
            f"| {task} | {n} | {m['op']:.4g} | {m['corr']:.4g} | {m['op_mean']:.4g} | {m['corr_mean']:.4g} "
            f"| {m['op_crps']:.4g} | {m['ens_crps']:.4g} | {m['ens_ece']:.3g} |"
        )


if __name__ == "__main__":
    main()
