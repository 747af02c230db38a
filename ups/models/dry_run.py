"""Dry run of a training config: parameters, FLOPs per step, activation memory and a time-per-epoch estimate.

Everything shape-dependent is measured on the ``meta`` device (no memory, no arithmetic), so it is cheap for the S/B/L
presets at their configured batch on a laptop:

- parameters: per part (encoder, conditioner, backbone, decoder);
- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one training step (forward + backward of
  :func:`training_loss`) at the configured batch, and the forward FLOPs of one model step per sample;
- activation memory: the bytes of the tensors autograd saves for backward in that step (collected with
  ``torch.autograd.graph.saved_tensors_hooks``, parameters and shared storages counted once, float32); on CUDA the
  probe also measures the real peak (``torch.cuda.max_memory_allocated``, bf16 autocast when configured);
- time per epoch: a short timed probe of real training steps (forward, backward, AdamW update; median after a
  warm-up) times the steps per epoch, which are ``ceil(samples / batch)`` with one sample per (train trajectory, start
  frame) pair: ``n_train · (n_frames - time_stride)``. On CPU the probe may run a smaller batch and scale linearly.

The architecture follows UPT (Alkin et al. 2024) and PDE-Transformer (Holzschuh et al. 2025); see docs/models.md.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ups.config.schema import UPSConfig
from ups.data.spec import TaskSpec
from ups.errors import UserInputError


@dataclass
class DryRunReport:
    """What ``ups dry-run`` prints (sizes in bytes, times in seconds, FLOPs as counted by torch)."""

    model: str
    task: str
    size: str
    grid_shape: tuple[int, ...]
    n_fields: int
    batch_size: int
    parameters: int
    parameter_counts: dict[str, int] = field(default_factory=dict)
    flops_forward_per_sample: float | None = None
    flops_train_step: float | None = None
    activation_bytes: float | None = None
    peak_memory_bytes: float | None = None  # measured on CUDA only
    samples_per_epoch: int | None = None
    steps_per_epoch: int | None = None
    probe_device: str | None = None
    probe_batch: int | None = None
    seconds_per_step: float | None = None
    seconds_per_epoch: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_size_of(cfg: UPSConfig) -> int:
    """Training batch: ``max(1, batch_tokens // latent.tokens)`` when ``training.batch_tokens`` is set, else
    ``training.batch_size``."""
    t = cfg.training
    return max(1, t.batch_tokens // cfg.latent.tokens) if t.batch_tokens else t.batch_size


def training_loss(model: nn.Module, u0: torch.Tensor, u1: torch.Tensor, params: torch.Tensor | None) -> torch.Tensor:
    """The probe's representative training step on normalised frames ``u0 → u1`` (``[B, C, *S]``).

    One model step decoded on the grid (MSE), plus UPT's inverse-encoding and inverse-decoding losses with the
    configured weights (``training.loss``).
    """
    w = model.config.training.loss
    cond = model.condition(u0.shape[0], params=params)
    z = model.encode(u0)
    z_next = model.step(z, cond)
    loss = F.mse_loss(model.decode(z_next).float(), u1.float())
    if w.inverse_encode:
        loss = loss + w.inverse_encode * model.inverse_encoding_loss(u0)
    if w.inverse_decode:
        loss = loss + w.inverse_decode * model.inverse_decoding_loss(z_next)
    return loss


def _inputs(spec: TaskSpec, batch: int, device: torch.device | str) -> tuple[torch.Tensor, ...]:
    shape = (batch, len(spec.fields), *spec.grid_shape)
    params = torch.rand(batch, len(spec.param_names), device=device) + 0.5 if spec.param_names else None
    return torch.randn(shape, device=device), torch.randn(shape, device=device), params


def _meta_measure(model: nn.Module, spec: TaskSpec, batch: int) -> tuple[float, float, float]:
    """(forward FLOPs per sample of one model step, FLOPs of a training step at ``batch``, saved-activation bytes).

    ``model`` lives on the meta device.
    """
    u0, u1, params = _inputs(spec, batch, "meta")
    with FlopCounterMode(display=False) as fwd:
        model.eval()
        with torch.no_grad():
            model(u0[:1], model.condition(1, params=None if params is None else params[:1]))
        model.train()
    param_storages = {p.untyped_storage()._cdata for p in model.parameters()}
    param_storages |= {b.untyped_storage()._cdata for b in model.buffers()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in param_storages:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with FlopCounterMode(display=False) as train:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = training_loss(model, u0, u1, params)
        loss.backward()
    return float(fwd.get_total_flops()), float(train.get_total_flops()), float(sum(seen.values()))


def _probe(model: nn.Module, spec: TaskSpec, batch: int, steps: int, device: torch.device, data=None):
    """Median seconds of one real training step (forward, backward, AdamW) after one warm-up; CUDA peak bytes."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 1):
        u0, u1, params = data(batch) if data is not None else _inputs(spec, batch, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with model.autocast():
            loss = training_loss(model, u0.to(device), u1.to(device), None if params is None else params.to(device))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
        if not torch.isfinite(loss):
            raise UserInputError(f"dry-run: the probe loss is not finite ({loss.item()})")
    peak = float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return statistics.median(times), peak


def samples_per_epoch(cfg: UPSConfig, counts: dict | None, n_frames: int | None) -> int | None:
    """One sample per (train trajectory, start frame): ``n_train · (n_frames - time_stride)``; None if unknown."""
    if not counts or "train" not in counts or not n_frames:
        return None
    return int(counts["train"]) * max(0, int(n_frames) - cfg.training.time_stride)


def estimate(
    cfg: UPSConfig,
    *,
    spec: TaskSpec | None = None,
    stats: dict[str, tuple[float, float]] | None = None,
    counts: dict | None = None,
    n_frames: int | None = None,
    probe_steps: int = 3,
    probe_batch: int | None = None,
    device: str = "auto",
    data=None,
    params_only: bool = False,
) -> DryRunReport:
    """Estimate the cost of training ``cfg`` (see the module docstring).

    Args:
        cfg: the validated config.
        spec, stats, counts, n_frames: the task's spec, train statistics, trajectories per split and stored frames;
            default: the task generator's size (``data.task``, ``data.size``) without generating any data, unit stats.
        probe_steps: timed training steps (0: no probe, no time estimate).
        probe_batch: batch of the probe; default: the configured batch on CUDA, at most 8 on CPU.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        data: optional ``batch -> (u0, u1, params)`` callable supplying real normalised frames to the probe.
        params_only: stop after counting parameters.
    """
    from ups.data.solvers import TASKS
    from ups.models import MODELS

    generator = TASKS.get(cfg.data.task)
    if spec is None:
        if cfg.data.size not in generator.sizes:
            raise UserInputError(f"data.size: task {cfg.data.task} has no size {cfg.data.size!r}")
        spec = generator.spec(cfg.data.size)
        solver_cfg = generator.solver_config(cfg.data.size)
        counts = counts or solver_cfg.get("counts")
        n_frames = n_frames or solver_cfg.get("n_frames")
    stats = stats or {f: (0.0, 1.0) for f in spec.fields}
    model_cls = MODELS.get(cfg.run.model)
    batch = batch_size_of(cfg)
    report = DryRunReport(cfg.run.model, spec.task, cfg.data.size, spec.grid_shape, len(spec.fields), batch, 0)
    with torch.device("meta"):  # shapes only: the S/B/L presets cost no memory here
        model = model_cls.build(cfg, spec, stats)
    report.parameters = int(model.num_parameters())
    if not isinstance(model, nn.Module):
        report.notes.append(f"{cfg.run.model} has no trainable network: nothing to estimate")
        return report
    report.parameter_counts = model.parameter_counts() if hasattr(model, "parameter_counts") else {}
    if params_only:
        return report
    if not all(hasattr(model, a) for a in ("condition", "encode", "step", "decode", "inverse_encoding_loss")):
        report.notes.append(f"FLOPs, memory and time are estimated for latent operators only, not {cfg.run.model}")
        return report
    fwd, train, act = _meta_measure(model, spec, batch)
    report.flops_forward_per_sample, report.flops_train_step, report.activation_bytes = fwd, train, act
    report.samples_per_epoch = samples_per_epoch(cfg, counts, n_frames)
    if report.samples_per_epoch is not None:
        report.steps_per_epoch = math.ceil(report.samples_per_epoch / batch)
    if probe_steps <= 0:
        return report
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda: no CUDA device is available")
    pb = probe_batch or (batch if dev.type == "cuda" else min(batch, 8))
    model = model_cls.build(cfg, spec, stats)  # the real one, for the timed probe
    seconds, peak = _probe(model, spec, pb, probe_steps, dev, data)
    report.probe_device, report.probe_batch, report.peak_memory_bytes = dev.type, pb, peak
    report.seconds_per_step = seconds * batch / pb
    if pb != batch:
        report.notes.append(f"step time scaled linearly from the probe batch {pb} to {batch}")
    if report.steps_per_epoch is not None:
        report.seconds_per_epoch = report.seconds_per_step * report.steps_per_epoch
    return report


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} "


def format_report(report: DryRunReport, path: str = "") -> str:
    """The human-readable lines ``ups dry-run`` prints."""
    r = report
    grid = "x".join(map(str, r.grid_shape))
    fields = f"{r.n_fields} field" + ("s" if r.n_fields != 1 else "")
    lines = [f"dry-run {path}: {r.model} on {r.task}/{r.size} (grid {grid}, {fields}), batch {r.batch_size}"]
    parts = "; ".join(f"{k} {v:,}" for k, v in r.parameter_counts.items())
    lines.append(f"parameters: {r.parameters:,}" + (f" ({parts})" if parts else ""))
    if r.flops_train_step is not None:
        lines.append(
            f"FLOPs/step: {_si(r.flops_forward_per_sample)}FLOP forward per sample; "
            f"{_si(r.flops_train_step)}FLOP per training step (fwd+bwd+inverse losses, batch {r.batch_size})"
        )
    if r.activation_bytes is not None:
        line = f"activation memory: {r.activation_bytes / 2**30:.3f} GiB (batch {r.batch_size}, fp32 saved tensors)"
        if r.peak_memory_bytes is not None:
            line += f"; measured CUDA peak {r.peak_memory_bytes / 2**30:.3f} GiB at batch {r.probe_batch}"
        lines.append(line)
    if r.seconds_per_step is not None:
        probe = f"probe: {r.probe_device}, batch {r.probe_batch}"
        if r.seconds_per_epoch is not None:
            lines.append(
                f"time/epoch: {r.seconds_per_epoch:.3g} s ({r.steps_per_epoch} steps of {r.samples_per_epoch} samples "
                f"× {r.seconds_per_step * 1e3:.3g} ms/step; {probe})"
            )
        else:
            lines.append(f"time/step: {r.seconds_per_step * 1e3:.3g} ms ({probe}); epoch size unknown")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
