"""``ups dry-run CONFIG [--estimate-only]``: parameters, FLOPs/step, activation memory, time per epoch.

``--estimate-only`` uses only the config and the task's size table (no data is generated); without it the task's
dataset is generated or reused from the cache, so the probe trains on real frames with the real train statistics.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dry-run`` command to the ``ups`` parser."""
    text = "estimate parameters, FLOPs per step, activation memory and time per epoch of a training config"
    p = subparsers.add_parser("dry-run", help=text, description=text)
    p.add_argument("config", help="UPS config YAML")
    p.add_argument("--estimate-only", action="store_true", help="do not generate or read data; estimate from shapes")
    p.add_argument("--probe-steps", type=int, default=3, help="timed training steps of the probe (0: skip the probe)")
    p.add_argument("--no-probe", action="store_true", help="skip the timed probe (same as --probe-steps 0)")
    p.add_argument("--params-only", action="store_true", help="only count parameters (no FLOPs, memory or probe)")
    p.add_argument("--probe-batch", type=int, default=None, help="probe batch (default: configured; at most 8 on CPU)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--cache-dir", default=".ups_cache", help="dataset cache (without --estimate-only)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_dry_run)


def run_dry_run(args: argparse.Namespace) -> int:
    import torch

    from ups.config import load_config
    from ups.errors import UserInputError
    from ups.models.dry_run import estimate, format_report

    cfg = load_config(args.config)
    if args.probe_batch is not None and args.probe_batch < 1:
        raise UserInputError(f"--probe-batch must be >= 1, got {args.probe_batch}")
    kwargs: dict = {}
    if not args.estimate_only:
        from ups.data.generate import cached_dataset
        from ups.data.store import DatasetStore

        store = DatasetStore.open(cached_dataset(cfg.data.task, cfg.data.size, cfg.data.seed, args.cache_dir))
        spec, stats = store.spec, store.stats()
        train = store.fields("train")  # [traj, time, C, *S]
        counts = {"train": int(train.shape[0])}
        draw = _sampler(train, store, cfg.training.time_stride)
        kwargs = dict(spec=spec, stats=stats, counts=counts, n_frames=int(train.shape[1]), data=draw)
    torch.manual_seed(cfg.run.seed)
    steps = 0 if args.no_probe else args.probe_steps
    report = estimate(
        cfg, probe_steps=steps, probe_batch=args.probe_batch, device=args.device, params_only=args.params_only, **kwargs
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report, args.config))
    return 0


def _sampler(train, store, stride: int):
    """``batch -> (u0, u1, params)``: random (trajectory, frame, frame + stride) train samples, normalised."""
    import numpy as np
    import torch

    spec, stats = store.spec, store.stats()
    mean = torch.tensor([stats[f][0] for f in spec.fields]).view(1, -1, *[1] * spec.ndim)
    std = torch.tensor([stats[f][1] or 1.0 for f in spec.fields]).view(1, -1, *[1] * spec.ndim)
    params = store.params("train")
    rng = np.random.default_rng(0)

    def draw(batch: int):
        i = rng.integers(0, train.shape[0], batch)
        t = rng.integers(0, train.shape[1] - stride, batch)
        u0 = (torch.from_numpy(train[i, t]) - mean) / std
        u1 = (torch.from_numpy(train[i, t + stride]) - mean) / std
        p = torch.from_numpy(params[i]) if params.shape[1] else None
        return u0.float(), u1.float(), p

    return draw
