"""One allocator tweak shared by the hot numerical loops (finite-volume solvers, the chunked scoreboard)."""

from __future__ import annotations

import numpy as np


def raise_mmap_threshold(nbytes: int) -> None:
    """Allocate and free one untouched block of ``nbytes`` so glibc's malloc reuses heap memory for temporaries.

    glibc serves blocks above its mmap threshold (128 KiB at start) with fresh mappings whose pages fault in on every
    use and are unmapped on free; freeing such a block raises the dynamic threshold to its size (up to 32 MiB).
    Until that happens, loops that allocate large temporaries spend about as long in page faults as in compute
    (measured: the first euler solve of a process, and the scoreboard, each ran about 2× slower). ``np.empty``
    touches no pages, so with other allocators this costs nothing.
    """
    block = np.empty(min(nbytes, 32 << 20), dtype=np.uint8)
    del block
