"""Run checkpoints: every learned module of a run saved and reloaded together (DESIGN.md, principle 3).

One checkpoint directory (:mod:`ups.training.checkpoint` format: safetensors + JSON, never unpickled) holds all of a
run's modules under a name prefix — ``operator.*`` (the latent operator, or the grid baseline a ``run.model: unet |
fno`` run trains in its place), ``corrector.*`` (the rectified-flow teacher), ``student.*`` (its
consistency-distilled student), ``steady_prior.*``:

- ``model.<name>.*``: raw weights (``checkpoints/last``) or the evaluation weights (``checkpoints/final``);
- ``ema.<name>.*`` (``last`` only): the evaluation weights — the EMA of the stage in progress, and the final EMA of
  every completed stage;
- ``meta.modules.<name>``: each module's own ``to_checkpoint`` metadata (config, task spec, train-split stats, ...);
- the optimizer of the stage in progress, the RNG states and the loop state (stage, step, scheduler, EMA count,
  guards, data position) for ``--resume``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ups.errors import UserInputError
from ups.models import MODELS, Surrogate
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.steady_prior import SteadyPrior
from ups.training.checkpoint import Checkpoint, capture_rng, load_checkpoint, save_checkpoint
from ups.training.rundir import STAGES, RunDir

TRAINING_FORMAT = "ups.training/1"
#: the module each stage trains, by its checkpoint name
STAGE_MODULE = {
    "operator": "operator",
    "diff_residual": "corrector",
    "consistency_distill": "student",
    "steady_prior": "steady_prior",
}


def _prefixed(groups: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied or aliased weights)
    return {f"{name}.{k}": v.detach().cpu().clone() for name, ws in groups.items() for k, v in ws.items()}


def split_prefixed(tensors: dict[str, torch.Tensor] | None) -> dict[str, dict[str, torch.Tensor]]:
    """``{"name.key": t}`` → ``{name: {key: t}}``."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in (tensors or {}).items():
        name, rest = key.split(".", 1)
        out.setdefault(name, {})[rest] = value
    return out


def module_meta(module: nn.Module) -> dict[str, Any]:
    return module.to_checkpoint()[1]


def rebuild(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Rebuild one module from its metadata and weights (strict); unknown kinds are a UserInputError."""
    if "model" in meta:  # a surrogate: the latent operator or a grid baseline, by its MODELS name
        return MODELS.get(meta["model"]).from_checkpoint(tensors, meta)
    kinds = {"diffusion_corrector": DiffusionCorrector, "steady_prior": SteadyPrior}
    cls = kinds.get(meta.get("kind"))
    if cls is None:
        raise UserInputError(f"checkpoint: unknown module kind {meta.get('kind') or meta.get('model')!r}")
    return cls.from_checkpoint(tensors, meta)


def save_run_checkpoint(
    path: Path,
    *,
    modules: dict[str, nn.Module],
    eval_weights: dict[str, dict[str, torch.Tensor]],
    state: dict[str, Any],
    step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    final: bool = False,
) -> Path:
    """Write a run checkpoint; ``final`` stores only the evaluation weights (as the model weights)."""
    meta = {"format": TRAINING_FORMAT, "modules": {name: module_meta(m) for name, m in modules.items()}}
    if final:
        weights = {name: eval_weights.get(name, m.state_dict()) for name, m in modules.items()}
        ckpt = Checkpoint(model=_prefixed(weights), meta=meta, step=step, state=state)
    else:
        ckpt = Checkpoint(
            model=_prefixed({name: m.state_dict() for name, m in modules.items()}),
            meta=meta,
            step=step,
            state=state,
            ema=_prefixed(eval_weights) or None,
            optimizer=optimizer.state_dict() if optimizer is not None else None,
            rng=capture_rng(),
        )
    return save_checkpoint(path, ckpt)


def load_run_checkpoint(path: Path) -> tuple[Checkpoint, dict[str, nn.Module], dict[str, dict[str, torch.Tensor]]]:
    """``(checkpoint, raw modules, evaluation weights)`` of a run checkpoint."""
    ckpt = load_checkpoint(path)
    if ckpt.meta.get("format") != TRAINING_FORMAT:
        raise UserInputError(f"checkpoint {path}: not a UPS training checkpoint (format {ckpt.meta.get('format')!r})")
    raw, ema = split_prefixed(ckpt.model), split_prefixed(ckpt.ema)
    modules = {name: rebuild(meta, raw[name]) for name, meta in ckpt.meta["modules"].items()}
    return ckpt, modules, ema


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    if (path / "checkpoints").is_dir():
        final, last = path / "checkpoints" / "final", path / "checkpoints" / "last"
        return final if (final / "state.json").is_file() else last
    return path


def load_eval_modules(path: str | Path) -> dict[str, nn.Module]:
    """Every module of a run (directory) or checkpoint, with its evaluation (EMA) weights, in eval mode."""
    ckpt = load_checkpoint(_resolve(path))
    if ckpt.meta.get("format") != TRAINING_FORMAT:
        raise UserInputError(f"checkpoint {path}: not a UPS training checkpoint (format {ckpt.meta.get('format')!r})")
    raw, ema = split_prefixed(ckpt.model), split_prefixed(ckpt.ema)
    return {name: rebuild(meta, ema.get(name, raw[name])).eval() for name, meta in ckpt.meta["modules"].items()}


def load_trained(path: str | Path) -> tuple[Surrogate, DiffusionCorrector | None]:
    """The trained latent operator and its corrector (the distilled student when there is one, else the teacher, else
    None), rebuilt together from one checkpoint with their evaluation (EMA) weights. A grid-baseline run (``run.model:
    unet | fno``) gives its baseline and None.

    Args:
        path: a run directory (its ``checkpoints/final``, else ``checkpoints/last``) or a checkpoint directory.

    Raises:
        UserInputError: missing/malformed checkpoint, or one without a latent operator (a steady-prior run).
    """
    modules = load_eval_modules(path)
    if "operator" not in modules:
        raise UserInputError(
            f"checkpoint {path}: no latent operator or grid baseline in it (steady task? use load_steady_prior)"
        )
    return modules["operator"], modules.get("student", modules.get("corrector"))


def load_steady_prior(path: str | Path) -> SteadyPrior:
    """The trained steady prior of a run directory or checkpoint, with its evaluation weights."""
    modules = load_eval_modules(path)
    if "steady_prior" not in modules:
        raise UserInputError(f"checkpoint {path}: no steady prior in it")
    return modules["steady_prior"]


# --- the trainer's run state ----------------------------------------------------------------------------------------


@dataclass
class RunState:
    """The trainer's view of a run: modules (raw weights), evaluation weights of finished stages, records."""

    modules: dict[str, nn.Module] = field(default_factory=dict)
    eval_weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str | None = None
    resume: dict[str, Any] | None = None  # loop state + optimizer + EMA of ``current``
    last_saved: str = "no checkpoint saved yet"

    def eval_copy(self, name: str) -> nn.Module:
        """A copy of module ``name`` carrying its evaluation (EMA) weights, in eval mode."""
        module = copy.deepcopy(self.modules[name])
        module.load_state_dict(self.eval_weights[name])
        return module.eval()


def load_run_state(run: RunDir, stage: str, to_run: list[str], resume: bool, cfg_hash: str) -> RunState:
    """What an existing run directory contributes: everything (``resume``), the finished stages a single stage builds
    on, or nothing (a fresh ``stage="all"``). The checkpoint must come from the same config."""
    state = RunState()
    if not (run.last / "state.json").is_file() or (stage == "all" and not resume):
        return state
    ckpt, modules, ema = load_run_checkpoint(run.last)
    if ckpt.state.get("config_hash") != cfg_hash:
        raise UserInputError(
            f"checkpoint {run.last} was trained with another config (hash {str(ckpt.state.get('config_hash'))[:12]},"
            f" this one {cfg_hash[:12]}); use the same config or another --run-dir"
        )
    completed = list(ckpt.state["completed"])
    if not resume:  # one stage, started over: keep only what it builds on
        completed = [s for s in completed if STAGES.index(s) < STAGES.index(to_run[0])]
    names = [STAGE_MODULE[s] for s in completed]
    state.completed = completed
    state.records = {s: r for s, r in ckpt.state["records"].items() if s in completed}
    state.modules = {n: modules[n] for n in names if n in modules}
    state.eval_weights = {n: ema[n] for n in names if n in ema}
    current = ckpt.state.get("current")
    if resume and current in to_run:
        trained = STAGE_MODULE[current]
        state.current = current
        state.modules[trained] = modules[trained]
        state.resume = {"loop": ckpt.state["loop"], "optimizer": ckpt.optimizer, "ema": ema[trained], "rng": ckpt.rng}
    state.last_saved = f"last good checkpoint: {run.last}"
    return state
