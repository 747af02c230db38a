"""Where training progress goes: curves.csv (always), a progress bar or periodic lines, a callback, W&B and
TensorBoard (opt-in).

``tqdm`` is used when it is installed, else one plain line per logged step on stderr. A caller that shows progress
its own way (the benchmark harness) passes ``train(progress=callback)`` instead: the callback gets a
:class:`ProgressEvent` at each stage's start, after every optimisation step, at each stage's end and at the run's end,
on rank 0 only. Weights & Biases
(``logging.wandb``) and TensorBoard (``logging.tensorboard``) are optional imports: asking for one that is not
installed is a user error naming the package to install. W&B runs in ``logging.wandb_mode`` (default ``offline``,
which needs no network); a ``WANDB_MODE`` environment variable overrides it. Only rank 0 logs.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ups.config.schema import LoggingConfig
from ups.errors import UserInputError
from ups.training.rundir import RunDir


def _optional(module: str, what: str, install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserInputError(f"{what} is enabled but {module} is not installed (pip install {install})") from None


def check_sinks(cfg: LoggingConfig) -> None:
    """The optional sinks ``cfg`` enables are installed (else a UserInputError naming the package)."""
    if cfg.wandb:
        _optional("wandb", "logging.wandb", "ups[wandb]")
    if cfg.tensorboard:
        _optional("torch.utils.tensorboard", "logging.tensorboard", "tensorboard")


@dataclass(frozen=True)
class ProgressEvent:
    """One report of a training run's progress, as ``train(progress=callback)`` hands it to the callback.

    ``kind``: ``start`` and ``end`` of a stage, ``step`` after every optimisation step, ``run_end`` once when
    ``train`` returns or raises (``outcome`` says how: completed, early_stop, aborted or failed).
    """

    kind: Literal["start", "step", "end", "run_end"]
    stage: str = ""
    step: int = 0  # finished steps of the stage
    total: int = 0  # the stage's planned steps (a time budget may stop it earlier)
    elapsed_s: float = 0.0  # the stage's wall clock, resumed segments summed, saves left out; for run_end the run's
    loss: float | None = None  # the last step's training loss
    val_nrmse: float | None = None  # the last validation of the stage (every ``logging.log_every`` steps)
    position: tuple[int, int] = (0, 1)  # (index of the stage among the stages this call trains, their number)
    time_budget_s: float | None = None  # the stage's wall-clock budget, when it has one
    outcome: str | None = None  # run_end only


ProgressCallback = Callable[[ProgressEvent], None]


class Progress:
    """A tqdm bar over a stage's steps when tqdm is installed, else a plain line at every logged step; and/or
    :class:`ProgressEvent` s to ``callback``."""

    def __init__(
        self,
        stage: str,
        total: int,
        start: int = 0,
        enabled: bool = True,
        *,
        callback: ProgressCallback | None = None,
        position: tuple[int, int] = (0, 1),
        time_budget_s: float | None = None,
        elapsed_s: float = 0.0,
    ):
        self.stage, self.total, self.enabled = stage, total, enabled
        self.callback, self.position, self.time_budget_s = callback, position, time_budget_s
        self.t0 = time.perf_counter() - elapsed_s
        self.step, self.loss, self.val_nrmse = start, None, None
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=start, desc=stage, file=sys.stderr, dynamic_ncols=True)
        self._emit("start")

    def _emit(self, kind: Literal["start", "step", "end"]) -> None:
        if self.callback is not None:
            self.callback(
                ProgressEvent(
                    kind, self.stage, self.step, self.total, time.perf_counter() - self.t0, self.loss,
                    self.val_nrmse, self.position, self.time_budget_s,
                )
            )  # fmt: skip

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` (time spent saving a checkpoint) out of the stage's elapsed time."""
        self.t0 += seconds

    def update(self, step: int, row: dict[str, Any] | None = None, *, loss: float | None = None) -> None:
        """Advance to ``step`` (1-based count of finished steps); ``row`` is shown when given (a logged step);
        ``loss`` is the step's training loss (for the callback)."""
        self.step = step
        if loss is not None:
            self.loss = loss
        if row and "val_nrmse" in row:
            self.val_nrmse = row["val_nrmse"]
        self._emit("step")
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
        self._emit("end")
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
