"""Map the playbook's "reference template" vocabulary (``model``, ``train``, ``data.loaders`` …) onto UPS keys.

The mapping follows the playbook's "UPS mapping notes"; docs/config.md has the full table. Sections that already use
UPS names (``run``, ``physics``, ``logging``, and any UPS key mixed into the file) pass through unchanged. A reference
key with no UPS counterpart that carries intent (``eval.thresholds``: gates live in ``gates/<suite>.yaml``) is kept as
a line in ``run.notes``; any other unknown reference key is an error, and so is a reference key that contradicts a
UPS key given in the same file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ups.config.merge import deep_merge, flatten, get_path, set_path
from ups.config.schema import PDETConfig, TrainingConfig
from ups.errors import UserInputError

#: Top-level sections that exist only in the reference vocabulary; either one marks a file as a reference template.
REFERENCE_SECTIONS = ("model", "train")

#: Reference leaf → UPS path, value copied as is.
RENAMES: dict[str, str] = {
    "data.loaders.batch_tokens": "training.batch_tokens",
    "data.loaders.shuffle": "training.shuffle",
    "data.loaders.num_workers": "training.num_workers",
    "data.curriculum.grow_every_steps": "training.grow_every_steps",
    "model.io.latent_tokens": "latent.tokens",
    "model.io.latent_dim": "latent.dim",
    "model.core.shifted_windows": "operator.pdet.shifted_windows",
    "model.core.u_shape": "operator.pdet.u_shape",
    "model.core.channel_separated": "operator.pdet.channel_separated",
    "model.core.ff_mult": "operator.pdet.mlp_ratio",
    "model.conditioning.adaln": "operator.conditioning.adaln",
    "model.conditioning.fields": "data.fields",
    "model.conditioning.params": "operator.conditioning.inputs",
    "train.schedule.warmup_ratio": "stages.operator.scheduler.warmup_ratio",
    "train.stabilization.grad_clip": "training.grad_clip",
    "train.stabilization.ema": "training.ema_decay",
    "train.stabilization.qk_rmsnorm": "operator.pdet.qk_rmsnorm",
    "train.hybrid.diffusion_corrector.enabled": "diffusion.enabled",
    "train.hybrid.diffusion_corrector.cadence_steps": "diffusion.cadence_steps",
    "train.hybrid.diffusion_corrector.steps": "diffusion.steps",
    "train.hybrid.diffusion_corrector.guidance_lambda": "diffusion.guidance_lambda",
    "eval.small.horizon": "eval.small.rollout_steps",
    "eval.full.horizon": "eval.full.rollout_steps",
}

#: Reference prefix → UPS prefix: every key below it is copied under the UPS prefix (the schema checks the names).
PREFIXES: dict[str, str] = {
    "train.objective.weights.": "training.loss.",
    "train.optimizer.": "stages.operator.optimizer.",
}


def _choice(table: dict[str, Any]) -> Callable[[str, Any], Any]:
    def convert(path: str, value: Any) -> Any:
        if value not in table:
            raise UserInputError(f"{path}: unknown value {value!r} (valid: {', '.join(map(str, table))})")
        return table[value]

    return convert


def _scale(factor: float) -> Callable[[str, Any], Any]:
    def convert(path: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserInputError(f"{path}: must be a number, got {value!r}")
        return value * factor

    return convert


#: Reference leaf → (UPS path or None when the value only has to be valid, converter).
CONVERTED: dict[str, tuple[str | None, Callable[[str, Any], Any]]] = {
    "model.io.encoder": ("latent.encoder", _choice({"UPTEncoder": "upt", "GridEncoder": "grid"})),
    "model.io.decoder": (None, _choice({"AnyPointDecoder": None})),  # the only decoder: latent.decoder
    "model.core.backbone": (None, _choice({"PDETransformer": None})),  # the only backbone: operator.pdet
    "train.objective.type": ("diffusion.enabled", _choice({"operator": False, "operator+residual": True})),
    "train.schedule.cosine": (
        "stages.operator.scheduler.name",
        _choice({True: "cosineannealinglr", False: "constant"}),
    ),
    "eval.small.time_budget_min": ("eval.small.time_budget_s", _scale(60.0)),
    "eval.small.time_budget_hr": ("eval.small.time_budget_s", _scale(3600.0)),
    "eval.full.time_budget_min": ("eval.full.time_budget_s", _scale(60.0)),
    "eval.full.time_budget_hr": ("eval.full.time_budget_s", _scale(3600.0)),
}

#: Keys handled together below: the horizon curriculum and the depth split.
SPECIAL = ("data.curriculum.start_horizon", "data.curriculum.max_horizon", "model.core.depth")


def is_reference_template(data: Any) -> bool:
    """True when ``data`` uses the reference vocabulary (a top-level ``model:`` or ``train:`` section)."""
    return isinstance(data, Mapping) and any(key in data for key in REFERENCE_SECTIONS)


def from_reference_template(data: Mapping[str, Any]) -> dict:
    """Map a reference-template mapping to UPS keys (input untouched).

    Raises:
        UserInputError: an unknown reference key or value, or a reference key that contradicts a UPS key; the
            message starts with the reference key's dotted path.
    """
    rest = copy.deepcopy(dict(data))
    leaves: dict[str, Any] = {}
    for section in REFERENCE_SECTIONS:
        if section in rest:
            flatten(rest.pop(section), section, leaves)
    for section, key in [("data", "loaders"), ("data", "curriculum"), ("eval", "thresholds")]:
        if isinstance(rest.get(section), dict) and key in rest[section]:
            flatten(rest[section].pop(key), f"{section}.{key}", leaves)
    for size in ("small", "full"):
        budget = rest.get("eval", {}).get(size) if isinstance(rest.get("eval"), dict) else None
        for key in ("time_budget_min", "time_budget_hr", "horizon"):
            if isinstance(budget, dict) and key in budget:
                leaves[f"eval.{size}.{key}"] = budget.pop(key)

    mapped: dict = {}
    notes: list[str] = []

    def put(ref_path: str, ups_path: str, value: Any) -> None:
        keys = ups_path.split(".")
        for source in (rest, mapped):
            found, existing = get_path(source, keys)
            if found and existing != value:
                raise UserInputError(f"{ref_path}: {value!r} contradicts {ups_path}: {existing!r} given in UPS keys")
        set_path(mapped, keys, value)

    for path, value in leaves.items():
        if path in RENAMES:
            put(path, RENAMES[path], value)
        elif path in CONVERTED:
            target, convert = CONVERTED[path]
            converted = convert(path, value)
            if target is not None:
                put(path, target, converted)
        elif prefix := next((p for p in PREFIXES if path.startswith(p)), None):
            put(path, PREFIXES[prefix] + path[len(prefix) :], value)
        elif path.startswith("eval.thresholds."):
            notes.append(f"{path}={value!r} (reference template; gates live in gates/<suite>.yaml)")
        elif path not in SPECIAL:
            raise UserInputError(f"{path}: unknown key in the reference-template vocabulary (see docs/config.md)")

    if "data.curriculum.start_horizon" in leaves or "data.curriculum.max_horizon" in leaves:
        put("data.curriculum", "training.horizon_curriculum", _curriculum(leaves))
    if "model.core.depth" in leaves:
        put("model.core.depth", "operator.pdet.depths", _split_depth(leaves, rest))

    out = deep_merge(rest, mapped)
    if notes:
        run = out.setdefault("run", {})
        if isinstance(run, dict):
            run["notes"] = [*run.get("notes", []), *notes]
    return out


def _curriculum(leaves: dict[str, Any]) -> list[int]:
    """Doubling horizons from ``start_horizon`` up to ``max_horizon`` (both included): 4, 32 → [4, 8, 16, 32]."""
    default = TrainingConfig.model_fields["horizon_curriculum"].default
    start = leaves.get("data.curriculum.start_horizon", default[0])
    stop = leaves.get("data.curriculum.max_horizon", default[-1])
    for name, value in [("start_horizon", start), ("max_horizon", stop)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"data.curriculum.{name}: must be a positive integer, got {value!r}")
    if start > stop:
        raise UserInputError(f"data.curriculum.max_horizon: must be >= start_horizon ({start}), got {stop}")
    horizons = [start]
    while horizons[-1] * 2 < stop:
        horizons.append(horizons[-1] * 2)
    return horizons + [stop] if stop > start else horizons


def _split_depth(leaves: dict[str, Any], rest: dict) -> list[int]:
    """Total depth split over the U-stages, remainder to the first stages: 24 over 3 → [8, 8, 8]; 32 → [11, 11, 10]."""
    depth = leaves["model.core.depth"]
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UserInputError(f"model.core.depth: must be a positive integer, got {depth!r}")
    u_shape = leaves.get("model.core.u_shape", PDETConfig.model_fields["u_shape"].default)
    found, stages = get_path(rest, ["operator", "pdet", "u_stages"])
    n = (len(stages) if found and isinstance(stages, list) else len(PDETConfig.model_fields["u_stages"].default)) or 1
    n = n if u_shape else 1
    base, extra = divmod(depth, n)
    if base == 0:
        raise UserInputError(f"model.core.depth: must be >= the number of U-stages ({n}), got {depth}")
    return [base + (i < extra) for i in range(n)]
