"""``ups promote RUN``: rewrite the champion snapshots of a stored run where every promotion rule passed."""

from __future__ import annotations

import argparse
from pathlib import Path

from ups.errors import UserInputError
from ups.harness.promotion import promote_run
from ups.harness.suite import SUITE_FILES, load_suite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("promote", help="promote a stored run's candidate to champion where the promotion rules pass")
    p.add_argument("run_id")
    p.add_argument("--db", default="reports/results.duckdb")
    p.add_argument("--suite-file", help="suite file naming the champions folder (default: the run's suite)")
    p.set_defaults(func=run_promote)


def run_promote(args: argparse.Namespace) -> int:
    from ups.store.results import ResultsStore

    store = ResultsStore(args.db, create=False)
    runs = [r for r in store.runs() if r["run_id"] == args.run_id]
    if not runs:
        raise UserInputError(f"results store {args.db}: no run {args.run_id!r}")
    run = runs[0]
    suite = load_suite(args.suite_file or SUITE_FILES.get(run["suite"], f"configs/suites/{run['suite']}_eval.yaml"))
    if run["suite"] != suite.suite:
        raise UserInputError(f"run {args.run_id} is from suite {run['suite']!r}, the suite file is {suite.suite!r}")
    run["created_at"] = str(run["created_at"])
    notes = promote_run(
        store,
        run_row=run,
        metric_rows=store.metrics(args.run_id),
        gate_rows=store.gate_results(args.run_id),
        champions=Path(suite.champions),
    )
    for note in notes or [f"nothing promoted: run {args.run_id} does not pass every promotion rule"]:
        print(note)
    return 0
