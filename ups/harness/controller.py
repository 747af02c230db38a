"""One per pytest process: builds suite runners, and on the controlling process ingests and reports at the end."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ups.errors import UserInputError
from ups.harness.runner import SuiteRunner
from ups.harness.session import (
    RunInfo,
    ShardWriter,
    dedupe_metric_rows,
    promote_run,
    read_shards,
    remove_shards,
)
from ups.provenance import canonical_hash, git_info


class Controller:
    def __init__(self, config: pytest.Config):
        self.config = config
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        self.worker_id = workerinput["workerid"] if workerinput else "main"
        if workerinput:  # one share of the cores per xdist worker: more threads than cores slow small tensor ops
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workerinput.get("workercount", 1))))
        self.stamp = (
            workerinput["ups_stamp"] if workerinput else datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        )
        self.root = Path(config.rootpath)
        self.reports_dir = self.root / config.getoption("--ups-reports-dir")
        self.db_path = self.root / config.getoption("--ups-results-db")
        self.started = time.time()
        self.suites: dict = {}
        self.errors: list[str] = []
        self._runners: dict[str, SuiteRunner] = {}
        self._report: list[tuple[dict, list[dict], list[str]]] = []  # (run row, gate rows, notes) per run
        self.outputs: dict[str, Path] = {}

    def runner(self, marker: str) -> SuiteRunner:
        if marker not in self._runners:
            from ups.harness.plugin import suite_of

            suite = suite_of(self.config, marker)
            opt = self.config.getoption
            seeds = [int(s) for s in opt("--ups-seeds").split(",")] if opt("--ups-seeds") else None
            commit = git_info(self.root)["commit"]
            runner = SuiteRunner(
                suite,
                root=self.root,
                cache_dir=self.root / opt("--ups-cache-dir"),
                seeds=seeds,
                device=opt("--ups-device"),
                champion_ref=opt("--ups-champion-ref"),
            )
            config_hash = runner.config_hash
            run_id = f"{suite.suite}-{config_hash[:10]}-{commit[:8]}-{self.stamp}"
            runner.run_id = run_id
            runner.record = ShardWriter(self.reports_dir / ".shards" / run_id / f"{self.worker_id}.jsonl")
            runner.run_meta = {
                "suite": suite.suite,
                "label": opt("--ups-label") or runner.label,
                "config_hash": config_hash,
                "candidate": runner.candidate_config,
                "seeds": runner.seeds,
                "tasks": list(suite.tasks),
                "champions": str(self.root / suite.champions),
                "role": "candidate",
            }
            for name in runner.baselines:
                bid = f"{suite.suite}-{name}-{canonical_hash(runner.identity(name))[:10]}-{commit[:8]}-{self.stamp}"
                runner.sinks[name] = (bid, ShardWriter(self.reports_dir / ".shards" / bid / f"{self.worker_id}.jsonl"))
            self._runners[marker] = runner
        return self._runners[marker]

    # ---- end of run (controlling process only) -------------------------------------------------------------------

    def finish(self) -> int:
        if self.is_worker:
            return 0
        shard_dirs = sorted((self.reports_dir / ".shards").glob(f"*-{self.stamp}"))
        if not shard_dirs:
            return 0
        try:
            return self._finish(shard_dirs)
        except UserInputError as err:
            self.config.get_terminal_writer().line(f"ups: {err}", red=True)
            return 2

    def _finish(self, shard_dirs: list[Path]) -> int:
        from ups.report.leaderboard import render_leaderboard
        from ups.store.results import ResultsStore

        store = ResultsStore(self.db_path)
        for shard_dir in shard_dirs:
            tables = read_shards(shard_dir)
            if not tables["metrics"]:  # the suite was collected but nothing of it ran
                remove_shards(shard_dir)
                continue
            meta = tables["run_meta"][0]
            data_hashes = {r["task"]: r["content_sha256"] for r in tables.get("datasets", [])}
            failsafes = [
                f"fail-safe {f['action']} on {f['task']} {f['metric']} ({f['split']}): {f['before']:.4g} -> "
                f"{f['after']:.4g}, gate would {f['outcome_with_remedy']}"
                if f["before"] is not None and f["after"] is not None
                else f"fail-safe {f['action']} on {f['task']} {f['metric']}: {f['outcome_with_remedy']}"
                for f in tables.get("failsafes", [])
            ]
            info = RunInfo(shard_dir.name, meta["suite"], meta["label"], meta["config_hash"], started=self.started)
            info.created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            refs = [r["machine_ref_s"] for r in tables.get("eval_meta", [])]
            run_row = info.row(
                seeds=meta["seeds"],
                data_hash=canonical_hash(data_hashes),
                machine_ref_s=sorted(refs)[len(refs) // 2] if refs else None,
                root=self.root,
                notes="\n".join(failsafes),
            )
            metric_rows = dedupe_metric_rows(tables["metrics"])
            gate_rows = tables["gate_results"]
            run_row["env"]["candidate"] = meta["candidate"]
            run_row["env"]["checkpoints"] = {r["task"]: r["path"] for r in tables.get("checkpoints", [])}
            store.ingest(run_row, metric_rows, gate_rows)
            notes = list(failsafes)
            if meta.get("role") == "baseline":
                continue
            self._ingest_champions(store, meta)
            if self.config.getoption("--ups-promote"):
                champions = Path(meta["champions"])
                notes = promote_run(
                    store, run_row=run_row, metric_rows=metric_rows, gate_rows=gate_rows, champions=champions
                )
            self._report.append((run_row, gate_rows, notes))
            remove_shards(shard_dir)
        self.outputs = render_leaderboard(store, self.reports_dir)
        return 0

    def _ingest_champions(self, store, meta: dict) -> None:
        """Put the champions this run was judged against on the leaderboard, as one run labelled ``champion``."""
        runner = self.runner(f"{meta['suite']}_eval")
        champs = {t: c for t in meta["tasks"] if (c := runner.champion(t)) is not None}
        if not champs:
            return
        rows = [
            {"task": task, "split": split, "seed": int(seed), "metric": key.split("@")[0],
             "horizon": int(key.split("@")[1]) if "@" in key else None, "value": value}
            for task, champ in champs.items()
            for split, metrics in champ.metrics.items()
            for key, stat in metrics.items()
            for seed, value in stat.per_seed.items()
        ]  # fmt: skip
        first = next(iter(champs.values()))
        run = {
            "run_id": f"champion-{meta['suite']}-{canonical_hash(sorted(c.run_id for c in champs.values()))[:12]}",
            "created_at": first.date,
            "suite": meta["suite"],
            "label": "champion",
            "commit": first.commit,
            "config_hash": canonical_hash(sorted(c.config_hash for c in champs.values())),
            "seeds": sorted({r["seed"] for r in rows}),
            "env": {"champions": {t: c.run_id for t, c in champs.items()}},
            "notes": "the champion snapshots a run was gated against (champions/<suite>/<task>.json)",
        }
        store.ingest(run, rows, [], replace=True)

    def summary(self, tr) -> None:
        if self.is_worker or not self._report:
            return
        tr.section("UPS scoreboard vs champion")
        fmt = lambda x: "n/a" if x is None else f"{x:.4g}"  # noqa: E731
        cols = ("candidate", "champion", "threshold")
        header = f"{'task':<14}{'gate':<11}{'metric':<26}{'rule':<20}" + "".join(f"{c:>11}" for c in cols) + "  outcome"
        for run_row, gate_rows, notes in self._report:
            tr.write_line(f"run {run_row['run_id']} ({run_row['label']}, suite {run_row['suite']})")
            tr.write_line(header)
            for g in sorted(
                gate_rows, key=lambda g: (g["task"], g["gate_set"] != "regression", g["metric"], g["rule"])
            ):
                tr.write_line(
                    f"{g['task']:<14}{g['gate_set']:<11}{g['metric']:<26}{g['rule']:<20}{fmt(g['candidate']):>11}"
                    f"{fmt(g['champion']):>11}{fmt(g['threshold']):>11}  {g['outcome']}"
                )
            for note in notes:
                tr.write_line(note)
        tr.write_line(f"results: {self.db_path}")
        for name, path in self.outputs.items():
            tr.write_line(f"{name}: {path}")
