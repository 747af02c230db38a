"""Where does the latent operator lose to the FNO? Its error split into representation, step and rollout.

Run: ``python benchmarks/bench_peer_gap.py [--champions champions/small] [--tasks burgers1d euler1d]``.

For every task and seed of a champion snapshot (the small suite's candidate), on the suite's data, test split, all
nRMSE (``ups.metrics.accuracy.nrmse_at``, decoded physical fields) at the suite's last step k:

- **round trip @0 / @k**: ``decode(encode(u))`` against ``u`` for the stored frame 0 and frame k. No step is taken:
  this is the floor the latent representation puts under any rollout, whatever the operator learns;
- **one step @k**: ``decode(step(encode(u_{k-1})))`` against ``u_k``, from the encoded truth (teacher forcing);
- **rollout @k**: the operator's own k-step rollout from frame 0 (what the suite scores, corrector off).

A round trip that is already at or above a peer's whole k-step rollout error says the representation, not the
operator's training, is what loses at this budget.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from ups.data.generate import cached_dataset
from ups.data.store import DatasetStore
from ups.harness.suite import load_suite
from ups.inference.surrogate import InferenceModel
from ups.metrics.accuracy import nrmse_at
from ups.training.state import load_trained

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def decomposition(operator, fields: torch.Tensor, params: torch.Tensor | None, k: int) -> dict[str, float]:
    """``fields [B, T, C, *S]`` physical: the four errors of the module docstring."""
    operator.eval()

    def through(u: torch.Tensor, steps: int) -> torch.Tensor:
        z = operator.encode(operator.normalise(u)).float()
        cond = operator.condition(u.shape[0], params=params)
        for _ in range(steps):
            z = operator.step(z, cond)
        return operator.denormalise(operator.decode(z).float())

    one = lambda pred, true: nrmse_at(pred[:, None], true[:, None], 1)  # noqa: E731
    rollout = InferenceModel(operator, None, operator.config).rollout(fields[:, :1], k, params)
    return {
        "round trip @0": one(through(fields[:, 0], 0), fields[:, 0]),
        f"round trip @{k}": one(through(fields[:, k], 0), fields[:, k]),
        f"one step @{k}": one(through(fields[:, k - 1], 1), fields[:, k]),
        f"rollout @{k}": nrmse_at(rollout, fields[:, 1 : k + 1], k),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="configs/suites/small_eval.yaml")
    ap.add_argument("--champions", default=None, help="default: the suite's champions folder")
    ap.add_argument("--tasks", nargs="*", default=None)
    ap.add_argument("--cache-dir", default=".ups_cache")
    args = ap.parse_args()
    torch.set_num_threads(1)

    suite = load_suite(ROOT / args.suite)
    champions = ROOT / (args.champions or suite.champions)
    table = []
    for task in args.tasks or list(suite.tasks):
        entry = suite.tasks[task]
        store = DatasetStore.open(cached_dataset(task, entry.size, suite.data_seed, Path(args.cache_dir)))
        fields = torch.from_numpy(store.fields("test"))
        params = torch.from_numpy(store.params("test")) if store.spec.param_names else None
        per: dict[str, list[float]] = {}
        for seed_dir in sorted((champions / f"{task}.ckpt").glob("s*")):
            operator, _ = load_trained(seed_dir)
            for name, value in decomposition(operator, fields, params, entry.steps).items():
                per.setdefault(name, []).append(value)
            print(f"{task} {seed_dir.name}: " + ", ".join(f"{n} {v[-1]:.4g}" for n, v in per.items()), flush=True)
        table.append((task, len(next(iter(per.values()))), {n: statistics.fmean(v) for n, v in per.items()}))

    names = list(table[0][2])
    print("\n| task | seeds | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for task, n, m in table:
        print(f"| {task} | {n} | " + " | ".join(f"{m[c]:.4g}" for c in names) + " |")


if __name__ == "__main__":
    main()
