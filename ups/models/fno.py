"""FNO baseline: the Fourier Neural Operator (Li et al. 2021) of the ``neuraloperator`` package, as a residual
next-frame surrogate ``u_{t+1} = u_t + FNO([u_t, p])`` (:class:`~ups.models.baseline.GridBaseline`).

``neuraloperator`` is an optional extra (``pip install 'ups[fno]'``); it is imported when an FNO is built, so
``import ups`` never needs it, and building one without it raises a one-line :class:`~ups.errors.MissingExtra`
that says how to install it.

Choices on top of neuralop's defaults (lifting/projection MLPs, linear skips, channel MLPs, GELU):

- ``n_modes``: ``baseline.modes`` per axis in neuralop's convention (wavenumbers ``|k| ≤ modes / 2`` are kept),
  capped at the grid size;
- periodic tasks: no positional embedding and no domain padding, so the model is translation-equivariant like the
  PDE; other tasks: neuralop's grid embedding (the walls are at fixed positions) and 12.5% domain padding, so the
  FFT's implied periodicity does not wrap one wall onto the other;
- the last projection layer starts at zero, so an untrained model is persistence (as the U-Net);
- the FNO always runs in float32 with autocast off: FFTs have no bf16 kernels and the spectral weights are complex64.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ups.errors import MissingExtra
from ups.models.base import MODELS
from ups.models.baseline import GridBaseline

INSTALL_HINT = "pip install 'ups[fno]' (or: pip install 'neuraloperator>=2.0')"
DOMAIN_PADDING = 0.125  # fraction of each axis padded on non-periodic tasks


def neuralop_fno() -> type[nn.Module]:
    """``neuralop.models.FNO``, or a one-line MissingExtra (a UserInputError) saying how to install it."""
    try:
        from neuralop.models import FNO
    except ImportError as err:
        raise MissingExtra(f"run.model fno needs the neuraloperator package: {INSTALL_HINT} ({err})") from None
    return FNO


class FullPrecision(nn.Module):
    """Runs a neuralop model in float32 with autocast off, and keeps its state dict to tensors only."""

    def __init__(self, fno: nn.Module):
        super().__init__()
        self.fno = fno

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.fno(x.float())

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        out = super().state_dict(*args, **kwargs)
        # neuralop's BaseModel.state_dict adds its constructor arguments (not tensors) under the root key
        # "_metadata" of whatever dict it fills; weights go to safetensors and the EMA, so drop it here.
        out.pop("_metadata", None)
        return out


@MODELS.register("fno")
class FNOBaseline(GridBaseline):
    """neuralop's FNO as a residual next-frame surrogate; sizes from ``baseline.width/modes/layers``."""

    name = "fno"

    def make_net(self, in_channels: int, out_channels: int) -> nn.Module:
        fno_cls = neuralop_fno()
        b, spec = self.config.baseline, self.spec
        periodic = spec.bc == "periodic"
        fno = fno_cls(
            n_modes=tuple(min(b.modes, n) for n in spec.grid_shape),
            in_channels=in_channels,
            out_channels=out_channels,
            hidden_channels=b.width,
            n_layers=b.layers,
            positional_embedding=None if periodic else "grid",
            domain_padding=None if periodic else DOMAIN_PADDING,
        )
        last = fno.projection.fcs[-1]  # start as persistence, like the U-Net: the increment is 0 until trained
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        return FullPrecision(fno)
