"""Grid baselines: what the U-Net and the FNO share — normalisation, parameter channels, residual steps, checkpoints.

A grid baseline maps the current frame to the next on the task grid, ``u_{t+1} = u_t + net([u_t, p])`` in normalised
space (``(u - mean) / std`` with the train-split statistics it was built with), and rolls out autoregressively. The
PDE parameters ``p`` (the task's ``param_names``) enter as constant input channels, two per parameter:
``ln |p|`` and ``sign p`` — the conditioner's log-magnitude convention, since parameters span decades (ν = 1e-3 …
1e-2) and the nets have no train-split statistics of them.

Subclasses only build ``self.net`` (``make_net(in_channels, out_channels)``: ``[B, C_in, *S] -> [B, C_out, *S]``); they
are registered in :data:`~ups.models.base.MODELS` and trained by :func:`ups.training.train` (operator stage only).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch
from torch import nn

from ups.config.schema import UPSConfig
from ups.data.spec import TaskSpec
from ups.errors import UserInputError
from ups.models.scaling import FieldScaling

CHECKPOINT_FORMAT = "ups.baseline/1"
PARAM_FLOOR = 1e-12  # |p| floor inside the log (a zero parameter gives ln 1e-12 and sign 0)


class GridBaseline(FieldScaling, nn.Module, ABC):
    """A next-frame network on the task grid, wrapped as a :class:`~ups.models.base.Surrogate`.

    Args:
        config: the validated config (kept as ``self.config``); sizes come from ``config.baseline``.
        spec: the task (kept as ``self.spec``); 1D or 2D grids.
        stats: train-split statistics ``{field: (mean, std)}``; a zero std is replaced by 1 (constant field).
    """

    checkpoint_format = CHECKPOINT_FORMAT
    n_input = 1

    def __init__(self, config: UPSConfig, spec: TaskSpec, stats: Mapping[str, tuple[float, float]]):
        super().__init__()
        self.config, self.spec = config, spec
        self.stats = {f: (float(stats[f][0]), float(stats[f][1])) for f in spec.fields}
        self.register_buffer("mean", torch.tensor([self.stats[f][0] for f in spec.fields]))
        self.register_buffer("std", torch.tensor([self.stats[f][1] or 1.0 for f in spec.fields]))
        n_fields = len(spec.fields)
        self.net = self.make_net(n_fields + 2 * len(spec.param_names), n_fields)

    @abstractmethod
    def make_net(self, in_channels: int, out_channels: int) -> nn.Module:
        """The network ``[B, in_channels, *S] -> [B, out_channels, *S]`` (the increment, in normalised space)."""

    # --- construction and persistence ---------------------------------------------------------------------------

    @classmethod
    def build(cls, cfg: UPSConfig | None, spec: TaskSpec, stats: Mapping[str, tuple[float, float]]) -> GridBaseline:
        """Build from the config (None: defaults for ``spec.task``); unsupported tasks raise UserInputError."""
        cfg = cfg if cfg is not None else UPSConfig(data={"task": spec.task})
        if cfg.data.fields is not None and tuple(cfg.data.fields) != spec.fields:
            raise UserInputError(f"data.fields: {cls.name} models every field of {spec.task} {spec.fields}")
        if spec.ndim not in (1, 2):
            raise UserInputError(f"task {spec.task}: {cls.name} supports 1D and 2D grids, got {spec.ndim}D")
        if spec.steady:
            raise UserInputError(f"task {spec.task} is steady: {cls.name} predicts the next frame")
        missing = [f for f in spec.fields if f not in stats]
        if missing:
            raise UserInputError(f"task {spec.task}: no normalisation statistics for field {missing[0]!r}")
        return cls(cfg, spec, stats)

    def num_parameters(self) -> int:
        """Real-valued parameters: a complex weight (the FNO's spectral weights) counts twice."""
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in self.parameters())

    # --- the model --------------------------------------------------------------------------------------------------

    def param_channels(self, params: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        """``params [B, P]`` → constant channels ``[B, 2P, *S]`` (``ln|p|`` then ``sign p`` per parameter), or None."""
        if not self.spec.param_names:
            return None
        if params is None:
            raise ValueError(f"task {self.spec.task} has parameters {self.spec.param_names}; pass params [B, P]")
        p = params.to(like.device, torch.float32)
        feats = torch.cat([p.abs().clamp_min(PARAM_FLOOR).log(), p.sign()], dim=1)  # [B, 2P]
        return feats.view(*feats.shape, *([1] * (like.ndim - 2))).expand(-1, -1, *like.shape[2:]).to(like.dtype)

    def forward(self, u: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """One step in model space: normalised ``u [B, C, *S]`` → ``u + net([u, p])``, in ``u``'s dtype."""
        extra = self.param_channels(params, u)
        x = u if extra is None else torch.cat([u, extra], dim=1)
        return u + self.net(x).to(u.dtype)

    def rollout_normalised(self, u: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """``steps`` steps from normalised ``u [B, C, *S]`` → ``[B, steps, C, *S]`` (start excluded; differentiable)."""
        frames = []
        for _ in range(steps):
            u = self(u, params)
            frames.append(u)
        return torch.stack(frames, dim=1)

    def rollout(self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """Surrogate protocol: physical ``inputs [B, n_input, C, *S]`` → physical ``[B, steps, C, *S]``.

        Runs in eval mode without gradients (autocast on CUDA when configured; the state stays float32), on the
        model's device; the result comes back on the inputs' device and dtype.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad(), self.autocast():
                u = self.normalise(inputs[:, -1].to(self.mean.device, torch.float32))
                out = self.denormalise(self.rollout_normalised(u, steps, params), channel_dim=2)
        finally:
            self.train(was_training)
        return out.to(inputs.device, inputs.dtype)
