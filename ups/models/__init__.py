"""Surrogate models. Every entry of :data:`MODELS` builds an object that satisfies :class:`Surrogate`.

``MODELS`` and ``Surrogate`` are loaded on first use (PEP 562), together with every member module, so ``MODELS`` is
complete whenever it is seen; importing a submodule alone (e.g. ``ups.models.cli`` to build the ``ups`` parser)
does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ups.models.base import MODELS, Surrogate

__all__ = ["MODELS", "Surrogate"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ups.models' has no attribute {name!r}")
    import ups.models.fno  # noqa: F401  (imports neuraloperator only when an FNO is built)
    import ups.models.latent_operator  # noqa: F401
    import ups.models.persistence  # noqa: F401
    import ups.models.unet  # noqa: F401
    from ups.models import base

    return getattr(base, name)
