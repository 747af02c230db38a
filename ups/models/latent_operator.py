"""The latent operator: encoder → z_{t+1} = z_t + f(z_t, c) → any-point decoder.

UPT-style latent I/O (Alkin et al. 2024) around a PDE-Transformer backbone (Holzschuh et al. 2025). The encoder
(``latent.encoder``: :class:`~ups.io.GridEncoder` or :class:`~ups.io.UPTEncoder`) maps a field to
``latent.tokens`` tokens of width ``latent.dim`` per token stream; the backbone advances the latent state by one
model step; the :class:`~ups.io.AnyPointDecoder` decodes any state at any coordinates. Training uses the same pieces
(``encode``, ``step``, ``decode``) plus UPT's inverse-encoding and inverse-decoding losses, which keep encoder and
decoder consistent so rollouts can stay in latent space.

Spaces: ``encode``, ``step``, ``decode`` and the losses work on *normalised* fields ``(u - mean) / std`` with the
train-split statistics the model was built with (``normalise`` / ``denormalise``); only ``rollout`` (the
:class:`~ups.models.base.Surrogate` protocol) takes and returns physical fields. Coordinates are physical (domain
units, origin 0); grid fields are channels-first ``[B, C, *S]``, point values channels-last ``[B, N, C]``.

One model step is ``training.time_stride`` stored frames of Δt = ``training.dt`` (default: ``time_stride × spec.dt``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ups.config.schema import UPSConfig
from ups.core.conditioning import BC_KINDS, Conditioner
from ups.core.pdet import PDETransformer
from ups.data.spec import TaskSpec
from ups.errors import UserInputError
from ups.io.dec_grid import GridDecoder
from ups.io.decoder_anypoint import AnyPointDecoder
from ups.io.enc_grid import GridEncoder
from ups.io.enc_upt import UPTEncoder
from ups.io.geometry import grid_coords, token_anchors, token_grid_shape, token_order
from ups.models.base import MODELS
from ups.models.scaling import FieldScaling

CHECKPOINT_FORMAT = "ups.latent_operator/1"


def _heads(dim: int, preferred: int) -> int:
    """The largest head count ≤ ``preferred`` that divides ``dim``."""
    return max(h for h in range(1, preferred + 1) if dim % h == 0)


def _condition_inputs(cfg: UPSConfig, spec: TaskSpec) -> tuple[bool, tuple[int, ...], bool]:
    """(use Δt, parameter columns, use BC type) from ``operator.conditioning.inputs``; bad names are user errors."""
    use_dt, use_bc, cols = False, False, []
    for name in cfg.operator.conditioning.inputs:
        if name == "dt":
            use_dt = True
        elif name == "bc_type":
            use_bc = True
        elif name == "params":
            cols += range(len(spec.param_names))
        elif name in spec.param_names:
            cols.append(spec.param_names.index(name))
        elif name == "geometry_id":
            raise UserInputError(f"operator.conditioning.inputs: task {spec.task} provides no geometry ids")
        else:
            valid = ", ".join(["dt", "params", "bc_type", *spec.param_names])
            raise UserInputError(f"operator.conditioning.inputs: unknown input {name!r}; valid: {valid}")
    return use_dt, tuple(sorted(set(cols))), use_bc


@MODELS.register("latent_operator")
class LatentOperator(FieldScaling, nn.Module):
    """Encoder, conditioner, PDE-Transformer backbone and any-point decoder, trained and saved together.

    Args:
        config: the validated config (kept as ``self.config``): ``latent``, ``operator``, ``data.patch_size``,
            ``training`` (dt, time_stride, amp, activation checkpointing), ``run`` (mixed precision, seed).
        spec: the task (kept as ``self.spec``): fields, grid, domain, boundary type, parameter names, dt.
        stats: train-split statistics ``{field: (mean, std)}``; a zero std is replaced by 1 (constant field).
    """

    n_input = 1
    name = "latent_operator"
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, config: UPSConfig, spec: TaskSpec, stats: Mapping[str, tuple[float, float]]):
        super().__init__()
        self.config, self.spec = config, spec
        self.stats = {f: (float(stats[f][0]), float(stats[f][1])) for f in spec.fields}
        lat, pdet, cond = config.latent, config.operator.pdet, config.operator.conditioning
        n_ch, periodic = len(spec.fields), spec.bc == "periodic"
        self.n_streams = n_ch if pdet.channel_separated else 1
        self.dt = config.training.dt or config.training.time_stride * spec.dt
        self.register_buffer("mean", torch.tensor([self.stats[f][0] for f in spec.fields]))
        self.register_buffer("std", torch.tensor([self.stats[f][1] or 1.0 for f in spec.fields]))
        self.register_buffer("domain", torch.tensor(spec.domain, dtype=torch.float32), persistent=False)
        self.register_buffer("grid", grid_coords(spec), persistent=False)  # normalised grid points [prod(S), d]

        if lat.encoder == "grid":
            self.encoder: nn.Module = GridEncoder(
                n_ch,
                spec.grid_shape,
                lat.dim,
                lat.tokens,
                patch_size=config.data.patch_size,
                channel_separated=pdet.channel_separated,
            )
            anchors = self.encoder.anchors
        else:
            shape = token_grid_shape(lat.tokens, spec.grid_shape)
            anchors = token_anchors(shape, token_order(shape))
            self.encoder = UPTEncoder(
                n_ch,
                lat.dim,
                anchors,
                supernodes=lat.supernodes,
                frequencies=lat.decoder.frequencies,
                num_heads=_heads(lat.dim, lat.decoder.num_heads),
                channel_separated=pdet.channel_separated,
                periodic=periodic,
                seed=config.run.seed,
            )
        use_dt, cols, use_bc = _condition_inputs(config, spec)
        self.conditioner = (
            Conditioner(
                pdet.hidden_dim,
                use_dt=use_dt,
                param_indices=cols,
                use_bc=use_bc,
                learned_fourier=cond.time_encoding == "learned_fourier",
            )
            if cond.adaln
            else None
        )
        self.backbone = PDETransformer(
            pdet,
            n_streams=self.n_streams,
            cond_dim=pdet.hidden_dim if cond.adaln else None,
            periodic=periodic,
            checkpointing=config.training.activation_checkpointing,
        )
        dec = lat.decoder
        if dec.kind == "grid":
            if not isinstance(self.encoder, GridEncoder):
                raise ValueError("latent.decoder.kind grid needs latent.encoder grid (it inverts the patch layout)")
            self.decoder: nn.Module = GridDecoder(self.encoder, n_ch, lat.dim, dec.hidden_dim)
        else:
            self.decoder = AnyPointDecoder(
                lat.dim,
                n_ch,
                anchors,
                n_streams=self.n_streams,
                hidden_dim=dec.hidden_dim,
                num_layers=dec.num_layers,
                num_heads=dec.num_heads,
                frequencies=dec.frequencies,
                periodic=periodic,
                local_bias=dec.local_bias,
            )

    @property
    def decodes_anywhere(self) -> bool:
        """Whether the decoder takes arbitrary query points (any-point) or only the task grid (grid decoder)."""
        return not isinstance(self.decoder, GridDecoder)

    # --- construction and persistence ---------------------------------------------------------------------------

    @classmethod
    def build(cls, cfg: UPSConfig | None, spec: TaskSpec, stats: Mapping[str, tuple[float, float]]) -> LatentOperator:
        """Build from the config (None: defaults for ``spec.task``); config/data mismatches raise UserInputError."""
        cfg = cfg if cfg is not None else UPSConfig(data={"task": spec.task})
        if cfg.data.fields is not None and tuple(cfg.data.fields) != spec.fields:
            raise UserInputError(f"data.fields: the latent operator models every field of {spec.task} {spec.fields}")
        if spec.ndim not in (1, 2):
            raise UserInputError(f"task {spec.task}: the latent operator supports 1D and 2D grids, got {spec.ndim}D")
        missing = [f for f in spec.fields if f not in stats]
        if missing:
            raise UserInputError(f"task {spec.task}: no normalisation statistics for field {missing[0]!r}")
        try:
            return cls(cfg, spec, stats)
        except ValueError as err:
            hint = "" if cfg.latent.encoder == "upt" else " (latent.encoder: upt takes any token count)"
            raise UserInputError(f"latent.tokens / data.patch_size: {err}{hint}") from None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: encoder, conditioner, backbone, decoder."""
        parts = {"encoder": self.encoder, "conditioner": self.conditioner, "backbone": self.backbone}
        parts["decoder"] = self.decoder
        return {k: sum(p.numel() for p in m.parameters()) if m is not None else 0 for k, m in parts.items()}

    # --- the operator -----------------------------------------------------------------------------------------------

    def encode(self, fields: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised fields → latent ``z [B, S·T, E]``.

        Args:
            fields: ``[B, C, *S]`` on the task grid (``coords`` None), or point values ``[B, N, C]``.
            coords: physical point coordinates ``[N, d]`` or ``[B, N, d]`` (UPT encoder only).
        """
        if coords is None:
            if isinstance(self.encoder, GridEncoder):
                return self.encoder(fields)
            return self.encoder(self.grid, rearrange(fields, "b c ... -> b (...) c"))
        if isinstance(self.encoder, GridEncoder):
            raise ValueError("the grid encoder takes fields on the task grid; use latent.encoder: upt for points")
        return self.encoder(coords / self.domain, fields)

    def decode(self, z: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        """Latent → normalised fields: ``[B, C, *S]`` on the task grid, or ``[B, Q, C]`` at physical ``coords``."""
        if coords is not None:
            if not self.decodes_anywhere:
                raise ValueError("the grid decoder decodes on the task grid only (latent.decoder.kind: anypoint)")
            return self.decoder(z, coords / self.domain)
        out = self.decoder(z, self.grid)  # [B, prod(S), C]
        return rearrange(out, "b n c -> b c n").unflatten(2, self.spec.grid_shape)

    def condition(
        self,
        batch: int,
        params: torch.Tensor | None = None,
        dt: torch.Tensor | float | None = None,
        bc: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Conditioning vector ``c [B, Dc]`` (None without AdaLN); defaults: the model's Δt and the task's BC type."""
        if self.conditioner is None:
            return None
        dev = self.grid.device
        dt = torch.full((batch,), float(self.dt if dt is None else dt), device=dev) if not torch.is_tensor(dt) else dt
        if bc is None:
            bc = torch.full((batch,), BC_KINDS.index(self.spec.bc), device=dev, dtype=torch.long)
        params = params.to(dev, torch.float32) if params is not None else None
        return self.conditioner(batch, dt=dt.to(dev), params=params, bc=bc.to(dev))

    def step(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """One model step ``z + f(z, c)``; the state keeps its dtype (float32 even under autocast)."""
        return z + self.backbone(z, cond).to(z.dtype)

    def rollout_latent(self, z: torch.Tensor, steps: int, cond: torch.Tensor | None) -> torch.Tensor:
        """``steps`` model steps from ``z [B, N, E]`` -> ``[B, steps, N, E]`` (the start state excluded)."""
        states = []
        for _ in range(steps):
            z = self.step(z, cond)
            states.append(z)
        return torch.stack(states, dim=1)

    def forward(self, fields: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """One step on the grid in model space: ``[B, C, *S] -> [B, C, *S]``."""
        return self.decode(self.step(self.encode(fields), cond))

    def rollout(self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """Surrogate protocol: physical ``inputs [B, n_input, C, *S]`` -> physical ``[B, steps, C, *S]``.

        Runs in eval mode without gradients (autocast on CUDA), on the model's device; the result comes back on the
        inputs' device and dtype. The latent state is advanced in float32 and decoded after every step.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad(), self.autocast():
                dev = self.grid.device
                u = self.normalise(inputs[:, -1].to(dev, torch.float32))
                cond = self.condition(u.shape[0], params=params)
                z = self.encode(u).float()
                frames = []
                for _ in range(steps):
                    z = self.step(z, cond)
                    frames.append(self.decode(z).float())
                out = self.denormalise(torch.stack(frames, dim=1), channel_dim=2)
        finally:
            self.train(was_training)
        return out.to(inputs.device, inputs.dtype)

    # --- UPT losses ---------------------------------------------------------------------------------------------------

    def inverse_encoding_loss(
        self, fields: torch.Tensor, coords: torch.Tensor | None = None, query_points: int | None = None
    ) -> torch.Tensor:
        """UPT inverse encoding: ``mean (decode(encode(u)) - u)²`` in normalised space, over sampled points.

        Args:
            fields: as for :meth:`encode` (normalised).
            coords: as for :meth:`encode`.
            query_points: points decoded per sample, drawn uniformly without replacement (all when fewer); default
                ``latent.decoder.query_points``.

        Returns:
            Scalar mean over batch, sampled points and channels.
        """
        z = self.encode(fields, coords)
        if coords is None:
            target, pts = rearrange(fields, "b c ... -> b (...) c"), self.grid
        else:
            target, pts = fields, coords / self.domain
        n = target.shape[1]
        q = min(query_points or self.config.latent.decoder.query_points, n) if self.decodes_anywhere else n
        if q < n:
            sel = torch.randperm(n, device=target.device)[:q]
            target, pts = target[:, sel], pts[..., sel, :]
        return F.mse_loss(self.decoder(z, pts).float(), target.float())

    def inverse_decoding_loss(self, z: torch.Tensor, detach_target: bool = True) -> torch.Tensor:
        """UPT inverse decoding: ``mean (encode(decode(z)) - z)²`` with the field decoded on the task grid.

        Args:
            z: latent ``[B, S·T, E]`` (e.g. a predicted state).
            detach_target: compare against ``z`` without gradient (the target is not pulled towards the encoder).

        Returns:
            Scalar mean over batch, tokens and features.
        """
        z_rec = self.encode(self.decode(z))
        target = z.detach() if detach_target else z
        return F.mse_loss(z_rec.float(), target.float())
