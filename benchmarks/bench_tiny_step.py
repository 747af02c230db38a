"""Forward+backward time of the ``tiny`` latent operator on small-suite batches, and dry-run vs a measured epoch.

Protocol (pdearena-style): build the model, run ``--warmup`` untimed steps, then time ``--repeats`` steps (forward,
backward, AdamW update), each on a fresh batch; report the median and the interquartile range. Two losses are timed:
``step`` (encode → one operator step → decode on the grid, MSE) and ``train`` (the dry-run's representative training
step: ``step`` plus UPT's inverse-encoding and inverse-decoding losses).

Cases: burgers1d small (batch 12, 256 points, 1 channel) and a 2D 64×64 periodic grid (2 channels, batch 4).

With ``--epoch`` it also generates burgers1d small (cached under ``--cache-dir``), asks ``ups dry-run``'s estimator
for the time per epoch (probe on real frames), then trains one real epoch (every (trajectory, frame) pair once, in
shuffled batches of ``training.batch_size``) and prints the ratio.

    python benchmarks/bench_tiny_step.py [--threads 2] [--repeats 20] [--epoch]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ups.config import load_config
from ups.data.solvers import TASKS
from ups.data.spec import TaskSpec
from ups.models import MODELS
from ups.models.dry_run import estimate, training_loss

TINY = Path(__file__).resolve().parents[1] / "configs" / "presets" / "tiny.yaml"


def _step_loss(model, u0, u1, params):
    cond = model.condition(u0.shape[0], params=params)
    return torch.nn.functional.mse_loss(model.decode(model.step(model.encode(u0), cond)), u1)


def time_case(spec: TaskSpec, batch: int, loss_fn, repeats: int, warmup: int) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile) seconds of one forward+backward+AdamW step."""
    torch.manual_seed(0)
    model = MODELS.get("latent_operator").build(load_config(TINY), spec, {f: (0.0, 1.0) for f in spec.fields})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    shape = (batch, len(spec.fields), *spec.grid_shape)
    times = []
    for i in range(warmup + repeats):
        u0, u1 = torch.randn(shape), torch.randn(shape)
        params = torch.rand(batch, len(spec.param_names)) * 0.04 + 0.005
        start = time.perf_counter()
        loss_fn(model, u0, u1, params).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4)
    return statistics.median(times), q[0], q[2]


def measured_epoch(cache_dir: str) -> tuple[float, float, int]:
    """(dry-run estimate, measured seconds, steps) of one epoch of the tiny preset on burgers1d small."""
    from ups.data.generate import cached_dataset
    from ups.data.store import DatasetStore
    from ups.models.cli import _sampler

    cfg = load_config(TINY)
    store = DatasetStore.open(cached_dataset("burgers1d", "small", 0, cache_dir))
    train, params = store.fields("train"), store.params("train")  # [traj, time, C, S], [traj, P]
    stride = cfg.training.time_stride
    report = estimate(
        cfg,
        spec=store.spec,
        stats=store.stats(),
        counts={"train": train.shape[0]},
        n_frames=train.shape[1],
        probe_steps=5,
        probe_batch=cfg.training.batch_size,
        device="cpu",
        data=_sampler(train, store, stride),
    )
    torch.manual_seed(0)
    model = MODELS.get("latent_operator").build(cfg, store.spec, store.stats())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pairs = [(i, t) for i in range(train.shape[0]) for t in range(train.shape[1] - stride)]
    order = np.random.default_rng(0).permutation(len(pairs))
    spec = store.spec
    mean = torch.tensor([store.stats()[f][0] for f in spec.fields]).view(1, -1, 1)
    std = torch.tensor([store.stats()[f][1] for f in spec.fields]).view(1, -1, 1)
    steps, start = 0, time.perf_counter()
    for lo in range(0, len(pairs), cfg.training.batch_size):
        idx = np.array([pairs[k] for k in order[lo : lo + cfg.training.batch_size]])
        u0 = (torch.from_numpy(train[idx[:, 0], idx[:, 1]]) - mean) / std
        u1 = (torch.from_numpy(train[idx[:, 0], idx[:, 1] + stride]) - mean) / std
        training_loss(model, u0, u1, torch.from_numpy(params[idx[:, 0]])).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
    return report.seconds_per_epoch, time.perf_counter() - start, steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--epoch", action="store_true", help="also compare dry-run's epoch estimate with a real epoch")
    parser.add_argument("--cache-dir", default=".ups_cache")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, tiny preset, fwd+bwd+AdamW per step")
    burgers = TASKS.get("burgers1d").spec("small")
    grid2d = TaskSpec("grid2d", ("u", "v"), (64, 64), (1.0, 1.0), 0.1, bc="periodic", param_names=("nu",))
    for name, spec, batch in [("burgers1d small, 256 pts, 1 ch", burgers, 12), ("2D 64x64, 2 ch", grid2d, 4)]:
        for label, fn in [("step", _step_loss), ("train", training_loss)]:
            med, q1, q3 = time_case(spec, batch, fn, args.repeats, args.warmup)
            iqr = f"IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f}"
            print(f"  {name:<32} batch {batch:>2}  {label:<5}  median {med * 1e3:7.1f} ms  ({iqr})")
    if args.epoch:
        est, real, steps = measured_epoch(args.cache_dir)
        print(f"  epoch (burgers1d small, {steps} steps): dry-run estimate {est:.2f} s, measured {real:.2f} s, "
              f"ratio {est / real:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
