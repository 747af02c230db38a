"""What every trained field surrogate shares: scaling, the autocast policy and the checkpoint round trip.

The latent operator and the grid baselines normalise each channel with train-split statistics held as ``mean``/``std``
buffers, autocast on CUDA when the config asks, and save as safetensors-ready tensors plus JSON metadata (config,
task spec, statistics) from which ``build`` makes the same model again; one mixin keeps them identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import torch
from pydantic import ValidationError

from ups.config.schema import UPSConfig
from ups.data.spec import TaskSpec
from ups.errors import UserInputError


class FieldScaling:
    """Mixin for an ``nn.Module`` with ``mean`` and ``std`` buffers ``[C]``, a ``config`` (:class:`UPSConfig`), a
    ``spec``, train-split ``stats`` and a classmethod ``build(cfg, spec, stats)``."""

    name: ClassVar[str]  # the MODELS name, stored in checkpoints
    checkpoint_format: ClassVar[str]
    mean: torch.Tensor
    std: torch.Tensor
    config: UPSConfig
    spec: TaskSpec
    stats: dict[str, tuple[float, float]]

    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Every learned tensor (CPU, contiguous, unshared: safetensors-ready) and JSON-safe metadata to rebuild."""
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        meta = {
            "format": self.checkpoint_format,
            "model": self.name,
            "config": self.config.model_dump(mode="json"),
            "spec": self.spec.to_attrs(),
            "stats": {f: list(ms) for f, ms in self.stats.items()},
        }
        return tensors, meta

    @classmethod
    def from_checkpoint(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]):
        """Rebuild the exact model from :meth:`to_checkpoint` output (no unpickling); bad input is a UserInputError."""
        if meta.get("format") != cls.checkpoint_format or meta.get("model") != cls.name:
            found = f"{meta.get('format')!r} ({meta.get('model')!r})"
            raise UserInputError(f"checkpoint: format {found}, expected {cls.checkpoint_format!r} ({cls.name!r})")
        try:
            cfg = UPSConfig.model_validate(meta["config"])
            spec = TaskSpec.from_attrs(meta["spec"])
            stats = {f: (float(m), float(s)) for f, (m, s) in meta["stats"].items()}
        except (KeyError, TypeError, ValueError, ValidationError) as err:
            raise UserInputError(f"checkpoint: unreadable metadata ({' '.join(str(err).split())[:200]})") from None
        model = cls.build(cfg, spec, stats)
        try:
            model.load_state_dict(dict(tensors), strict=True)
        except RuntimeError as err:
            raise UserInputError(f"checkpoint: tensors do not match the config ({str(err).splitlines()[0]})") from None
        return model

    def normalise(self, u: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        """Physical → model space along ``channel_dim`` (1 for ``[B, C, *S]``, 2 for ``[B, T, C, *S]``, -1 for point
        values ``[B, N, C]``)."""
        shape = [1] * u.ndim
        shape[channel_dim] = -1
        return (u - self.mean.view(shape)) / self.std.view(shape)

    def denormalise(self, u: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        """Model → physical space (inverse of :meth:`normalise`)."""
        shape = [1] * u.ndim
        shape[channel_dim] = -1
        return u * self.std.view(shape) + self.mean.view(shape)

    def autocast(self) -> AbstractContextManager:
        """bf16 (or fp16) autocast on CUDA when ``training.amp`` and ``run.mixed_precision`` ask, else a no-op."""
        precision = self.config.run.mixed_precision
        if self.mean.device.type != "cuda" or not self.config.training.amp or precision == "fp32":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
