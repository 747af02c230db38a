"""The run directory ``<run_root>/<run_id>/`` and the files in it.

```
<run_id>/                 run_id = config_hash[:12] + "-" + commit[:8]
  config.yaml             the resolved config (defaults filled) — load it with ``ups.config.load_config``
  env.json                python, torch, CUDA/driver, GPU, CPU, git commit/dirty, code hash, data hash, device, world
  curves.csv              one row per logged step: stage, step, lr, losses, grad norm, horizon, validation metrics
  metrics.json            final metrics: per-stage validation, persistence baseline, guard outcome, wall clock
  notes.txt               three lines: what changed / why it helped or hurt / what next
  checkpoints/last/       resume state (raw + EMA weights, optimizer, scheduler, RNG, step, data position)
  checkpoints/final/      evaluation weights (the EMA) of every trained module, loaded by ``load_trained``
```
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

from ups.config.loader import config_hash, dump_yaml
from ups.config.schema import UPSConfig
from ups.provenance import PACKAGE_DIR, git_info

STAGES = ("operator", "diff_residual", "consistency_distill", "steady_prior")
CURVE_COLUMNS = (
    "global_step",
    "stage",
    "step",
    "epoch",
    "lr",
    "loss",
    "task",
    "one_step",
    "rollout",
    "edge",
    "conservation",
    "inverse_encode",
    "inverse_decode",
    "grad_norm",
    "horizon",
    "val_nrmse",
    "val_nrmse_last",
    "val_conservation_gap",
    "val_loss",
    "wall_s",
)


def run_id(cfg: UPSConfig, commit: str | None = None) -> str:
    """``config_hash[:12]-commit[:8]`` (commit ``unknown`` outside a git checkout)."""
    commit = commit or git_info(PACKAGE_DIR.parent)["commit"]
    return f"{config_hash(cfg)[:12]}-{commit[:8]}"


class RunDir:
    """Paths of one run and the writers of its small files (only rank 0 writes)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last"

    @property
    def final(self) -> Path:
        return self.checkpoints / "final"

    @property
    def curves(self) -> Path:
        return self.root / "curves.csv"

    def reset(self) -> None:
        """Forget a previous run in this directory (a fresh, non-resumed start)."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        for name in ("curves.csv", "metrics.json", "notes.txt"):
            (self.root / name).unlink(missing_ok=True)

    def write_config(self, cfg: UPSConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "config.yaml").write_text(dump_yaml(cfg))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")

    def write_notes(self, lines: list[str]) -> None:
        (self.root / "notes.txt").write_text("\n".join(lines[:3]) + "\n")

    def truncate_curves(self, stage: str, step: int) -> None:
        """Drop rows logged after (``stage``, ``step``): a resumed run re-logs them from its checkpoint."""
        if not self.curves.is_file():
            return
        with self.curves.open(newline="") as f:
            rows = list(csv.DictReader(f))
        order = STAGES.index(stage)
        keep = [r for r in rows if (STAGES.index(r["stage"]), int(r["step"])) <= (order, step)]
        with self.curves.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
            writer.writeheader()
            writer.writerows(keep)

    def append_curve(self, row: dict[str, Any]) -> None:
        new = not self.curves.is_file()
        with self.curves.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return value


DERIVED_FROM_LATENT_DIM = (
    "operator.pdet.input_dim",
    "operator.pdet.hidden_dim",
    "diffusion.latent_dim",
    "diffusion.hidden_dim",
    "latent.decoder.hidden_dim",
    "ttc.decoder.latent_dim",
    "ttc.decoder.hidden_dim",
)


def config_diff(cfg: UPSConfig) -> list[str]:
    """``dotted.key=value`` for every setting that differs from the schema defaults (for the run notes)."""
    ref = UPSConfig(data={"task": cfg.data.task}).model_dump(mode="json")
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a:
                walk(a[key], b.get(key), f"{path}.{key}" if path else key)
        elif a != b:
            out.append(f"{path}={json.dumps(a)}")

    walk(cfg.model_dump(mode="json"), ref, "")
    # sizes that merely follow latent.dim (filled by the schema) are not changes of their own
    derived = {f"{k}={cfg.latent.dim}" for k in DERIVED_FROM_LATENT_DIM}
    return [item for item in out if item not in derived]
