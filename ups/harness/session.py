"""One harness session per pytest process (kept in ``config.stash[SESSION]``): its suites and their runners, its run
ids and shards, and, on the controlling process, the end: ingest, promotion, leaderboard and verdict.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ups.errors import UserInputError
from ups.harness.progress import SuiteProgress
from ups.harness.promotion import promote_run
from ups.harness.sources import Source
from ups.harness.storage import IngestedRun, SessionShards, ingest_sessions, read_shards
from ups.harness.suite import SUITE_FILES, SuiteConfig, load_suite
from ups.harness.suite_files import SuiteFiles
from ups.harness.verdict import Headline, markdown, write_summary
from ups.metrics.seeds import rows_from_stats
from ups.provenance import canonical_hash, code_hash, environment, git_info

if TYPE_CHECKING:
    from ups.harness.runner import SuiteRunner

SUITE_MARKERS = ("small_eval", "full_eval")


def selected_markers(config: pytest.Config) -> list[str]:
    markexpr = config.getoption("-m") or ""
    return [m for m in SUITE_MARKERS if m in markexpr]


def load_selected_suite(config: pytest.Config, marker: str) -> SuiteConfig:
    """The suite of ``marker``; with a champion ref, the suite file as it is at that ref (a pull request cannot
    change the suite it is judged by)."""
    root = Path(config.rootpath)
    path = config.getoption("--ups-suite") or SUITE_FILES[marker.removesuffix("_eval")]
    return load_suite(root / path, source=Source(root, config.getoption("--ups-champion-ref")))


def check_inputs(config: pytest.Config) -> None:
    """Load and check what the selected suites depend on, before a session or any worker starts: the suite file, the
    gate file, every champion and its checkpoints' sha256 (all without torch), then the model names and their
    training configs.

    Raises:
        UserInputError: the first bad input, in one line.
    """
    root = Path(config.rootpath)
    ref, cache_dir = config.getoption("--ups-champion-ref"), root / config.getoption("--ups-cache-dir")
    suites = [load_selected_suite(config, marker) for marker in selected_markers(config)]
    for suite in suites:
        SuiteFiles(suite, root=root, source=Source(root, ref), cache_dir=cache_dir).check()
    from ups.harness.runner import SuiteRunner  # torch: only once the files are known to be good

    for suite in suites:
        runner = SuiteRunner(suite, root=root, cache_dir=cache_dir, champion_ref=ref)
        for name in ("candidate", *runner.baselines):
            runner.identity(name)


class Session:
    """What one pytest process knows of the harness session. xdist workers share the controlling process's stamp
    (``workerinput["ups_stamp"]``), so every process of a session writes to the same shard folder."""

    def __init__(self, config: pytest.Config):
        self.config = config
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        self.worker_id = workerinput["workerid"] if workerinput else "main"
        if workerinput:  # one share of the cores per xdist worker: more threads than cores slow small tensor ops
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workerinput.get("workercount", 1))))
        now = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.stamp = workerinput["ups_stamp"] if workerinput else now
        self.root = Path(config.rootpath)
        opt = config.getoption
        self.reports_dir = self.root / opt("--ups-reports-dir")
        self.db_path = self.root / opt("--ups-results-db")
        self.champion_ref = opt("--ups-champion-ref")
        self.promote = bool(opt("--ups-promote"))
        self.started = time.time()
        self.shards = SessionShards(self.reports_dir / ".shards", self.stamp, self.worker_id)
        self.errors: list[str] = []  # load errors met during collection, reported once it ends
        self.progress = SuiteProgress(config, self.reports_dir / ".progress" / self.stamp, self.worker_id)
        self._suites: dict[str, SuiteConfig] = {}
        self._runners: dict[str, SuiteRunner] = {}
        self._provenance: dict | None = None
        # filled by finish(), read by the terminal summary
        self.report: list[tuple[IngestedRun, list[str]]] = []
        self.tidy_notes: list[str] = []
        self.outputs: dict[str, Path] = {}
        self.headline = Headline()
        self.judged_against = "the working tree's champions (no --ups-champion-ref)"

    def suite(self, marker: str) -> SuiteConfig:
        if marker not in self._suites:
            self._suites[marker] = load_selected_suite(self.config, marker)
        return self._suites[marker]

    def provenance(self) -> dict:
        """What every run of this session shares: commit, code hash, environment and start time."""
        if self._provenance is None:
            self._provenance = git_info(self.root) | {
                "code_hash": code_hash(),
                "env": environment(),
                "started": self.started,
            }
        return self._provenance

    def runner(self, marker: str) -> SuiteRunner:
        if marker not in self._runners:
            from ups.harness.runner import SuiteRunner  # torch: only once the input files are known to be good

            opt = self.config.getoption
            seeds = [int(s) for s in opt("--ups-seeds").split(",")] if opt("--ups-seeds") else None
            runner = SuiteRunner(
                self.suite(marker),
                root=self.root,
                cache_dir=self.root / opt("--ups-cache-dir"),
                seeds=seeds,
                device=opt("--ups-device"),
                champion_ref=self.champion_ref,
                label=opt("--ups-label"),
                stamp=self.stamp,
                run_meta=self.provenance(),
                sink=self.shards.writer,
                progress=self.progress.reporter,
            )
            self.progress.watch(runner)
            self._runners[marker] = runner
        return self._runners[marker]

    # ---- end of the session (controlling process only) -----------------------------------------------------------

    def finish(self) -> int:
        """Store what the session ran (all or nothing), promote where asked and allowed, render the leaderboard and
        the verdict. Returns the exit status to impose (2 on bad input), else 0."""
        if self.is_worker:
            self.progress.close()
            self.shards.release()
            return 0
        try:
            try:
                self._record_champions()
            finally:
                self.progress.close()  # after: the controlling process of -n 2 makes its runner (watched) only now
            self.shards.complete()
            return self._finish()
        except UserInputError as err:
            self.config.get_terminal_writer().line(f"ups: {err}", red=True)
            return 2
        finally:
            self.shards.release()

    def _finish(self) -> int:
        from ups.report.leaderboard import render_leaderboard
        from ups.store.results import ResultsStore

        if not self.shards.dir.is_dir():
            return 0  # ran nothing (a killed session's leftovers wait for the next session that runs a suite)
        store = ResultsStore(self.db_path)
        runs, self.tidy_notes = ingest_sessions(store, self.shards)
        for run in runs:
            role = run.meta["role"]
            solver = run.meta.get("candidate", {}).get("solver") if role == "baseline" else None
            if solver is None or solver == {"coarsen": 1, "step": 1.0}:  # the ladder's cheaper settings: solver table
                self.headline.add_rows(run.run_row["label"] if role == "baseline" else role, run.metric_rows)
            if role != "candidate":
                continue
            self.headline.add_solver_rows(run.metric_rows)
            notes = [line for line in run.run_row["notes"].splitlines() if line]
            if self.promote:
                notes += promote_run(store, run_row=run.run_row, metric_rows=run.metric_rows,
                                     gate_rows=run.gate_rows, champions=Path(run.meta["champions"]))  # fmt: skip
            self.report.append((run, notes))
        if runs or self.tidy_notes:
            self.outputs = render_leaderboard(store, self.reports_dir)
        self._write_markdown()
        return 0

    def _record_champions(self) -> None:
        """Add to the shards, as one run labelled ``champion`` per suite, the champions each candidate that ran was
        judged against (re-scored ones with their new numbers)."""
        ran: dict[str, set[str]] = {}  # suite -> tasks its candidate ran, from the shards of every process
        for run_dir in sorted(self.shards.dir.glob("*/")) if self.shards.dir.is_dir() else []:
            tables = read_shards(run_dir)
            if tables.get("run_meta") and tables["run_meta"][0].get("role") == "candidate":
                ran.setdefault(tables["run_meta"][0]["suite"], set()).update(r["task"] for r in tables["metrics"])
        for suite, tasks in ran.items():
            runner = self.runner(f"{suite}_eval")  # the controlling process of -n 2 has not made one yet
            champs = {t: c for t in runner.suite.tasks if t in tasks and (c := runner.champion(t)) is not None}
            if not champs:
                continue
            if runner.source.ref is not None:
                self.judged_against = f"the champions of `{runner.source.ref}` ({(runner.source.commit() or '')[:10]})"
            identity = [(c.run_id, c.data_hash, c.scoring_hash) for c in champs.values()]  # a re-scored one differs
            run_id = f"champion-{runner.suite.suite}-{canonical_hash(sorted(identity))[:12]}"
            first = next(iter(champs.values()))
            rows = [r | {"run_id": run_id, "task": t} for t, c in champs.items() for r in rows_from_stats(c.metrics)]
            notes = [f"{t}: {c.rescored or c.stale}" for t, c in champs.items() if c.rescored or c.stale]
            where = runner.source.where(runner.champion_path("<task>"))
            run = {
                "run_id": run_id,
                "created_at": first.date,
                "suite": runner.suite.suite,
                "label": "champion",
                "commit": first.commit,
                "config_hash": canonical_hash(sorted(c.config_hash for c in champs.values())),
                "seeds": sorted({r["seed"] for r in rows}),
                "env": {"champions": {t: c.run_id for t, c in champs.items()}},
                "notes": "\n".join([f"the champion snapshots a run was gated against ({where})", *notes]),
            }
            write = self.shards.writer(run_id)
            write("run_meta", {"role": "champion", "run_id": run_id})
            write("run", run)
            for row in rows:
                write("metrics", row)

    def _write_markdown(self) -> None:
        """The verdict as Markdown, to ``--ups-markdown FILE`` and, in CI, appended to ``$GITHUB_STEP_SUMMARY``."""
        targets = [p for p in (self.config.getoption("--ups-markdown"), os.environ.get("GITHUB_STEP_SUMMARY")) if p]
        if not targets or not self.report:
            return
        text = "\n".join(
            markdown(suite=run.run_row["suite"], run_id=run.run_row["run_id"], judged_against=self.judged_against,
                     headline=self.headline, gate_rows=run.gate_rows, notes=notes)
            for run, notes in self.report
        )  # fmt: skip
        for i, target in enumerate(targets):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if i else "w") as f:  # the step summary is shared by the job's steps: append
                f.write(text)
            self.outputs["verdict (Markdown)" if i == 0 else "step summary"] = path

    def summary(self, tr) -> None:
        if self.is_worker or not (self.report or self.tidy_notes):
            return
        write_summary(tr, self)


SESSION = pytest.StashKey[Session]()
