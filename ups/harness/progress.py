"""Live progress of a suite's training runs: one line per run as it goes, from every worker, with a suite ETA.

Under pytest-xdist a worker's stdout and stderr never reach the terminal, and pytest captures output during a test,
so the lines cannot be printed where the training happens. Instead:

- every process (each xdist worker, or the one serial process) hands ``train(progress=...)`` a
  :class:`RunReporter` callback per run, which appends the run's :class:`~ups.training.sinks.ProgressEvent` s as
  JSON lines to ``<reports>/.progress/<stamp>/<worker>.jsonl`` (steps at most once a second);
- the controlling process tails that folder in a daemon thread (:class:`ProgressPrinter`) and writes what
  :class:`ProgressBoard` makes of the events to a duplicate of the terminal's file descriptor taken before any
  capture: each stage's start and each run's end always, otherwise at most one line per run every ``interval_s``.

Cached runs never call ``train``, so a warm suite prints nothing. The suite ETA is deliberately simple: the runs
still to train (every training run the suite plans, cached ones included, so it is an upper bound, less those
finished) times the median duration of the finished runs (before one has finished: the running runs' own
projections from their stage and step), divided by the number of workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ups.training.sinks import ProgressCallback, ProgressEvent

STEP_EVERY_S = 1.0  # a worker writes a step event at most this often per run (stage starts and ends always)
LINE_EVERY_S = 10.0  # the terminal gets at most one step line per run this often (2 workers: a line every ~5 s)


def planned_runs(runner: Any) -> int:
    """How many training runs a :class:`~ups.harness.runner.SuiteRunner`'s suite does: every task and seed of the
    candidate when it is trained, and of each trained baseline on the baseline seeds."""
    tasks = len(runner.suite.tasks)
    runs = tasks * len(runner.seeds) if runner.entry("candidate").config else 0
    return runs + sum(tasks * len(runner.baseline_seeds) for name in runner.baselines if runner.entry(name).config)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# --- worker side ----------------------------------------------------------------------------------------------------


class RunReporter:
    """Writes the progress of this process's training runs to ``<directory>/<worker>.jsonl``.

    ``reporter(model, task, seed)`` is the callback for one run, to pass as ``train(progress=...)``.
    """

    def __init__(self, directory: Path, worker: str, workers: int = 1, step_every_s: float = STEP_EVERY_S):
        self.path = directory / f"{worker}.jsonl"
        self.worker, self.workers, self.step_every_s = worker, workers, step_every_s
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def __call__(self, model: str, task: str, seed: int) -> ProgressCallback:
        t0 = time.monotonic()
        last_step = -float("inf")

        def report(event: ProgressEvent) -> None:
            nonlocal last_step
            now = time.monotonic()
            if event.kind == "step":
                if now - last_step < self.step_every_s:
                    return
                last_step = now
            run = {"worker": self.worker, "workers": self.workers, "model": model, "task": task, "seed": seed}
            self._write(run | asdict(event) | {"run_s": now - t0})

        return report

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._file is None:  # created on the first event: a warm run writes nothing
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps(record) + "\n")  # one write of one whole line, so a reader sees whole lines
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# --- controlling process: what to print -----------------------------------------------------------------------------


@dataclass
class _Run:
    record: dict[str, Any]
    printed_at: float = -float("inf")
    val_nrmse: float | None = None
    finished: bool = False

    @property
    def run_s(self) -> float:
        return self.record["run_s"]

    def projected_s(self) -> float | None:
        """The run's duration extrapolated from how far it is (stages counted equal; a time budget counts)."""
        r = self.record
        index, stages = r.get("position") or (0, 1)
        within = r["step"] / r["total"] if r.get("total") else 0.0
        if r.get("time_budget_s"):
            within = max(within, r["elapsed_s"] / r["time_budget_s"])
        done = (index + min(within, 1.0)) / max(stages, 1)
        return self.run_s / done if done >= 0.02 else None


@dataclass
class ProgressBoard:
    """The runs seen so far and the line each new event deserves (``feed``); the suite ETA (``eta_s``).

    ``planned``: the number of training runs the suite does (a callable is asked each time: suites register late).
    """

    planned: Callable[[], int] | int = 0
    interval_s: float = LINE_EVERY_S
    clock: Callable[[], float] = time.monotonic
    runs: dict[tuple, _Run] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)  # completed runs' wall clocks
    finished: int = 0
    workers: int = 1

    def _planned(self) -> int:
        return self.planned() if callable(self.planned) else self.planned

    def eta_s(self) -> float | None:
        active = [r for r in self.runs.values() if not r.finished]
        projections = [p for r in active if (p := r.projected_s()) is not None]
        typical = statistics.median(self.durations or projections) if self.durations or projections else None
        if typical is None:
            return None
        queued = max(0, self._planned() - self.finished - len(active))
        left = queued * typical
        for run in active:
            expected = typical if self.durations else (run.projected_s() or typical)
            left += max(0.0, expected - run.run_s)
        return left / max(1, self.workers)

    def feed(self, record: dict[str, Any]) -> str | None:
        """Take one event record; return the line to print for it, or None (a step within ``interval_s``)."""
        key = (record["worker"], record["model"], record["task"], record["seed"])
        self.workers = max(self.workers, int(record.get("workers") or 1))
        run = self.runs.get(key)
        if run is None or run.finished:  # a new run (or the same one trained again)
            run = self.runs[key] = _Run(record)
        if record["kind"] == "run_end":
            run.record = run.record | {"run_s": record["run_s"]}
            run.finished = True
            self.finished += 1
            if record["outcome"] in ("completed", "early_stop"):
                self.durations.append(record["run_s"])
            return self._line(run, f"{record['outcome']} in {_duration(record['run_s'])}", "")
        run.record = record
        if record.get("val_nrmse") is not None:
            run.val_nrmse = record["val_nrmse"]
        now = self.clock()
        if record["kind"] != "start" and now - run.printed_at < self.interval_s:
            return None
        run.printed_at = now
        index, stages = record.get("position") or (0, 1)
        what = f"{record['stage']} {record['step']}/{record['total']}"
        what += f" (stage {index + 1}/{stages})" if stages > 1 else ""
        what += " started" if record["kind"] == "start" else ""
        if record.get("loss") is not None:
            what += f", loss {record['loss']:.4g}"
        return self._line(run, what, f", {_duration(record['run_s'])}")

    def _line(self, run: _Run, what: str, elapsed: str) -> str:
        r = run.record
        val = f", val nRMSE {run.val_nrmse:.4g}" if run.val_nrmse is not None else ""
        eta = self.eta_s()
        planned = self._planned()
        suite = f"suite training ETA ~{_duration(eta)}" if eta is not None else "suite training ETA: estimating"
        suite += f", {self.finished}/{planned} runs trained" if planned else ""
        return f"ups [{r['worker']}] {r['model']} {r['task']} seed {r['seed']}: {what}{val}{elapsed}; {suite}"


# --- controlling process: tailing the workers' files ----------------------------------------------------------------


class ProgressPrinter:
    """A daemon thread that tails ``<directory>/*.jsonl`` every ``poll_s`` and writes the board's lines."""

    def __init__(self, directory: Path, board: ProgressBoard, write: Callable[[str], None], poll_s: float = 0.5):
        self.directory, self.board, self.write, self.poll_s = directory, board, write, poll_s
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ups-progress", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        """Read what the workers appended since the last poll and write a line for each event that earns one.
        Progress is a courtesy: an unreadable file or line, or a terminal that is gone, is skipped silently."""
        for path in sorted(self.directory.glob("*.jsonl")):
            try:
                with path.open("r", encoding="utf-8") as f:
                    f.seek(self._offsets.get(path, 0))
                    text = self._partial.pop(path, "") + f.read()
                    self._offsets[path] = f.tell()
            except OSError:
                continue
            *lines, rest = text.split("\n")
            if rest:  # a line still being written: finish it next time
                self._partial[path] = rest
            for line in lines:
                try:
                    if line.strip() and (out := self.board.feed(json.loads(line))) is not None:
                        self.write(out)
                except (OSError, ValueError, KeyError, TypeError):
                    continue

    def stop(self) -> None:
        """Stop the thread, print what is left, and remove the folder."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self.directory.is_dir():
            self.poll()
            shutil.rmtree(self.directory, ignore_errors=True)
        parent = self.directory.parent  # .progress/, when no other session is using it
        if parent.is_dir() and not any(parent.iterdir()):
            with contextlib.suppress(OSError):  # another session may have just made its folder
                parent.rmdir()


class TerminalLines:
    """Whole lines to the terminal from any thread, even while pytest captures the process's stdout: written to a
    duplicate of stdout's file descriptor taken now (call it before capturing starts). When pytest's terminal
    reporter is in the middle of a line of progress dots, a newline comes first."""

    def __init__(self, config: Any = None, stream: TextIO | None = None):
        self.config = config
        stream = stream or sys.stdout
        try:
            self.fd: int | None = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError):  # no real file behind it (an in-process pytest run)
            self.fd = None
        self.stream = stream
        self._width: int | None = None  # the reporter's line width right after our last line

    def __call__(self, line: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter") if self.config is not None else None
        width = tr._tw.width_of_current_line if tr is not None else 0
        text = ("\n" if width and width != self._width else "") + line + "\n"
        self._width = width
        if self.fd is None:
            self.stream.write(text)
            self.stream.flush()
        else:
            os.write(self.fd, text.encode())

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --- one per pytest process -----------------------------------------------------------------------------------------


class SuiteProgress:
    """The session's progress plumbing: every process reports (``reporter``, what the suite runners get); the
    controlling process also prints, from the first ``watch(runner)`` until ``close()``."""

    def __init__(self, config: Any, directory: Path, worker: str):
        workerinput = getattr(config, "workerinput", None)
        self.config, self.directory = config, directory
        self.controlling = workerinput is None
        workers = int(workerinput.get("workercount", 1)) if workerinput else 1
        self.reporter = RunReporter(directory, worker, workers)
        self._runners: list[Any] = []
        self._printer: ProgressPrinter | None = None
        self._out = TerminalLines(config) if self.controlling else None  # before any capture starts

    def _counted(self, runner: Any) -> bool:
        """Whether the suite runs: its marker is selected, or no -m is given and it is not full_eval (skipped)."""
        marker = f"{runner.suite.suite}_eval"
        markexpr = self.config.getoption("-m") or ""
        return marker in markexpr if markexpr else marker != "full_eval"

    def planned(self) -> int:
        return sum(planned_runs(r) for r in self._runners if self._counted(r))

    def watch(self, runner: Any) -> None:
        """Count ``runner``'s training runs in the suite ETA and, on the controlling process, start printing."""
        if not self.controlling:
            return
        self._runners.append(runner)
        if self._printer is None:
            self._printer = ProgressPrinter(self.directory, ProgressBoard(self.planned), self._out)
            self._printer.start()

    def close(self) -> None:
        self.reporter.close()
        if self._printer is not None:
            self._printer.stop()
            self._printer = None
        if self._out is not None:
            self._out.close()
            self._out = None
