"""Train a config on small-suite burgers1d with ``ups train`` and score its 16-step rollout on the test split.

Run: ``python benchmarks/bench_train_burgers.py [--config configs/train_burgers_tiny.yaml] [--run-root DIR]``.

It trains through the ``train`` command's own parser (``ups.training.cli.register``, the code path of ``ups train``),
then reloads the trained modules with ``load_trained`` and rolls the operator out from the first stored frame of
every test trajectory, exactly as the evaluator does. Prints the training wall clock (and process CPU time, the
honest figure on a shared machine), the model's nRMSE@16 and nRMSE over the rollout, persistence's, and their ratio.
The "Done when" bar of issue #6: nRMSE@16 ≤ persistence / 5 on the test split, in a few CPU minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ups.config.loader import load_config
from ups.data.generate import cached_dataset
from ups.data.store import DatasetStore
from ups.eval.evaluate import rollout_split
from ups.metrics import nrmse, nrmse_at
from ups.models.persistence import Persistence
from ups.training.cli import register
from ups.training.rundir import run_id
from ups.training.state import load_trained

STEPS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/train_burgers_tiny.yaml")
    parser.add_argument("--run-root", default="artifacts/runs")
    parser.add_argument("--cache-dir", default=".ups_cache")
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = load_config(args.config)
    store = DatasetStore.open(cached_dataset(cfg.data.task, cfg.data.size, cfg.data.seed, args.cache_dir))

    train_parser = argparse.ArgumentParser(prog="ups")
    register(train_parser.add_subparsers(dest="command", required=True))
    run_dir = Path(args.run_root) / run_id(cfg)  # fixed before training: a commit made meanwhile must not move it
    train_args = train_parser.parse_args(
        ["train", "--config", args.config, "--run-dir", str(run_dir), "--cache-dir", args.cache_dir]
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    code = train_args.func(train_args)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if code != 0:
        raise SystemExit(code)

    operator, corrector = load_trained(run_dir)
    pred, target = rollout_split(operator, store, args.split, STEPS)
    base, _ = rollout_split(Persistence(), store, args.split, STEPS)
    result = {
        "run_dir": str(run_dir),
        "train_wall_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
        "torch_threads": torch.get_num_threads(),
        "params": operator.num_parameters(),
        "corrector": type(corrector).__name__ if corrector is not None else None,
        f"model_nrmse@{STEPS}": nrmse_at(pred, target, STEPS),
        f"persistence_nrmse@{STEPS}": nrmse_at(base, target, STEPS),
        "model_nrmse": nrmse(pred, target),
        "persistence_nrmse": nrmse(base, target),
    }
    result["ratio@16"] = result[f"persistence_nrmse@{STEPS}"] / result[f"model_nrmse@{STEPS}"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
