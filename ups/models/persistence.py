"""Persistence baseline: every predicted frame is a copy of the last input frame.

It is the floor every task reports beside the model (DESIGN.md, principle 5): a surrogate that does not beat
persistence has learned nothing about the dynamics.
"""

from __future__ import annotations

import torch
from einops import repeat

from ups.models.base import MODELS


@MODELS.register("persistence")
class Persistence:
    n_input = 1

    @classmethod
    def build(cls, cfg=None, spec=None, stats=None) -> Persistence:
        return cls()

    def rollout(self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        last = inputs[:, -1]  # [B, C, *S]
        # materialise the copies: a real model writes every frame, so the timing should too
        return repeat(last, "b ... -> b t ...", t=steps).clone()

    def num_parameters(self) -> int:
        return 0
