"""The suite's live progress: workers' events become one line per run, throttled, with a suite ETA."""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import pytest

from ups.harness.progress import ProgressBoard, ProgressPrinter, RunReporter, TerminalLines, planned_runs
from ups.training.sinks import ProgressEvent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(worker: str, model: str, task: str, seed: int, event: ProgressEvent, run_s: float) -> dict:
    """What a worker's RunReporter writes for ``event``."""
    return (
        {"worker": worker, "workers": 2, "model": model, "task": task, "seed": seed} | asdict(event) | {"run_s": run_s}
    )


def step(stage: str, done: int, total: int, elapsed: float, kind: str = "step", **kw) -> ProgressEvent:
    return ProgressEvent(kind, stage, done, total, elapsed, position=kw.pop("position", (0, 2)), **kw)


def test_two_workers_print_start_throttled_steps_end_and_a_suite_eta():
    clock = Clock()
    board = ProgressBoard(planned=4, interval_s=10.0, clock=clock)
    a = ("gw0", "candidate", "burgers1d", 0)
    b = ("gw1", "unet", "ns2d", 0)
    events = [
        (0, a, step("operator", 0, 100, 0.0, "start"), 0.0),
        (1, b, step("operator", 0, 400, 0.0, "start", position=(0, 1), time_budget_s=60.0), 0.5),
        (5, a, step("operator", 25, 100, 5.0, loss=0.5), 5.0),  # within 10 s of a's start line: quiet
        (12, a, step("operator", 50, 100, 12.0, loss=0.25), 12.0),
        (13, b, step("operator", 50, 400, 12.0, position=(0, 1), time_budget_s=60.0, loss=2.0), 12.5),
        (20, a, step("operator", 100, 100, 20.0, "end", loss=0.125, val_nrmse=0.1875), 20.0),
        (20, a, step("diff_residual", 0, 40, 0.0, "start", position=(1, 2)), 20.0),
        (40, a, ProgressEvent("run_end", elapsed_s=40.0, outcome="completed"), 40.0),
    ]
    lines = []
    for now, who, event, run_s in events:
        clock.now = now
        lines.append(board.feed(record(*who, event, run_s)))

    assert lines[2] is None and lines[5] is None  # throttled steps
    assert lines[0] == (
        "ups [gw0] candidate burgers1d seed 0: operator 0/100 (stage 1/2) started, 0s; "
        "suite training ETA: estimating, 0/4 runs trained"
    )
    assert lines[1].startswith("ups [gw1] unet ns2d seed 0: operator 0/400 started, 0s;")
    # a is half through the first of its two stages after 12 s: projected 48 s, 36 s left; b has no projection
    # yet (step 0): the typical 48 s, 47.5 s left; 2 runs queued: (36 + 47.5 + 2 * 48) / 2 workers = 89.75 s
    assert lines[3] == (
        "ups [gw0] candidate burgers1d seed 0: operator 50/100 (stage 1/2), loss 0.25, 12s; "
        "suite training ETA ~1m30s, 0/4 runs trained"
    )
    # b: 12 s of its 60 s budget (further than its steps say): projected 62.5 s, 50 s left; median projection 55.25 s
    # (36 + 50 + 2 * 55.25) / 2 = 98.25 s
    assert lines[4] == (
        "ups [gw1] unet ns2d seed 0: operator 50/400, loss 2, 12s; suite training ETA ~1m38s, 0/4 runs trained"
    )
    # a starts its second stage at 20 s: projected 40 s, 20 s left; (20 + 50 + 2 * 51.25) / 2 = 86.25 s
    assert lines[6] == (
        "ups [gw0] candidate burgers1d seed 0: diff_residual 0/40 (stage 2/2) started, val nRMSE 0.1875, 20s; "
        "suite training ETA ~1m26s, 0/4 runs trained"
    )
    # a finished in 40 s: b has 40 - 12.5 s left, 2 runs of 40 s are queued: (27.5 + 80) / 2 = 53.75 s
    assert lines[7] == (
        "ups [gw0] candidate burgers1d seed 0: completed in 40s, val nRMSE 0.1875; "
        "suite training ETA ~54s, 1/4 runs trained"
    )


def test_an_aborted_run_counts_as_trained_but_not_in_the_median():
    board = ProgressBoard(planned=2, clock=Clock())
    who = ("main", "candidate", "euler1d", 1)
    board.feed(record(*who, step("operator", 0, 10, 0.0, "start", position=(0, 1)), 0.0))
    line = board.feed(record(*who, ProgressEvent("run_end", elapsed_s=3.0, outcome="aborted"), 3.0))
    assert (
        line == "ups [main] candidate euler1d seed 1: aborted in 3s; suite training ETA: estimating, 1/2 runs trained"
    )
    assert board.durations == [] and board.eta_s() is None


def test_printer_tails_the_workers_files_and_removes_the_folder(tmp_path):
    folder = tmp_path / ".progress" / "stamp"
    workers = [RunReporter(folder, w, workers=2, step_every_s=0.0) for w in ("gw0", "gw1")]
    lines: list[str] = []
    printer = ProgressPrinter(folder, ProgressBoard(planned=2, interval_s=0.0), lines.append)
    printer.poll()  # nothing reported yet (a warm run): no folder, no line
    assert lines == [] and not folder.exists()
    runs = [workers[0]("candidate", "burgers1d", 0), workers[1]("fno", "burgers1d", 0)]
    runs[0](step("operator", 0, 8, 0.0, "start", position=(0, 1)))
    runs[1](step("operator", 0, 8, 0.0, "start", position=(0, 1)))
    with (folder / "gw0.jsonl").open("a") as f:
        f.write('{"worker": "gw0", "workers"')  # a line a worker is still writing is read once it is whole
    printer.poll()
    assert [line.split(":")[0] for line in lines] == [
        "ups [gw0] candidate burgers1d seed 0",
        "ups [gw1] fno burgers1d seed 0",
    ]
    with (folder / "gw0.jsonl").open("a") as f:
        f.write(': 2, "model": "candidate", "task": "burgers1d", "seed": 0, "kind": "step", "stage": "operator", ')
        f.write('"step": 4, "total": 8, "elapsed_s": 1.0, "loss": null, "val_nrmse": 0.5, "run_s": 1.0}\n')
    with (folder / "gw1.jsonl").open("a") as f:
        f.write("not json\n")  # skipped: progress never stops the session
    runs[1](ProgressEvent("run_end", elapsed_s=2.0, outcome="completed"))
    for reporter in workers:
        reporter.close()
    printer.stop()
    assert "operator 4/8" in lines[2] and "val nRMSE 0.5" in lines[2]
    assert "fno burgers1d seed 0: completed in" in lines[3] and "1/2 runs trained" in lines[3]
    assert not (tmp_path / ".progress").exists()


def test_a_reporter_writes_steps_at_most_once_a_second_but_every_start_and_end(tmp_path):
    reporter = RunReporter(tmp_path, "gw0", step_every_s=3600.0)
    report = reporter("candidate", "ns2d", 2)
    report(step("operator", 0, 9, 0.0, "start"))
    for i in range(1, 10):
        report(step("operator", i, 9, 0.1 * i))
    report(step("operator", 9, 9, 1.0, "end"))
    report(ProgressEvent("run_end", elapsed_s=1.0, outcome="completed"))
    reporter.close()
    kinds = [line.split('"kind": "')[1].split('"')[0] for line in (tmp_path / "gw0.jsonl").read_text().splitlines()]
    assert kinds == ["start", "step", "end", "run_end"]


def test_terminal_lines_break_pytest_s_line_of_dots_once(tmp_path):
    reporter = SimpleNamespace(_tw=SimpleNamespace(width_of_current_line=0))
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter))
    out = (tmp_path / "out.txt").open("w")
    write = TerminalLines(config, stream=out)  # writes through a duplicate of the stream's file descriptor
    write("first")
    reporter._tw.width_of_current_line = 33  # pytest wrote "benchmarks/test_small_eval.py ..."
    write("second")
    write("third")  # pytest wrote nothing since: no blank line
    write.close()
    out.close()
    assert (tmp_path / "out.txt").read_text() == "first\n\nsecond\nthird\n"


@pytest.mark.parametrize(
    ("baselines", "expected"),
    [
        ({}, 2),  # the candidate: 1 task x 2 seeds
        ({"persistence": {"model": "persistence"}}, 2),  # nothing to train
        ({"unet": {"config": "configs/cand/{task}.yaml", "budget": "candidate"}}, 3),  # + 1 task x the first seed
    ],
)
def test_planned_runs_count_every_trained_model_task_and_seed(tiny_runner, baselines, expected):
    assert planned_runs(tiny_runner(baselines=baselines)) == expected
