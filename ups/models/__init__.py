"""Surrogate models. Every entry of :data:`MODELS` builds an object that satisfies :class:`Surrogate`."""

# Register members explicitly so `MODELS` is complete after `import ups.models`.
from ups.models import fno as fno  # noqa: E402  (imports neuraloperator only when an FNO is built)
from ups.models import latent_operator as latent_operator  # noqa: E402
from ups.models import persistence as persistence  # noqa: E402
from ups.models import unet as unet  # noqa: E402
from ups.models.base import MODELS, Surrogate

__all__ = ["MODELS", "Surrogate"]
