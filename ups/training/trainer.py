"""``train(cfg, …)``: staged training of every learned module of a run, resumable, with its run directory.

Stage order: ``operator`` → ``diff_residual`` → ``consistency_distill`` (transient tasks; the two corrector stages
when ``diffusion.enabled``) and ``steady_prior`` (steady tasks). ``stage="all"`` runs the applicable stages whose
``epochs`` are > 0; a single stage loads the stages before it from the run's checkpoint. Each stage trains with
:func:`ups.training.loop.run_stage`; the corrector stages work on the operator's evaluation (EMA) weights.

The operator stage trains ``run.model``: the latent operator, or a grid baseline (``unet``, ``fno``), which runs the
operator stage alone (the corrector works on the latent operator's latent state).

``metrics.json``'s ``wall_clock_s`` is the call's compute time: its wall clock with the time spent saving
checkpoints left out (that time is ``checkpoint_s``). The stages' clocks and time budgets leave saves out too (see
:mod:`ups.training.loop`), so a ``budget: candidate`` baseline gets the candidate's compute time whatever either
config's ``run.save_every``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ups.config.loader import config_hash, load_config
from ups.config.schema import UPSConfig
from ups.data.generate import cached_dataset
from ups.data.store import DatasetStore
from ups.data.windows import TRANSLATION_INVARIANT, WindowSampler
from ups.errors import UserInputError
from ups.models import MODELS
from ups.models.baseline import GridBaseline
from ups.models.latent_operator import LatentOperator
from ups.provenance import PACKAGE_DIR, code_hash, environment, git_info
from ups.training import stages as st
from ups.training.checkpoint import recover_checkpoint, restore_rng
from ups.training.distributed import DistInfo, barrier, init_distributed
from ups.training.guards import Baseline, TrainingAborted
from ups.training.loop import LoopContext, StageOutcome, run_stage
from ups.training.notes import run_notes
from ups.training.rundir import STAGES, RunDir, run_id
from ups.training.sinks import ProgressCallback, ProgressEvent, Sinks, check_sinks
from ups.training.state import STAGE_MODULE, RunState, load_run_state, save_run_checkpoint
from ups.training.validation import ValProxy


@dataclass(frozen=True)
class TrainResult:
    """Where a run lives and what it reached: ``metrics`` is also written to ``<run_dir>/metrics.json``."""

    run_dir: Path
    checkpoint_path: Path
    metrics: dict[str, Any]


def resolve_device(device: str | torch.device | None, cfg: UPSConfig) -> torch.device:
    name = str(device or cfg.run.device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"device {name}: CUDA is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _trainable(cls: object) -> bool:
    return cls is LatentOperator or (isinstance(cls, type) and issubclass(cls, GridBaseline))


def operator_class(cfg: UPSConfig) -> type[LatentOperator | GridBaseline]:
    """The model class ``run.model`` names, when the trainer can train it (else a UserInputError)."""
    cls = MODELS.get(cfg.run.model)
    if not _trainable(cls):
        trainable = ", ".join(n for n in MODELS if _trainable(MODELS.get(n)))
        raise UserInputError(f"run.model {cfg.run.model!r} has nothing to train (trainable: {trainable})")
    return cls


def applicable_stages(cfg: UPSConfig, steady: bool) -> list[str]:
    baseline = issubclass(operator_class(cfg), GridBaseline)
    if steady:
        if baseline:
            raise UserInputError(
                f"run.model {cfg.run.model}: a next-frame baseline; steady task {cfg.data.task} "
                "trains the steady prior (run.model: latent_operator)"
            )
        return ["steady_prior"]
    names = ["operator"]
    if cfg.diffusion.enabled and not baseline:
        names += ["diff_residual", "consistency_distill"]
    return names


def _stages_to_run(cfg: UPSConfig, stage: str, steady: bool) -> list[str]:
    valid = applicable_stages(cfg, steady)
    if stage == "all":
        return [s for s in valid if getattr(cfg.stages, s).epochs > 0]
    if stage not in STAGES:
        raise UserInputError(f"--stage: unknown stage {stage!r}; valid: all, {', '.join(STAGES)}")
    if stage not in valid:
        kind = "steady" if steady else "transient"
        raise UserInputError(f"--stage {stage}: not a stage of {kind} task {cfg.data.task} (its stages: {valid})")
    return [stage]


def _open_store(cfg: UPSConfig, data_path: str | Path | None, cache_dir: str | Path) -> DatasetStore:
    path = data_path or cached_dataset(cfg.data.task, cfg.data.size, cfg.data.seed, cache_dir)
    store = DatasetStore.open(path)
    if store.spec.task != cfg.data.task:
        raise UserInputError(f"data.task is {cfg.data.task!r} but the store {path} holds {store.spec.task!r}")
    for split in (cfg.data.split, "val"):
        if split not in store.splits:
            raise UserInputError(f"store {path}: no split {split!r} (has {', '.join(store.splits)})")
    return store


def check_inputs(cfg: UPSConfig, store: DatasetStore) -> None:
    """The config checks that need the data, run before anything is written to the run directory.

    A transient task's operator is built on the ``meta`` device (no memory, no arithmetic), so a conditioning input,
    a field list or a token layout the store does not fit fails here (UserInputError, one line); an enabled optional
    sink (W&B, TensorBoard) must be installed.
    """
    if not store.spec.steady:
        with torch.device("meta"):
            operator_class(cfg).build(cfg, store.spec, store.stats())
        stride, frames = cfg.training.time_stride, store.root["coords/t"].shape[0]
        if frames - 1 < stride:
            raise UserInputError(
                f"training.time_stride: {stride} stored frames per step, but {store.path} has "
                f"{frames} frames: too few for one validation step"
            )
    check_sinks(cfg.logging)


def train(
    cfg: UPSConfig | str | Path,
    *,
    stage: str = "all",
    run_root: str | Path | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    data_path: str | Path | None = None,
    cache_dir: str | Path = ".ups_cache",
    progress: bool | ProgressCallback = True,
) -> TrainResult:
    """Train a config's stages and return where the run lives.

    Args:
        cfg: a validated config or a path to one.
        stage: ``all`` or one of ``operator``, ``diff_residual``, ``consistency_distill``, ``steady_prior``.
        run_root: parent of the run directory (default ``logging.output_dir``); the run id is
            ``config_hash[:12]-commit[:8]``.
        run_dir: the run directory itself (overrides ``run_root``).
        resume: continue from ``checkpoints/last``; without it ``stage="all"`` starts over in the run directory.
        device: ``cpu``, ``cuda``, ``cuda:N``; default ``run.device``. Under ``torchrun`` each rank uses
            ``cuda:LOCAL_RANK`` on CUDA.
        data_path: a dataset store; default the cached built-in dataset of ``data.task/size/seed``.
        cache_dir: cache of generated datasets.
        progress: ``True``: a progress bar / periodic lines on stderr; ``False``: nothing; a callable: no bar, the
            callable gets a :class:`~ups.training.sinks.ProgressEvent` at each stage's start and end, after every
            step, and once at the end of the call (rank 0 only).

    Raises:
        UserInputError: bad config, data, stage or checkpoint (one line).
        TrainingAborted: a hard guard fired (NaN/Inf loss, physics spike); the last good checkpoint stays loadable.
    """
    # Every input is checked before anything is written: config, run.model, device, data, stage, then the config
    # against the data (check_inputs); a bad one raises UserInputError and leaves no run directory behind.
    cfg = load_config(cfg) if isinstance(cfg, str | Path) else cfg
    operator_class(cfg)  # before the dataset is opened (or generated)
    dev = resolve_device(device, cfg)
    dist = init_distributed(dev.type)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    store = _open_store(cfg, data_path, cache_dir)
    spec = store.spec
    to_run = _stages_to_run(cfg, stage, spec.steady)
    check_inputs(cfg, store)
    git = git_info(PACKAGE_DIR.parent)
    run = RunDir(run_dir or Path(run_root or cfg.logging.output_dir) / run_id(cfg, git["commit"]))
    if dist.is_main and (resume or stage != "all"):
        recover_checkpoint(run.last)  # a save killed between its two renames left only checkpoints/.last.old
    barrier(dist)
    state = load_run_state(run, stage, to_run, resume, config_hash(cfg))
    if dist.is_main:
        if stage == "all" and not resume:
            run.reset()
        run.write_config(cfg)
        run.write_json("env.json", {**_env(cfg, store, dev, dist), "git": git})
        if state.current is not None:
            run.truncate_curves(state.current, state.resume["loop"]["step"])
    barrier(dist)

    sinks = Sinks(run, cfg.logging, run_id=run.root.name, config=cfg.model_dump(mode="json"), enabled=dist.is_main)
    deterministic = torch.are_deterministic_algorithms_enabled()
    callback = progress if callable(progress) and dist.is_main else None
    show = bool(progress) and not callable(progress)  # the bar / lines, else the callback alone

    def compute_s() -> float:  # the run's wall clock without the time spent saving checkpoints
        return time.perf_counter() - t0 - (trainer.save_s if trainer is not None else 0.0)

    def report_end(outcome: str) -> None:
        if callback is not None:
            callback(ProgressEvent("run_end", elapsed_s=compute_s(), outcome=outcome))

    t0, trainer = time.perf_counter(), None
    try:
        if dev.type == "cpu":
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.run.seed)
        trainer = _Trainer(cfg, store, dev, dist, run, state, sinks, show, callback)
        trainer.run_stages(to_run)
    except TrainingAborted as err:
        if dist.is_main:
            trainer.finish(compute_s(), aborted=str(err))
        report_end("aborted")
        raise
    except BaseException:
        report_end("failed")
        raise
    finally:
        sinks.close()
        torch.use_deterministic_algorithms(deterministic)
    metrics = trainer.finish(compute_s()) if dist.is_main else trainer.summary(compute_s())
    report_end(metrics["guard"])
    barrier(dist)
    return TrainResult(run.root, run.final, metrics)


def _env(cfg: UPSConfig, store: DatasetStore, dev: torch.device, dist: DistInfo) -> dict[str, Any]:
    return {
        **environment(),
        "code_hash": code_hash(),
        "config_hash": config_hash(cfg),
        "data": {"path": str(store.path), "content_sha256": store.content_sha256},
        "device": str(dev),
        "world_size": dist.world,
        "deterministic": dev.type == "cpu",
    }


class _Trainer:
    """Runs the stages of one invocation and keeps the checkpoints and records consistent."""

    def __init__(
        self,
        cfg: UPSConfig,
        store: DatasetStore,
        dev: torch.device,
        dist: DistInfo,
        run: RunDir,
        state: RunState,
        sinks: Sinks,
        progress: bool,
        on_progress: ProgressCallback | None = None,
    ):
        self.cfg, self.store, self.dev, self.dist, self.run = cfg, store, dev, dist, run
        self.state, self.sinks, self.progress, self.on_progress = state, sinks, progress, on_progress
        self.to_run: list[str] = []
        stride = cfg.training.time_stride
        steady = store.spec.steady
        sampler_args = {"time_stride": stride, "temperature": cfg.training.sampling_temperature, "seed": cfg.run.seed}
        shift = store.spec.bc == "periodic" and store.spec.task in TRANSLATION_INVARIANT
        train = None if steady else WindowSampler.from_store(store, cfg.data.split, shift=shift, **sampler_args)
        val = None if steady else WindowSampler.from_store(store, "val", **sampler_args)
        batch = cfg.training.batch_size
        if cfg.training.batch_tokens is not None:
            batch = max(1, cfg.training.batch_tokens // cfg.latent.tokens)
        self.batch_tokens = batch * cfg.latent.tokens * dist.world if cfg.training.batch_tokens else None
        self.env = st.StageEnv(cfg, store, train, val, dev, dist, batch)
        self.proxy = None if steady else ValProxy(store, cfg.eval.steps_for(cfg.data.size), stride)
        self.baseline: Baseline | None = self.proxy.baseline() if self.proxy else None
        self.guard: dict[str, str] = {"outcome": "completed", "reason": ""}
        self.global_step = sum(r.get("steps", 0) for r in state.records.values())
        self.save_s = 0.0  # seconds spent in save_last (this call), left out of the reported wall clock

    # --- checkpoints ------------------------------------------------------------------------------------------------

    def _state_json(self, loop: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "completed": self.state.completed,
            "records": self.state.records,
            "current": self.state.current,
            "loop": loop,
            "baseline": self.baseline.as_dict() if self.baseline else None,
            "config_hash": config_hash(self.cfg),
            "world_size": self.dist.world,
        }

    def save_last(self, loop: dict[str, Any] | None, optimizer=None, ema: dict | None = None) -> None:
        t_save = time.perf_counter()
        weights = dict(self.state.eval_weights)
        if ema is not None and self.state.current is not None:
            weights[STAGE_MODULE[self.state.current]] = ema
        if self.dist.is_main:
            save_run_checkpoint(
                self.run.last,
                modules=self.state.modules,
                eval_weights=weights,
                state=self._state_json(loop),
                step=loop["step"] if loop else 0,
                optimizer=optimizer,
            )
        self.save_s += time.perf_counter() - t_save
        where = f"{self.state.current} step {loop['step']}" if loop and self.state.current else "end of stage"
        self.state.last_saved = f"last good checkpoint: {self.run.last} ({where})"

    # --- stages -----------------------------------------------------------------------------------------------------

    def run_stages(self, to_run: list[str]) -> None:
        self.to_run = to_run
        for name in to_run:
            if name in self.state.completed:
                continue
            if self.guard["outcome"] == "early_stop":
                break
            self._prerequisites(name)
            self._run_stage(name)

    def _prerequisites(self, name: str) -> None:
        needs = {"diff_residual": ["operator"], "consistency_distill": ["operator", "diff_residual"]}.get(name, [])
        missing = [s for s in needs if s not in self.state.completed]
        if missing:
            raise UserInputError(
                f"--stage {name}: needs the {', '.join(missing)} stage(s) trained first "
                f"(no finished {missing[0]} in {self.run.last}); run --stage {missing[0]} or --stage all"
            )

    def _build(self, name: str) -> st.StagePlan:
        env, state, seed = self.env, self.state, self.cfg.run.seed
        resuming = state.current == name and state.resume is not None
        torch.manual_seed(seed + STAGES.index(name))  # a stage's initial weights do not depend on earlier stages
        if name == "operator":
            if not resuming:
                spec, stats = self.store.spec, self.store.stats()
                state.modules["operator"] = operator_class(self.cfg).build(self.cfg, spec, stats).to(self.dev)
            return st.operator_plan(env, state.modules["operator"], self.proxy)
        if name == "steady_prior":
            if not resuming:
                state.modules["steady_prior"] = st.new_steady_prior(env)
            return st.steady_plan(env, state.modules["steady_prior"])
        operator = state.eval_copy("operator").to(self.dev)
        if name == "diff_residual":
            if not resuming:
                state.modules["corrector"] = st.new_corrector(env, operator)
            return st.residual_plan(env, state.modules["corrector"], operator)
        teacher = state.eval_copy("corrector").to(self.dev)
        if not resuming:
            state.modules["student"] = teacher.make_student().train()
            for p in state.modules["student"].parameters():
                p.requires_grad_(True)
        return st.distill_plan(env, state.modules["student"], teacher, operator)

    def _run_stage(self, name: str) -> None:
        state = self.state
        if state.current != name:
            state.current, state.resume = name, None
        for module in state.modules.values():
            module.to(self.dev)
        plan = self._build(name)
        if state.resume is not None and state.resume.get("rng") is not None:
            restore_rng(state.resume["rng"])  # cosmetic: every step reseeds from (seed, stage, step, rank)
        ctx = LoopContext(
            cfg=self.cfg,
            device=self.dev,
            dist=self.dist,
            sinks=self.sinks,
            save=lambda loop, opt, ema: self.save_last(loop, opt, ema),
            last_checkpoint=lambda: state.last_saved,
            baseline=self.baseline if name == "operator" else None,
            batch_tokens=self.batch_tokens,
            global_offset=self.global_step,
            progress=self.progress,
            on_progress=self.on_progress,
            position=(self.to_run.index(name), len(self.to_run)) if name in self.to_run else (0, 1),
        )
        outcome: StageOutcome = run_stage(plan, ctx, state.resume)
        state.eval_weights[STAGE_MODULE[name]] = outcome.eval_weights
        state.records[name] = {**outcome.metrics, "steps": outcome.steps, "outcome": outcome.guard.outcome}
        if plan.time_budget_s is not None:
            state.records[name]["time_budget"] = {
                "budget_s": plan.time_budget_s,
                "wall_s": outcome.wall_s,
                "planned_steps": plan.total_steps,
                "stopped": outcome.out_of_time,
            }
        if outcome.guard.reason:
            state.records[name]["guard"] = outcome.guard.reason
        if outcome.guard.outcome == "early_stop":
            self.guard = {"outcome": "early_stop", "reason": f"operator: {outcome.guard.reason}"}
        self.global_step += outcome.steps
        state.completed.append(name)
        state.current, state.resume = None, None
        self.save_last(None)

    # --- the end ----------------------------------------------------------------------------------------------------

    def summary(self, wall_s: float, aborted: str | None = None) -> dict[str, Any]:
        guard = {"outcome": "aborted", "reason": aborted} if aborted else self.guard
        return {
            "run_id": self.run.root.name,
            "stages": self.state.records,
            "completed": self.state.completed,
            "baseline": self.baseline.as_dict() if self.baseline else None,
            "guard": guard["outcome"],
            "guard_reason": guard["reason"],
            "wall_clock_s": wall_s,
            "checkpoint_s": self.save_s,
            "world_size": self.dist.world,
        }

    def finish(self, wall_s: float, aborted: str | None = None) -> dict[str, Any]:
        metrics = self.summary(wall_s, aborted)
        if aborted is None and self.state.eval_weights:
            modules = {n: m for n, m in self.state.modules.items() if n in self.state.eval_weights}
            save_run_checkpoint(
                self.run.final,
                modules=modules,
                eval_weights=self.state.eval_weights,
                state=self._state_json(None),
                step=self.global_step,
                final=True,
            )
        self.run.write_json("metrics.json", json.loads(json.dumps(metrics, default=float)))
        self.run.write_notes(run_notes(self.cfg, metrics))
        return metrics
