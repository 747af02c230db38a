"""Time the whole scoreboard on a [64, 32, 4, 64, 64] rollout (DESIGN.md: "well under a second on 2 cores").

Run: ``python benchmarks/bench_scoreboard.py [--repeats N] [--threads N] [--profile]``. For each of two 2D tasks
that together make every array metric apply (a periodic incompressible flow with a conserved density and shocks:
spectral metrics, ``div_free_error``, ``shock_*``; and a Dirichlet-walled one: ``bc_violation`` and the walled
divergence) it prints the median and fastest wall clock and the median process CPU time (all threads) of N runs after
a warm-up. On a shared machine the CPU time is the steadier figure; wall ≈ CPU / threads when the cores are free.
Inputs are float32, as the evaluator passes them. An ensemble case (B = 8, M = 8 samples) is timed separately.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time

import numpy as np

from ups.data.spec import ConservedQuantity, TaskSpec
from ups.metrics import compute_scoreboard
from ups.metrics.scoreboard import default_threads

SHAPE = (64, 32, 4, 64, 64)  # [B, T, C, H, W]
COMMON = {
    "fields": ("rho", "u", "v", "p"),
    "grid_shape": SHAPE[3:],
    "domain": (1.0, 1.0),
    "dt": 0.01,
    "conserved": (ConservedQuantity("mass", "rho"), ConservedQuantity("energy", "p")),
    "velocity": ("u", "v"),
    "incompressible": True,
    "shock_field": "rho",
}
SPECS = {
    "periodic": TaskSpec(task="bench_periodic", bc="periodic", **COMMON),
    "dirichlet": TaskSpec(task="bench_dirichlet", bc="dirichlet", **COMMON),
}


def rollout(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.standard_normal(SHAPE, dtype=np.float32) + 2.0
    pred = target + 0.1 * rng.standard_normal(SHAPE, dtype=np.float32)
    return pred, target


def time_it(fn, repeats: int) -> tuple[float, float, float]:
    """Median and fastest wall-clock seconds, and median process CPU seconds (all threads), after one warm-up."""
    fn()  # warm-up: cached shell groups, FFT plans, allocator
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="scoreboard threads (default: all CPUs)")
    parser.add_argument("--profile", action="store_true", help="print the 20 most expensive calls of one run")
    args = parser.parse_args()
    pred, target = rollout()
    threads = args.threads or default_threads()
    print(f"rollout {SHAPE} float32, {os.cpu_count()} CPUs, {threads} threads; median of {args.repeats} runs")
    for name, spec in SPECS.items():
        median, best, cpu = time_it(
            lambda spec=spec: compute_scoreboard(pred, target, spec, threads=threads), args.repeats
        )
        n_rows = sum(r.value is not None for r in compute_scoreboard(pred, target, spec))
        print(f"  {name:<10} ({n_rows} rows with a value): wall {median:.3f} s / {best:.3f} s, CPU {cpu:.3f} s")
    m = 8
    rng = np.random.default_rng(1)
    small = pred[:8], target[:8]
    samples = (small[1][None] + 0.1 * rng.standard_normal((m, *small[1].shape), dtype=np.float32)).astype(np.float32)
    median, best, cpu = time_it(
        lambda: compute_scoreboard(*small, SPECS["periodic"], samples=samples, threads=threads),
        max(1, args.repeats // 2),
    )
    print(f"  ensemble   (B = 8, M = {m} samples): wall {median:.3f} s / {best:.3f} s, CPU {cpu:.3f} s")
    if args.profile:
        code = "compute_scoreboard(pred, target, SPECS['periodic'], threads=1)"  # one thread: readable profile
        cProfile.runctx(code, globals(), locals(), "/tmp/ups_sb.prof")
        pstats.Stats("/tmp/ups_sb.prof").sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
