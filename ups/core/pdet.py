"""PDE-Transformer backbone on latent tokens (Holzschuh et al. 2025), used as the increment f in z' = z + f(z, c).

Layout: tokens ``[B, C·N, D_in]`` (C token streams of N tokens each, stream-major; C = 1 unless tokens are
channel-separated). Inside, a linear map lifts D_in to the hidden width D, then a U-shape of stages runs on the token
sequence (``operator.pdet``):

- stage i works on N / u_stages[i] tokens; going down, ``r = u_stages[i+1] / u_stages[i]`` consecutive tokens are
  merged by a linear map ``(r·D) -> D``; going up, a linear map ``D -> (r·D)`` splits them again and a linear map
  fuses the result with the skip connection from the way down (``[up, skip] (2D) -> D``);
- stage i runs ``depths[i]`` blocks: the bottleneck all of them, every other stage ``ceil(d/2)`` on the way down and
  the rest on the way up, so the total depth is ``sum(depths)`` (S: [8, 8, 8] = 24);
- blocks alternate unshifted / shifted windows in execution order (``shifted_windows``), the window at a stage being
  ``min(group_size, tokens there)``; the stochastic-depth rate grows linearly from 0 to ``drop_path`` with depth;
- a final AdaLN-modulated norm and a zero-initialised linear map return to D_in, so f = 0 at initialisation and the
  operator starts as latent persistence.

There is no absolute position embedding (positions enter only through RoPE inside windows), so on a periodic domain
shifting the token sequence by a multiple of ``group_size · u_stages[-1]`` tokens shifts the output the same way.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ups.config.schema import PDETConfig
from ups.core.blocks import PDETBlock
from ups.core.conditioning import AdaLNModulation
from ups.core.norms import modulate


class PDETransformer(nn.Module):
    """The backbone: ``z [B, C·N, D_in], c [B, Dc] | None -> f [B, C·N, D_in]``.

    Args:
        config: the ``operator.pdet`` section (kept as ``self.config``).
        n_streams: C, the number of token streams (physical channels when channel-separated, else 1). Attention across
            streams is added when ``config.channel_separated`` and C > 1.
        cond_dim: width of the conditioning vector (AdaLN-Zero); None: unconditioned pre-norm blocks.
        periodic: the tokens tile a periodic domain (shifted windows wrap around instead of being masked).
        checkpointing: recompute each block in the backward pass (activation checkpointing) while training.
    """

    def __init__(
        self,
        config: PDETConfig,
        *,
        n_streams: int = 1,
        cond_dim: int | None = None,
        periodic: bool = True,
        checkpointing: bool = False,
    ):
        super().__init__()
        self.config, self.n_streams, self.periodic, self.checkpointing = config, n_streams, periodic, checkpointing
        d = config.hidden_dim
        factors = config.u_stages if config.u_shape else (1,)
        depths = config.depths if config.u_shape else (sum(config.depths),)
        self.factors = tuple(factors)
        last = len(depths) - 1
        down = [depths[i] if i == last else math.ceil(depths[i] / 2) for i in range(len(depths))]
        up = [depths[i] - down[i] for i in range(last)]
        total = sum(depths)
        counter = iter(range(total))

        def make_stage(n_blocks: int) -> nn.ModuleList:
            blocks = []
            for _ in range(n_blocks):
                k = next(counter)
                blocks.append(
                    PDETBlock(
                        d,
                        config.num_heads,
                        config.group_size,
                        mlp_ratio=config.mlp_ratio,
                        channel_attention=config.channel_separated and n_streams > 1,
                        cond_dim=cond_dim,
                        qk_norm=config.qk_rmsnorm,
                        shift=config.shifted_windows and k % 2 == 1,
                        drop_path=config.drop_path * k / max(total - 1, 1),
                        dropout=config.dropout,
                    )
                )
            return nn.ModuleList(blocks)

        self.lift = nn.Linear(config.input_dim, d)
        self.down_stages = nn.ModuleList(make_stage(n) for n in down)  # execution order: down path, then up path
        ratios = [factors[i + 1] // factors[i] for i in range(last)]
        self.merges = nn.ModuleList(nn.Linear(r * d, d) for r in ratios)
        self.splits = nn.ModuleList(nn.Linear(d, r * d) for r in ratios)
        self.fuses = nn.ModuleList(nn.Linear(2 * d, d) for _ in ratios)
        self.up_stages = nn.ModuleList(make_stage(up[i]) for i in reversed(range(last)))  # coarse to fine
        self.final_norm = nn.LayerNorm(d, eps=1e-6, elementwise_affine=cond_dim is None)
        self.final_modulation = AdaLNModulation(cond_dim, d, 2) if cond_dim is not None else None
        self.out = nn.Linear(d, config.input_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _run(self, stage: nn.ModuleList, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        for block in stage:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, c, periodic=self.periodic, use_reentrant=False)
            else:
                x = block(x, c, periodic=self.periodic)
        return x

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        n_tokens = z.shape[1] // self.n_streams
        if n_tokens * self.n_streams != z.shape[1] or n_tokens % self.factors[-1]:
            raise ValueError(f"{z.shape[1]} tokens: not {self.n_streams} streams of a multiple of {self.factors[-1]}")
        x = rearrange(self.lift(z), "b (c n) d -> b c n d", c=self.n_streams)
        skips = []
        for i, stage in enumerate(self.down_stages):
            x = self._run(stage, x, c)
            if i < len(self.merges):
                skips.append(x)
                r = self.factors[i + 1] // self.factors[i]
                x = self.merges[i](rearrange(x, "b c (n r) d -> b c n (r d)", r=r))
        for j, stage in enumerate(self.up_stages):
            i = len(self.merges) - 1 - j
            r = self.factors[i + 1] // self.factors[i]
            x = rearrange(self.splits[i](x), "b c n (r d) -> b c (n r) d", r=r)
            x = self.fuses[i](torch.cat([x, skips.pop()], dim=-1))
            x = self._run(stage, x, c)
        h = self.final_norm(x)
        if self.final_modulation is not None:
            shift, scale = (rearrange(t, "b d -> b 1 1 d") for t in self.final_modulation(c))
            h = modulate(h, shift, scale)
        return rearrange(self.out(h), "b c n d -> b (c n) d")
