"""``ups evaluate``: score a trained checkpoint (or a registered model) beside persistence on a config's task.

For every split (``eval.splits``: test and OOD) and seed: roll the model out on the decoded physical fields, draw its
ensemble when it has a corrector (``eval.ensemble_size`` members, for ECE/CRPS/spread-skill), and score it; the
persistence baseline is scored on the same inputs and targets. Writes ``<prefix>.json`` (run provenance and every
metric row), ``<prefix>.csv`` (the rows) and ``<prefix>.html`` (an offline report with rollout panels, energy
spectra, correlation against time and a calibration diagram). Optionally ingests the model's rows into the results
store (``--leaderboard-run-id``) and logs the scoreboard to Weights & Biases, offline (``--wandb``).

Progress goes to stderr, one line as each rollout starts (split and seed, elapsed, an ETA from the rollouts done),
when stderr is a terminal or with ``--progress``.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ups.errors import UserInputError

ROW_COLUMNS = ("model", "task", "split", "seed", "metric", "horizon", "value")
BASELINE = "persistence"
HEADLINE = ("nrmse", "rollout_horizon", "conservation_gap", "spectral_error", "ece")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a checkpoint beside persistence; write JSON/CSV and an HTML report")
    p.add_argument("--config", required=True, help="UPS config (data.task, data.size, eval.*, run.seed, run.model)")
    p.add_argument(
        "--checkpoint", "--operator", dest="checkpoint", help="a trained run directory or checkpoint directory"
    )
    p.add_argument(
        "--ttc", action="store_true", help="roll the checkpoint out with test-time search (needs --checkpoint)"
    )
    p.add_argument(
        "--model", help="without --checkpoint: registered model name, overriding run.model (built untrained)"
    )
    p.add_argument("--data", help="an existing Zarr store; default: generate/reuse the config's dataset in the cache")
    p.add_argument("--cache-dir", default=".ups_cache")
    p.add_argument("--output-prefix", required=True, help="writes <prefix>.json, <prefix>.csv and <prefix>.html")
    p.add_argument("--splits", help="comma-separated splits to score (default: eval.splits)")
    p.add_argument("--seeds", help="comma-separated sampling seeds, e.g. 0,1,2 (default: run.seed)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="a line on stderr per rollout with an ETA (default: when stderr is a terminal)",
    )  # fmt: skip
    p.add_argument("--timing-repeats", type=int, default=5, help="timed rollouts per score (median; default 5)")
    p.add_argument("--leaderboard-run-id", help="also ingest the model's scores into the results store under this id")
    p.add_argument("--leaderboard-label", help="the model's label in the rows, report and leaderboard")
    p.add_argument("--db", default="reports/results.duckdb")
    p.add_argument(
        "--wandb", "--leaderboard-wandb", dest="wandb", action="store_true",
        help="also log the scoreboard to Weights & Biases (offline unless WANDB_MODE says otherwise)",
    )  # fmt: skip
    p.add_argument("--wandb-project", "--leaderboard-wandb-project", dest="wandb_project",
                   help="W&B project (default: logging.wandb_project)")  # fmt: skip
    p.set_defaults(func=run_evaluate)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserInputError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise UserInputError(f"{flag}: no value given")
    return list(dict.fromkeys(values))


def _import_wandb() -> Any:
    try:
        return importlib.import_module("wandb")
    except ImportError:
        raise UserInputError("--wandb: wandb is not installed (pip install ups[wandb])") from None


def _load_checkpoint_model(path: str, ttc: bool) -> Any:
    """``ups.inference.load_surrogate(path, ttc=ttc)``; one line when the checkpoint or the package is missing."""
    if not Path(path).exists():
        raise UserInputError(f"--checkpoint {path}: no such file or directory")
    try:
        inference = importlib.import_module("ups.inference")
    except ModuleNotFoundError as err:
        if err.name not in ("ups.inference", None):
            raise  # a dependency of ups.inference is missing: a real error, keep its traceback
        raise UserInputError("--checkpoint needs ups.inference, which this installation of ups does not have") from None
    return inference.load_surrogate(path, ttc=ttc)


def _check_checkpoint_task(path: str, model: Any, task: str, store: Any) -> None:
    """The checkpoint's task, fields and grid must be the config's and the data's."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise TypeError(f"{type(model).__name__} exposes no task spec (.spec) to check the checkpoint against")
    if spec.task != task:
        raise UserInputError(f"--checkpoint {path}: trained on task {spec.task!r}, but the config says {task!r}")
    data = store.spec
    if tuple(spec.fields) != tuple(data.fields) or tuple(spec.grid_shape) != tuple(data.grid_shape):
        raise UserInputError(
            f"--checkpoint {path}: trained on fields {list(spec.fields)} on a {tuple(spec.grid_shape)} grid, but the"
            f" data {store.path} has {list(data.fields)} on {tuple(data.grid_shape)}"
        )


def _open_store(args: argparse.Namespace, cfg: Any, splits: list[str]) -> Any:
    from ups.data.generate import cached_dataset
    from ups.data.store import DatasetStore

    if args.data:
        store = DatasetStore.open(args.data)
    else:
        store = DatasetStore.open(cached_dataset(cfg.data.task, cfg.data.size, cfg.data.seed, args.cache_dir))
    if store.spec.task != cfg.data.task:
        raise UserInputError(f"data {store.path}: task {store.spec.task!r}, but the config says {cfg.data.task!r}")
    missing = [s for s in splits if s not in store.splits]
    if missing:
        raise UserInputError(f"data {store.path}: no split {missing[0]!r} (has {', '.join(store.splits)})")
    store.verify()  # the content hash, before any score is computed from the data
    return store


def _build_model(args: argparse.Namespace, cfg: Any, store: Any) -> tuple[Any, str]:
    """``(model, name)``: the checkpoint's surrogate (name from the config it was trained with, ``+ttc`` with test-time
    search), or the registered model ``--model`` / ``run.model`` built untrained."""
    from ups.models import MODELS

    if args.checkpoint:
        model = _load_checkpoint_model(args.checkpoint, args.ttc)
        _check_checkpoint_task(args.checkpoint, model, cfg.data.task, store)
        if args.ttc and getattr(model, "corrector", None) is None:
            raise UserInputError(f"--ttc: checkpoint {args.checkpoint} has no corrector to search with (operator only)")
        trained_cfg = getattr(model, "config", None) or cfg
        return model, trained_cfg.run.model + ("+ttc" if args.ttc else "")
    name = args.model or cfg.run.model
    model = MODELS.get(name).build(cfg, store.spec, store.stats())
    if model.num_parameters() > 0:
        print(f"note: {name} is built untrained (no --checkpoint); its scores are those of random weights")
    return model, name


def _seconds(s: float) -> str:
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class _Progress:
    """One stderr line as each of ``total`` rollouts starts: which, the time so far and an ETA from those done."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done = total, enabled, 0
        self.t0 = time.perf_counter()

    def start(self, what: str) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        eta = f", ETA ~{_seconds(elapsed / self.done * (self.total - self.done))}" if self.done else ""
        line = f"ups evaluate: {what} ({self.done + 1}/{self.total}), {_seconds(elapsed)} elapsed{eta}"
        print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.enabled:
            elapsed = _seconds(time.perf_counter() - self.t0)
            print(f"ups evaluate: {self.done} rollout(s) scored in {elapsed}", file=sys.stderr, flush=True)


def _rows(label: str, result: Any) -> list[dict]:
    return [
        {"model": label, "task": result.task, "split": result.split, "seed": result.seed, "metric": v.metric,
         "horizon": v.horizon, "value": v.value}
        for v in result.values
    ]  # fmt: skip


def _for_seed(rows: list[dict], seed: int) -> list[dict]:
    """The rows of a deterministic rollout, repeated under another seed (the values do not depend on it)."""
    return [r | {"seed": seed} for r in rows]


def _score_split(
    model: Any,
    label: str,
    baseline: Any,
    store: Any,
    split: str,
    seeds: list[int],
    cfg: Any,
    score: dict,
    progress: _Progress | None = None,
) -> tuple[list[dict], Any]:
    """Metric rows of the model (every seed) and of persistence on one split, and the report curves (first seed).

    A model with a corrector is rolled out and sampled per seed (``eval.ensemble_size`` members drawn with that
    seed); any other model is deterministic, so it is rolled out once and its rows repeat for every seed. So do the
    baseline's.
    """
    import torch

    from ups.eval.evaluate import ensemble_sampler, rollout_split, sample_split, score_split
    from ups.eval.report_data import split_curves

    corrector = getattr(model, "corrector", None)
    steps = cfg.eval.steps_for(cfg.data.size)
    progress = progress or _Progress(1, enabled=False)
    rows: list[dict] = []
    for seed in seeds:
        if corrector is None and rows:
            rows += _for_seed([r for r in rows if r["seed"] == seeds[0]], seed)
            continue
        shown = f"seed {seed}" if corrector is not None or len(seeds) == 1 else f"seeds {','.join(map(str, seeds))}"
        progress.start(f"{label} on {split}, {shown}")
        torch.manual_seed(seed)
        pred, target = rollout_split(model, store, split, steps)
        draw = ensemble_sampler(model, cfg.eval.ensemble_size, seed)
        samples = None if draw is None else sample_split(draw, store, split, pred.shape[1], model.n_input)
        rows += _rows(label, score_split(model, store, split, pred, target, samples=samples, seed=seed, **score))
        if seed == seeds[0]:
            first = (pred, target, samples)
        progress.finish()
    pred, target, samples = first
    base_pred = pred
    if baseline is not None:
        base_pred, _ = rollout_split(baseline, store, split, pred.shape[1])
        base_rows = _rows(BASELINE, score_split(baseline, store, split, base_pred, target, seed=seeds[0], **score))
        rows += [r for seed in seeds for r in _for_seed(base_rows, seed)]
    curves = split_curves(
        split, pred.numpy(), target.numpy(), base_pred.numpy(), store.spec,
        samples=None if samples is None else samples.numpy(),
    )  # fmt: skip
    return rows, curves


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ups.config import config_hash, load_config
    from ups.models.persistence import Persistence
    from ups.provenance import code_hash, environment, git_info
    from ups.report.eval_report import render_eval_report

    started = time.time()
    cfg = load_config(args.config)
    wandb = _import_wandb() if args.wandb else None  # before the work: a missing package fails in seconds
    if args.ttc and not args.checkpoint:
        raise UserInputError("--ttc: test-time search needs a trained --checkpoint")
    if args.checkpoint and args.model:
        raise UserInputError("--model builds an untrained registered model; with --checkpoint, leave it out")
    if args.timing_repeats < 1:
        raise UserInputError(f"--timing-repeats: at least 1, got {args.timing_repeats}")
    seeds = _int_list(args.seeds, "--seeds") if args.seeds else [cfg.run.seed]
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else list(cfg.eval.splits)
    if not splits:
        raise UserInputError("--splits: no split given")
    store = _open_store(args, cfg, splits)

    device = torch.device(args.device)
    torch.manual_seed(seeds[0])
    model, name = _build_model(args, cfg, store)
    if hasattr(model, "to"):
        model.to(device)
    label = args.leaderboard_label or name
    if label == BASELINE and name != BASELINE:
        raise UserInputError(f"--leaderboard-label: {BASELINE!r} names the baseline rows; choose another label")
    baseline = None
    if name != BASELINE:
        baseline = Persistence()
        baseline.n_input = model.n_input  # the same input frames, so both are scored on the same target frames

    score = {
        "horizons": cfg.eval.horizons_for(cfg.data.size), "device": device, "timing_repeats": args.timing_repeats,
    }  # fmt: skip
    rows, curves = [], []
    rollouts = len(splits) * (len(seeds) if getattr(model, "corrector", None) is not None else 1)
    progress = _Progress(rollouts, sys.stderr.isatty() if args.progress is None else args.progress)
    for split in splits:
        split_rows, curve = _score_split(model, label, baseline, store, split, seeds, cfg, score, progress)
        rows += split_rows
        curves.append(curve)
    progress.close()

    git = git_info()
    run = {
        "run_id": args.leaderboard_run_id or f"eval-{config_hash(cfg)[:10]}-{git['commit'][:8]}",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": f"eval_{cfg.data.size}",
        "label": label,
        **git,
        "config_hash": config_hash(cfg),
        "data_hash": store.content_sha256,
        "code_hash": code_hash(),
        "seeds": seeds,
        "env": environment()
        | {"candidate": {"model": name, "checkpoint": args.checkpoint, "ttc": args.ttc, "config": args.config}},
        "duration_s": time.time() - started,
        "notes": "",
    }
    prefix = Path(args.output_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {ext: prefix.with_name(prefix.name + ext) for ext in (".json", ".csv", ".html")}
    paths[".json"].write_text(json.dumps({"run": run, "metrics": rows}, indent=2) + "\n")
    with paths[".csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROW_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    ensemble = getattr(model, "corrector", None) is not None
    header = [
        ("model", label), ("run id", run["run_id"]), ("task", cfg.data.task), ("config", args.config),
        ("checkpoint", args.checkpoint or f"none (registered model {name!r}, built untrained)"),
        ("test-time search", "on" if args.ttc else "off"), ("data", str(store.path)),
        ("seeds", ", ".join(map(str, seeds))),
        ("ensemble", f"{cfg.eval.ensemble_size} corrector samples" if ensemble else "none (no corrector)"),
        ("commit", f"{git['commit']}{' (dirty)' if git.get('dirty') else ''}"), ("created", run["created_at"]),
    ]  # fmt: skip
    render_eval_report(paths[".html"], label=label, header=header, rows=rows, curves=curves)
    print(f"wrote {paths['.json']}, {paths['.csv']} and {paths['.html']}")
    _print_headline(rows, splits[0], seeds[0])

    if args.leaderboard_run_id:
        from ups.report.leaderboard import render_leaderboard
        from ups.store.results import ResultsStore

        store_db = ResultsStore(args.db)
        model_only = [{k: v for k, v in r.items() if k != "model"} for r in rows if r["model"] == label]
        store_db.ingest(run, [r | {"run_id": run["run_id"]} for r in model_only], [])
        outputs = render_leaderboard(store_db, Path(args.db).parent)
        print(f"leaderboard row {run['run_id']} -> {args.db}; " + ", ".join(str(p) for p in outputs.values()))
    if wandb is not None:
        _log_wandb(wandb, args.wandb_project or cfg.logging.wandb_project, cfg, run, rows, prefix.parent)
    return 0


def _print_headline(rows: list[dict], split: str, seed: int) -> None:
    from ups.metrics import format_metric_name

    for r in rows:
        if r["split"] == split and r["seed"] == seed and r["metric"] in HEADLINE and r["value"] is not None:
            name = format_metric_name(r["metric"], r["horizon"])
            print(f"  {r['model']:<16} {r['split']:<10} {name:<20} {r['value']:.6g}")


def _log_wandb(wandb: Any, project: str, cfg: Any, run: dict, rows: list[dict], out_dir: Path) -> None:
    """One W&B run (offline unless ``WANDB_MODE`` says otherwise): the rows as a table, and per (model, split,
    metric) the mean over seeds in the run summary."""
    wandb_run = wandb.init(
        project=project, name=run["run_id"], job_type="evaluate", dir=str(out_dir),
        mode=os.environ.get("WANDB_MODE", "offline"), config=cfg.model_dump(mode="json"),
    )  # fmt: skip
    table = wandb.Table(columns=list(ROW_COLUMNS), data=[[r[c] for c in ROW_COLUMNS] for r in rows])
    from ups.metrics import format_metric_name

    sums: dict[str, list[float]] = {}
    for r in rows:
        if r["value"] is not None and math.isfinite(r["value"]):
            metric = format_metric_name(r["metric"], r["horizon"])
            sums.setdefault(f"{r['model']}/{r['split']}/{metric}", []).append(r["value"])
    wandb_run.log({"scoreboard": table})
    wandb_run.summary.update({key: sum(v) / len(v) for key, v in sums.items()})
    wandb_run.finish()
