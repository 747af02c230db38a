"""Grid transfers shared by the solvers: the block average that brings a finer solver grid's cell means to the
stored grid."""

from __future__ import annotations

import numpy as np
from einops import reduce


def block_mean(x: np.ndarray, r: int, ndim: int) -> np.ndarray:
    """Average over ``r``-cell blocks of the last ``ndim`` axes: ``[..., n_0, ...]`` → ``[..., n_0 / r, ...]``."""
    if r == 1:
        return x
    axes = [f"a{i}" for i in range(ndim)]
    fine = " ".join(f"({a} p{i})" for i, a in enumerate(axes))
    sizes = {f"p{i}": r for i in range(ndim)}
    return reduce(x, f"... {fine} -> ... {' '.join(axes)}", "mean", **sizes)
