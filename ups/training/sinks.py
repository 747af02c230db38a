"""Where training progress goes: curves.csv (always), a progress bar or periodic lines, W&B and TensorBoard (opt-in).

``tqdm`` is used when it is installed, else one plain line per logged step on stderr. Weights & Biases
(``logging.wandb``) and TensorBoard (``logging.tensorboard``) are optional imports: asking for one that is not
installed is a user error naming the package to install. W&B runs in ``logging.wandb_mode`` (default ``offline``,
which needs no network); a ``WANDB_MODE`` environment variable overrides it. Only rank 0 logs.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

from ups.config.schema import LoggingConfig
from ups.errors import UserInputError
from ups.training.rundir import RunDir


def _optional(module: str, what: str, install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserInputError(f"{what} is enabled but {module} is not installed (pip install {install})") from None


class Progress:
    """A tqdm bar over a stage's steps when tqdm is installed, else a plain line at every logged step."""

    def __init__(self, stage: str, total: int, start: int = 0, enabled: bool = True):
        self.stage, self.total, self.enabled = stage, total, enabled
        self.t0 = time.perf_counter()
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=start, desc=stage, file=sys.stderr, dynamic_ncols=True)

    def update(self, step: int, row: dict[str, Any] | None = None) -> None:
        """Advance to ``step`` (1-based count of finished steps); ``row`` is shown when given (a logged step)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if row:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if isinstance(v, float)}, refresh=False)
        elif row:
            shown = " ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
            elapsed = time.perf_counter() - self.t0
            print(f"[{self.stage}] step {step}/{self.total} {shown} ({elapsed:.1f}s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Sinks:
    """curves.csv plus the optional W&B and TensorBoard sinks of one run."""

    def __init__(self, run: RunDir, cfg: LoggingConfig, *, run_id: str, config: dict, enabled: bool = True):
        self.run, self.enabled = run, enabled
        self.wandb_run = None
        self.tb = None
        if not enabled:
            return
        if cfg.wandb:
            wandb = _optional("wandb", "logging.wandb", "ups[wandb]")
            mode = os.environ.get("WANDB_MODE", cfg.wandb_mode)
            self.wandb_run = wandb.init(
                project=cfg.wandb_project, name=run_id, id=run_id, dir=str(run.root), config=config, mode=mode,
                resume="allow",
            )  # fmt: skip
        if cfg.tensorboard:
            tensorboard = _optional("torch.utils.tensorboard", "logging.tensorboard", "tensorboard")
            self.tb = tensorboard.SummaryWriter(log_dir=str(run.root / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.run.append_curve(row)
        scalars = {f"{row['stage']}/{k}": v for k, v in row.items() if isinstance(v, float | int) and k != "step"}
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=int(row["global_step"]))
        if self.tb is not None:
            for key, value in scalars.items():
                self.tb.add_scalar(key, value, int(row["global_step"]))

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
        if self.tb is not None:
            self.tb.close()
