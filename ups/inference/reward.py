"""The test-time-search reward: physics penalties of fields decoded by the operator's own trained decoder.

Principle 3 of DESIGN.md: the decoder TTC scores with is ``operator.decoder`` itself — the same module object, so its
weights are the trained (EMA) ones the checkpoint holds; ``ttc.decoder`` in the config only describes it. Terms, each
measured against the reference frame (the last input frame) and made scale-free, and skipped when the task lacks the
field (or the weight is 0):

- ``mass``: ``mean_q |M_q(u) − M_q(ref)| / ∫|ref_q|`` over ``reward.mass_field`` (when the task has it) or, by default,
  every conserved quantity except the energy;
- ``energy``: ``|E(u) − E(ref)| / ∫|ref_E|`` of ``reward.energy_field``, by default the field of the conserved quantity
  named ``energy`` (euler1d/2d ``E``);
- ``negativity``: ``mean_p ∫ max(−u_p, 0) / ∫|ref_p|`` over the positive fields
  (:func:`~ups.inference.physics.positive_channels`);
- ``tv``: ``mean_c max(TV_c(u) − TV_c(ref), 0) / TV_c(ref)`` (total-variation growth, i.e. new oscillations), with the
  anisotropic ``TV(u) = Σ_a ∫ |∂_a u|`` by one-sided differences (wrapping on periodic domains).

``reward = −Σ_term weight · term`` (higher is better, 0 at best). Integrals use the cell volume of the grid they are
taken on (``reward.grid`` for decoded fields, the task grid for the reference), so every term approximates the same
continuous quantity on both. A reference quantity that is identically zero makes its term absolute instead of
relative.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from einops import rearrange

from ups.config.schema import TTCConfig
from ups.data.spec import TaskSpec
from ups.inference.physics import integrals, positive_channels, spatial_dims
from ups.io.geometry import grid_coords
from ups.models.latent_operator import LatentOperator

TERMS = ("mass", "energy", "negativity", "tv")
Reference = dict[str, torch.Tensor]


def _safe(scale: torch.Tensor) -> torch.Tensor:
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def total_variation(u: torch.Tensor, spacing: tuple[float, ...], periodic: bool) -> torch.Tensor:
    """``TV_c = Σ_a Σ_S |u(x + h_a e_a) − u(x)| · V / h_a`` for ``u [..., C, *S]``: ``[..., C]`` (≈ Σ_a ∫|∂_a u|)."""
    nd = len(spacing)
    volume = math.prod(spacing)
    out = 0.0
    for a, h in enumerate(spacing):
        dim = u.ndim - nd + a
        diff = torch.roll(u, -1, dims=dim) - u if periodic else torch.diff(u, dim=dim)
        out = out + diff.abs().sum(dim=spatial_dims(nd)) * volume / h
    return out


class TTCReward:
    """Scores latent states by physics penalties of their decoded fields (module docstring).

    Args:
        operator: the trained latent operator; its ``decoder`` (the same object) decodes the candidates.
        spec: the task whose fields decide which terms exist (default ``operator.spec``; its grid must be the
            operator's).
        cfg: the ``ttc`` section (``reward.grid``, ``reward.mass_field``, ``reward.energy_field``,
            ``reward.weights``).

    Attributes:
        decoder: ``operator.decoder`` itself.
        weights: ``{term: weight}`` of the terms that exist for the task and have a non-zero weight.
        channels: ``{term: channel indices}`` each term reads.
        grid: the grid candidates are decoded on.
    """

    def __init__(self, operator: LatentOperator, spec: TaskSpec | None, cfg: TTCConfig):
        spec = operator.spec if spec is None else spec
        self.operator, self.decoder, self.spec, self.config = operator, operator.decoder, spec, cfg
        rc = cfg.reward
        self.grid = tuple(rc.grid) if rc.grid is not None else spec.grid_shape
        if len(self.grid) != spec.ndim:
            raise ValueError(f"ttc.reward.grid {list(self.grid)}: task {spec.task} has {spec.ndim} spatial axes")
        self.spacing = tuple(length / n for length, n in zip(spec.domain, self.grid, strict=True))
        self.coords = None
        if self.grid != operator.spec.grid_shape:
            domain = torch.tensor(spec.domain, dtype=torch.float32)
            self.coords = grid_coords(replace(spec, grid_shape=self.grid)) * domain  # physical [prod(G), d]

        energy = rc.energy_field
        if energy is None:
            energy = next((q.field for q in spec.conserved if q.name == "energy"), None)
        energy_chans = (spec.channel(energy),) if energy in spec.fields else ()
        if rc.mass_field is not None:
            mass_chans = (spec.channel(rc.mass_field),) if rc.mass_field in spec.fields else ()
        else:
            mass_chans = tuple(c for c in spec.conserved_channels if c not in energy_chans)
        self.channels = {
            "mass": mass_chans,
            "energy": energy_chans,
            "negativity": positive_channels(spec),
            "tv": tuple(range(len(spec.fields))),
        }
        w = rc.weights
        given = {"mass": w.mass, "energy": w.energy, "negativity": w.penalty_negative, "tv": w.tv}
        self.weights = {t: float(given[t]) for t in TERMS if given[t] > 0 and self.channels[t]}

    # --- fields ---------------------------------------------------------------------------------------------------

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[n, N, E]`` → physical fields on the reward grid ``[n, C, *grid]`` (float32)."""
        op = self.operator
        if self.coords is None:
            return op.denormalise(op.decode(z).float())
        values = op.decode(z, self.coords.to(z.device)).float()  # [n, prod(G), C]
        u = rearrange(op.denormalise(values, channel_dim=-1), "n q c -> n c q")
        return u.unflatten(2, self.grid)

    def _measure(self, u: torch.Tensor, spacing: tuple[float, ...]) -> Reference:
        """Every functional the active terms need, of physical fields ``u [n, C, *S]`` on a grid of ``spacing``."""
        nd, vol = len(spacing), math.prod(spacing)
        out: Reference = {}
        for term in ("mass", "energy"):
            if term in self.weights:
                out[term] = integrals(u, self.channels[term], vol, nd)
                out[f"{term}_abs"] = integrals(u.abs(), self.channels[term], vol, nd)
        if "negativity" in self.weights:
            chans = self.channels["negativity"]
            out["negative"] = integrals((-u).clamp_min(0), chans, vol, nd)
            out["negativity_abs"] = integrals(u.abs(), chans, vol, nd)
        if "tv" in self.weights:
            out["tv"] = total_variation(u, spacing, self.spec.bc == "periodic")
        return out

    def reference(self, u0: torch.Tensor) -> Reference:
        """The reference functionals of physical frames ``u0 [B, C, *S]`` on the task grid."""
        return self._measure(u0.float(), self.spec.spacing)

    # --- scores ---------------------------------------------------------------------------------------------------

    def terms(self, u: torch.Tensor, ref: Reference) -> dict[str, torch.Tensor]:
        """The unweighted penalties ``{term: [n]}`` of physical fields ``u [n, C, *grid]`` (active terms only).

        ``ref`` comes from :meth:`reference` with batch 1 (broadcast) or n.
        """
        m = self._measure(u, self.spacing)
        out = {}
        for term in ("mass", "energy"):
            if term in self.weights:
                out[term] = ((m[term] - ref[term]).abs() / _safe(ref[f"{term}_abs"])).mean(dim=-1)
        if "negativity" in self.weights:
            out["negativity"] = (m["negative"] / _safe(ref["negativity_abs"])).mean(dim=-1)
        if "tv" in self.weights:
            out["tv"] = ((m["tv"] - ref["tv"]).clamp_min(0) / _safe(ref["tv"])).mean(dim=-1)
        return out

    def score_fields(self, u: torch.Tensor, ref: Reference) -> torch.Tensor:
        """``−Σ weight · term`` of physical fields ``u [n, C, *grid]``: ``[n]`` (0 when no term applies)."""
        total = torch.zeros(u.shape[0], device=u.device, dtype=torch.float32)
        for term, value in self.terms(u, ref).items():
            total = total - self.weights[term] * value.float()
        return total

    def __call__(self, z: torch.Tensor, ref: Reference) -> torch.Tensor:
        """Rewards ``[n]`` of latent states ``z [n, N, E]`` (decoded by the trained decoder)."""
        return self.score_fields(self.decode(z), ref)
