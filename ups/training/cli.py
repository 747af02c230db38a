"""``ups train --config C --stage all|operator|diff_residual|consistency_distill|steady_prior [--resume]``.

Exit codes: 0 trained (an early stop is a normal end, reported in the last line), 2 bad user input, 3 a hard guard
aborted training (the line says why and where the last good checkpoint is). Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import argparse
import os
import sys

from ups.training.rundir import STAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a config's stages into artifacts/runs/<run_id>/")
    p.add_argument("--config", required=True, help="config YAML")
    p.add_argument("--stage", default="all", choices=("all", *STAGES), help="stage(s) to train (default: all)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoints/last")
    p.add_argument("--run-dir", default=None, help="run directory (default: <run-root>/<config hash>-<commit>)")
    p.add_argument("--run-root", default=None, help="parent of run directories (default: logging.output_dir)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: run.device)")
    p.add_argument("--data", default=None, help="dataset store (default: the cached built-in dataset)")
    p.add_argument("--cache-dir", default=".ups_cache", help="dataset cache directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / periodic lines")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ups.config import load_config
    from ups.training.guards import TrainingAborted
    from ups.training.trainer import train

    main = int(os.environ.get("RANK", "0")) == 0
    cfg = load_config(args.config)  # train() checks the rest before it writes anything
    try:
        result = train(
            cfg,
            stage=args.stage,
            run_root=args.run_root,
            run_dir=args.run_dir,
            resume=args.resume,
            device=args.device,
            data_path=args.data,
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
        )
    except TrainingAborted as err:
        if main:
            print(f"ups: training aborted: {err}", file=sys.stderr)
        return TrainingAborted.exit_code
    if main:
        m = result.metrics
        val = next((r["val_nrmse"] for r in m["stages"].values() if "val_nrmse" in r), None)
        shown = f" val_nrmse={val:.4g}" if val is not None else ""
        base = f" persistence={m['baseline']['proxy']:.4g}" if m.get("baseline") else ""
        print(f"{m['guard']} run_dir={result.run_dir} checkpoint={result.checkpoint_path}{shown}{base}")
        if m["guard_reason"]:
            print(m["guard_reason"])
    return 0
