"""One per pytest process: builds suite runners, and on the controlling process ingests and reports at the end."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ups.errors import UserInputError
from ups.harness.progress import SuiteProgress
from ups.harness.runner import SuiteRunner
from ups.harness.session import (
    RunInfo,
    ShardWriter,
    dedupe_metric_rows,
    promote_run,
    read_shards,
    remove_shards,
)
from ups.harness.verdict import TIME_UNIT, Headline, gate_lines, markdown
from ups.metrics import parse_metric_name
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
        self.headline = Headline()
        self.judged_against = "the working tree's champions (no --ups-champion-ref)"
        self.progress = SuiteProgress(config, self.reports_dir / ".progress" / self.stamp, self.worker_id)

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
                progress=self.progress.reporter,
            )
            self.progress.watch(runner)
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
        self.progress.close()
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
            self.headline.add_rows(meta["label"] if meta.get("role") == "baseline" else "candidate", metric_rows)
            gate_rows = tables["gate_results"]
            run_row["env"]["candidate"] = meta["candidate"]
            checkpoints: dict[str, dict[int, str]] = {}
            for r in tables.get("checkpoints", []):
                checkpoints.setdefault(r["task"], {})[int(r["seed"])] = r["path"]
            run_row["env"]["checkpoints"] = checkpoints
            run_row["env"]["scoring"] = {
                r["task"]: {"data_hash": r["data_hash"], "scoring_hash": r["scoring_hash"]}
                for r in tables.get("scoring", [])
            }
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
        self._write_markdown()
        return 0

    def _write_markdown(self) -> None:
        """The verdict as Markdown, to ``--ups-markdown FILE`` and, in CI, appended to ``$GITHUB_STEP_SUMMARY``."""
        targets = [p for p in (self.config.getoption("--ups-markdown"), os.environ.get("GITHUB_STEP_SUMMARY")) if p]
        if not targets or not self._report:
            return
        text = "\n".join(
            markdown(suite=run_row["suite"], run_id=run_row["run_id"], judged_against=self.judged_against,
                     headline=self.headline, gate_rows=gate_rows, notes=notes)
            for run_row, gate_rows, notes in self._report
        )  # fmt: skip
        for i, target in enumerate(targets):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if i else "w") as f:  # the step summary is shared by the job's steps: append
                f.write(text)
            self.outputs["verdict (Markdown)" if i == 0 else "step summary"] = path

    def _ingest_champions(self, store, meta: dict) -> None:
        """Put the champions this run was judged against on the leaderboard, as one run labelled ``champion``."""
        runner = self.runner(f"{meta['suite']}_eval")
        champs = {t: c for t in meta["tasks"] if (c := runner.champion(t)) is not None}
        if not champs:
            return
        rows = [
            {"task": task, "split": split, "seed": int(seed), "metric": parse_metric_name(key)[0],
             "horizon": parse_metric_name(key)[1], "value": value, "per_traj": stat.per_traj.get(seed)}
            for task, champ in champs.items()
            for split, metrics in champ.metrics.items()
            for key, stat in metrics.items()
            for seed, value in stat.per_seed.items()
        ]  # fmt: skip
        self.headline.add_rows("champion", rows)
        if runner.source.ref is not None:
            self.judged_against = f"the champions of `{runner.source.ref}` ({(runner.source.commit() or '')[:10]})"
        rescored = [f"{t}: {c.rescored}" for t, c in champs.items() if c.rescored]
        rescored += [f"{t}: {c.stale}" for t, c in champs.items() if c.stale]
        first = next(iter(champs.values()))
        identity = [(c.run_id, c.data_hash, c.scoring_hash) for c in champs.values()]  # a re-scored one is another run
        where = runner.source.where(runner.champion_path("<task>"))
        run = {
            "run_id": f"champion-{meta['suite']}-{canonical_hash(sorted(identity))[:12]}",
            "created_at": first.date,
            "suite": meta["suite"],
            "label": "champion",
            "commit": first.commit,
            "config_hash": canonical_hash(sorted(c.config_hash for c in champs.values())),
            "seeds": sorted({r["seed"] for r in rows}),
            "env": {"champions": {t: c.run_id for t, c in champs.items()}},
            "notes": "\n".join([f"the champion snapshots a run was gated against ({where})", *rescored]),
        }
        store.ingest(run, rows, [], replace=True)

    def summary(self, tr) -> None:
        if self.is_worker or not self._report:
            return
        tr.section("UPS verdict")
        tr.write_line(f"judged against {self.judged_against}")
        header, rows = self.headline.table()
        if rows:
            tr.write_line(f"headline: test {self.headline.metric}, mean over seeds (seeds in brackets)")
            widths = [max(len(c) for c in col) + 2 for col in zip(header, *rows, strict=True)]
            for row in (header, *rows):
                tr.write_line("".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        cols = ("candidate", "champion", "threshold")
        fmt_header = f"{'task':<14}{'gate':<11}{'metric':<26}{'rule':<20}" + "".join(f"{c:>11}" for c in cols)
        for run_row, gate_rows, notes in self._report:
            tr.write_line(f"run {run_row['run_id']} ({run_row['label']}, suite {run_row['suite']}); "
                          f"times in {TIME_UNIT}")  # fmt: skip
            tr.write_line(fmt_header + "  outcome")
            for task, gate_set, metric, rule, cand, champ, thr, outcome, _ in gate_lines(gate_rows):
                numbers = f"{cand:>11}{champ:>11}{thr:>11}"
                tr.write_line(f"{task:<14}{gate_set:<11}{metric:<26}{rule:<20}{numbers}  {outcome}")
            for note in notes:
                tr.write_line(note)
        tr.write_line(f"results: {self.db_path}")
        for name, path in self.outputs.items():
            tr.write_line(f"{name}: {path}")
