"""``ups evaluate``: score a model on a config's task and splits; JSON/CSV out, optionally a leaderboard row."""

from __future__ import annotations

import argparse
import csv
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from ups.errors import UserInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="roll a model out on the config's task, score it, write JSON/CSV")
    p.add_argument("--config", required=True, help="UPS config (data.task, data.size, eval.*, run.model)")
    p.add_argument("--model", help="registered model name, overriding run.model")
    p.add_argument("--data", help="an existing Zarr store; default: generate/reuse the config's dataset in the cache")
    p.add_argument("--cache-dir", default=".ups_cache")
    p.add_argument("--output-prefix", required=True, help="writes <prefix>.json and <prefix>.csv")
    p.add_argument("--device", default="cpu")
    p.add_argument("--leaderboard-run-id", help="also ingest the scores into the results store under this run id")
    p.add_argument("--leaderboard-label", help="label of that leaderboard row (default: the model name)")
    p.add_argument("--db", default="reports/results.duckdb")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ups.config import config_hash, load_config
    from ups.data.generate import cached_dataset
    from ups.data.store import DatasetStore
    from ups.eval.evaluate import evaluate_split
    from ups.models import MODELS
    from ups.provenance import code_hash, environment, git_info

    started = time.time()
    cfg = load_config(args.config)
    name = args.model or cfg.run.model
    model_cls = MODELS.get(name)
    if args.data:
        store = DatasetStore.open(args.data)
    else:
        store = DatasetStore.open(cached_dataset(cfg.data.task, cfg.data.size, cfg.data.seed, args.cache_dir))
    if store.spec.task != cfg.data.task:
        raise UserInputError(f"data {store.path}: task {store.spec.task!r}, but the config says {cfg.data.task!r}")
    missing = [s for s in cfg.eval.splits if s not in store.splits]
    if missing:
        raise UserInputError(f"data {store.path}: no split {missing[0]!r} (has {', '.join(store.splits)})")

    torch.manual_seed(cfg.run.seed)
    model = model_cls.build(cfg, store.spec, store.stats())
    steps, horizons = cfg.eval.steps_for(cfg.data.size), cfg.eval.horizons_for(cfg.data.size)
    rows = []
    for split in cfg.eval.splits:
        result = evaluate_split(
            model, store, split, steps=steps, horizons=horizons, seed=cfg.run.seed, device=torch.device(args.device)
        )
        rows += [
            {"task": result.task, "split": split, "seed": result.seed, "metric": v.metric, "horizon": v.horizon,
             "value": v.value}
            for v in result.values
        ]  # fmt: skip

    git = git_info()
    run = {
        "run_id": args.leaderboard_run_id or f"eval-{config_hash(cfg)[:10]}-{git['commit'][:8]}",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": f"eval_{cfg.data.size}",
        "label": args.leaderboard_label or name,
        **git,
        "config_hash": config_hash(cfg),
        "data_hash": store.content_sha256,
        "code_hash": code_hash(),
        "seeds": [cfg.run.seed],
        "env": environment() | {"candidate": {"model": name}},
        "duration_s": time.time() - started,
        "notes": "",
    }
    prefix = Path(args.output_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps({"run": run, "metrics": rows}, indent=2) + "\n")
    with prefix.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["task", "split", "seed", "metric", "horizon", "value"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {prefix.with_suffix('.json')} and {prefix.with_suffix('.csv')}")
    for r in rows:
        if r["split"] == cfg.eval.splits[0] and r["metric"] in ("nrmse", "conservation_gap", "rollout_horizon"):
            suffix = f"@{r['horizon']}" if r["horizon"] is not None else ""
            print(f"  {r['split']:<8} {r['metric'] + suffix:<20} {r['value']}")

    if args.leaderboard_run_id:
        from ups.report.leaderboard import render_leaderboard
        from ups.store.results import ResultsStore

        store_db = ResultsStore(args.db)
        store_db.ingest(run, [r | {"run_id": run["run_id"]} for r in rows], [])
        outputs = render_leaderboard(store_db, Path(args.db).parent)
        print(f"leaderboard row {run['run_id']} -> {args.db}; " + ", ".join(str(p) for p in outputs.values()))
    return 0
