"""A candidate whose training aborts (a guard fired) fails its task's gates with the trainer's line, and is not
retrained for every gate test."""

import json

import pytest

import ups.training.trainer as trainer
from ups.harness.runner import CandidateFailed
from ups.training.guards import TrainingAborted


def test_an_aborted_training_fails_the_task_once_with_the_guards_line(tiny_runner, monkeypatch):
    calls = []

    def aborting_train(cfg, *, run_dir, **kwargs):  # what the trainer does when a guard fires
        calls.append(cfg.run.seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        reason = "operator step 7: non-finite loss (loss=nan)"
        (run_dir / "metrics.json").write_text(json.dumps({"aborted": reason}))
        raise TrainingAborted(reason)

    monkeypatch.setattr(trainer, "train", aborting_train)
    runner = tiny_runner()
    line = r"candidate on burgers1d \(seed 0\): training aborted: operator step 7"
    for _ in range(2):  # the second gate test of the task gets the remembered failure
        with pytest.raises(CandidateFailed, match=line):
            runner.evaluation("burgers1d")
    assert calls == [0]
    fresh = tiny_runner()  # another process: read from the run dir
    with pytest.raises(CandidateFailed, match="non-finite loss"):
        fresh.evaluation("burgers1d")
    assert calls == [0]
