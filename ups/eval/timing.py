"""Wall-clock measurement with the pdearena protocol (warm-up, synchronised repeats, median) and a machine reference.

Time-based gates compare *machine-normalised* times: a rollout's seconds divided by the seconds of a fixed reference
workload timed in the same process, so a slower CI machine does not fail a faster model (DESIGN.md, Gates).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_s: float
    samples_s: tuple[float, ...]


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _reference_work() -> Callable[[], None]:
    """A fixed CPU workload (matmuls and FFTs of the sizes surrogates use), a few milliseconds on a laptop core."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=gen)
    u = torch.randn(64, 4096, generator=gen)

    def work() -> None:
        b = a
        for _ in range(8):
            b = torch.tanh(b @ a)
        torch.fft.irfft(torch.fft.rfft(u, dim=-1), n=4096, dim=-1)

    return work


def time_normalised(
    fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1, device: torch.device | None = None
) -> tuple[Timing, Timing, Timing]:
    """Time ``fn`` and the reference workload back to back, ``repeats`` times.

    Interleaving makes ``fn`` and the reference see the same machine state. The normalised time is the ratio of
    the two *minima* (the timeit convention): background load only ever adds time, so the fastest repeat of each is
    the best estimate of its undisturbed cost, and their ratio is what stays stable on a shared machine.

    Returns:
        ``(raw, reference, normalised)`` timings; ``normalised.median_s`` is ``min(raw) / min(reference)`` and its
        ``samples_s`` are the per-repeat ratios.
    """
    ref = _reference_work()
    for _ in range(warmup):
        ref()
        fn()
    _sync(device)
    raw, refs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ref()
        mid = time.perf_counter()
        fn()
        _sync(device)
        raw.append(time.perf_counter() - mid)
        refs.append(mid - start)
    ratios = [r / q for r, q in zip(raw, refs, strict=True)]
    return (
        Timing(statistics.median(raw), tuple(raw)),
        Timing(statistics.median(refs), tuple(refs)),
        Timing(min(raw) / min(refs), tuple(ratios)),
    )
