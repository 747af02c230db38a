"""Time `generate_dataset` for every built-in task at one size (issue target: all `small` tasks within 60 s total).

Usage: python benchmarks/bench_data_generate.py [--size small] [--repeats 3] [--tasks a,b]

Each task is generated `repeats` times into a fresh temporary folder (store write and hash included); the median per
task and the sum of medians are printed. CPU time is printed beside wall time because shared machines inflate wall.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ups.data.generate import generate_dataset
from ups.data.solvers import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS.names()))
    args = parser.parse_args()
    total_wall = total_cpu = 0.0
    print(f"{'task':<14}{'median wall s':>15}{'median cpu s':>15}")
    for task in args.tasks.split(","):
        walls, cpus = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                w0, c0 = time.perf_counter(), time.process_time()
                generate_dataset(task, args.size, Path(tmp) / f"{task}.zarr", seed=0)
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        total_wall += wall
        total_cpu += cpu
        print(f"{task:<14}{wall:>15.2f}{cpu:>15.2f}")
    print(f"{'total':<14}{total_wall:>15.2f}{total_cpu:>15.2f}")


if __name__ == "__main__":
    main()
