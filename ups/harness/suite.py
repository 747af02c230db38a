"""Suite files (``configs/suites/<name>.yaml``): which tasks, splits, horizons, seeds and candidate a suite runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ups.config.safe_yaml import safe_load_text
from ups.errors import UserInputError
from ups.harness.sources import decode_utf8


class TaskEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Literal["small", "full"] = "small"
    splits: list[str] = ["test"]
    steps: int = Field(16, ge=1, description="predicted frames per rollout (input frames excluded)")
    horizons: list[int] = [1, 4, 16]

    @model_validator(mode="after")
    def _horizons_fit(self) -> TaskEntry:
        if any(k < 1 or k > self.steps for k in self.horizons):
            raise ValueError(f"horizons {self.horizons} must lie in 1..steps={self.steps}")
        return self


class SolverSetting(BaseModel):
    """One rung of the reference-solver ladder: the task's own solver restarted from the stored initial frame on a
    grid ``coarsen`` times coarser per axis than the stored one, with its step rule's steps ``step`` times longer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coarsen: int = Field(1, ge=1, le=64)
    step: float = Field(1.0, gt=0.0, le=64.0, allow_inf_nan=False)


class ModelEntry(BaseModel):
    """A model the suite scores: a registered model name (untrained baselines such as persistence), a training config
    path, which may contain ``{task}`` (one config per task, e.g. ``configs/small/{task}.yaml``), or a setting of the
    task's reference solver (``solver: {coarsen: 2}``, baselines only; see docs/metrics.md, solver-matched readings).

    ``budget: candidate`` (baselines only) trains for the wall clock the candidate's training took on the same task
    and seed (``training.time_budget_s``), so a baseline is compared at equal training cost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    config: str | None = None
    solver: SolverSetting | None = None
    budget: Literal["candidate"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ModelEntry:
        if sum(x is not None for x in (self.model, self.config, self.solver)) != 1:
            raise ValueError("give exactly one of model, config or solver")
        if self.budget is not None and self.config is None:
            raise ValueError("budget applies to trained models (config) only")
        return self


class SuiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: Literal["small", "full"]
    gates: str
    champions: str
    seeds: list[int] = [0]
    data_seed: int = 0
    timing_repeats: int = Field(5, ge=3)
    ensemble_size: int = Field(8, ge=2, description="corrector-sampled rollouts behind ece, crps and spread_skill")
    candidate: ModelEntry
    baselines: dict[str, ModelEntry] = {}  # reference points shown beside the candidate; never gated
    baseline_seeds: list[int] | None = None  # default: the first of ``seeds``
    tasks: dict[str, TaskEntry]

    @model_validator(mode="after")
    def _no_candidate_budget(self) -> SuiteConfig:
        if self.candidate.budget is not None:
            raise ValueError("candidate.budget: only baselines take the candidate's budget")
        if self.candidate.solver is not None:
            raise ValueError("candidate.solver: the reference solver is a baseline, not a candidate")
        return self

    @property
    def solver_ladder(self) -> list[str]:
        """The baselines that are reference-solver settings (the ladder of the solver-matched readings)."""
        return [name for name, entry in self.baselines.items() if entry.solver is not None]


SUITE_FILES = {"small": "configs/suites/small_eval.yaml", "full": "configs/suites/full_eval.yaml"}


def load_suite(path: str | Path, *, source=None) -> SuiteConfig:
    """Read and validate a suite file, from the working tree or from ``source``'s git ref
    (:class:`ups.harness.sources.Source`); any problem is one line naming the file."""
    path = Path(path)
    where = str(path) if source is None else source.where(path)
    if source is None:
        text = decode_utf8(path.read_bytes(), f"suite file {where}") if path.is_file() else None
    else:
        text = source.read_text(path)
    if text is None:
        raise UserInputError(f"suite file {where}: not found")
    raw = safe_load_text(text, f"suite file {where}")
    try:
        return SuiteConfig.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise UserInputError(f"suite file {where}: {loc}: {first['msg']}") from None
