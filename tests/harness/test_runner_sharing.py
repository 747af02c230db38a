"""xdist workers that reach the same task share its seeds: a seed another process is training is skipped for the
free ones first (then the task's baselines), and collected once that process is done (not trained twice, not waited
for in line)."""

import json
import threading

from filelock import FileLock

import ups.training.trainer as trainer
from ups.eval.evaluate import EvalResult


def _finish(run_dir):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps({"wall_clock_s": 1.0}))


def test_a_seed_in_another_workers_hands_is_skipped_first_and_collected_after(tiny_runner, monkeypatch):
    trained, seed1_done, released = [], threading.Event(), threading.Event()

    def fake_train(cfg, *, run_dir, **kwargs):
        trained.append(run_dir.name.split("-burgers1d-")[0] + f"-s{cfg.run.seed}")
        _finish(run_dir)
        if "candidate" in run_dir.name and cfg.run.seed == 1:
            seed1_done.set()
            released.wait(timeout=10)  # the other worker is done with seed 0 before this one goes on

    monkeypatch.setattr(trainer, "train", fake_train)
    runner = tiny_runner(baselines={"twin": {"config": "configs/cand/{task}.yaml", "budget": "candidate"}})
    run0 = runner.trained("candidate", "burgers1d", 0)  # learn seed 0's run dir, then make it "not trained yet"
    (run0 / "metrics.json").unlink()
    trained.clear()

    held, overlapped = threading.Event(), []

    def other_worker():  # another worker training seed 0
        with FileLock(str(run0) + ".lock"):
            held.set()
            overlapped.append(seed1_done.wait(timeout=10))  # the runner trains seed 1 while seed 0 is held here
            _finish(run0)
        released.set()

    thread = threading.Thread(target=other_worker)
    thread.start()
    held.wait(timeout=10)
    assert runner.trained("candidate", "burgers1d", 0, wait=False) is None
    monkeypatch.setattr(runner, "build", lambda name, task, seed, split: None)
    monkeypatch.setattr(runner, "_score", lambda model, task, seed, split: EvalResult(task, split, seed, (), 1.0))
    evaluation = runner.evaluation("burgers1d")
    thread.join()
    assert overlapped == [True]
    # seed 0 came from the other worker's run dir; the baseline was trained while waiting, before its own test
    assert trained == ["candidate-s1", "twin-s0"]
    assert sorted(r.seed for r in evaluation.results) == [0, 1]
