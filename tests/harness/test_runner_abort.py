"""A candidate whose training aborts (a guard fired) fails its task's gates with the trainer's line, and is not
retrained for every gate test."""

import json

import pytest

import ups.training.trainer as trainer
from ups.harness.runner import CandidateFailed, SuiteRunner
from ups.harness.suite import SuiteConfig
from ups.training.guards import TrainingAborted

CONFIG = "data: {task: burgers1d, size: small}\nlatent: {dim: 16, tokens: 16}\ndiffusion: {enabled: false}\n"


def test_an_aborted_training_fails_the_task_once_with_the_guards_line(tmp_path, monkeypatch):
    (tmp_path / "configs" / "cand").mkdir(parents=True)
    (tmp_path / "configs" / "cand" / "burgers1d.yaml").write_text(CONFIG)
    suite = SuiteConfig.model_validate(
        {
            "suite": "small",
            "gates": "gates/small.yaml",
            "champions": "champions/small",
            "seeds": [0, 1],
            "candidate": {"config": "configs/cand/{task}.yaml"},
            "tasks": {"burgers1d": {"splits": ["test"], "steps": 4, "horizons": [1, 4]}},
        }
    )
    calls = []

    def aborting_train(cfg, *, run_dir, **kwargs):  # what the trainer does when a guard fires
        calls.append(cfg.run.seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        reason = "operator step 7: non-finite loss (loss=nan)"
        (run_dir / "metrics.json").write_text(json.dumps({"aborted": reason}))
        raise TrainingAborted(reason)

    monkeypatch.setattr(trainer, "train", aborting_train)
    runner = SuiteRunner(suite, root=tmp_path, cache_dir=tmp_path / "cache")
    line = r"candidate on burgers1d \(seed 0\): training aborted: operator step 7"
    for _ in range(2):  # the second gate test of the task gets the remembered failure
        with pytest.raises(CandidateFailed, match=line):
            runner.evaluation("burgers1d")
    assert calls == [0]
    fresh = SuiteRunner(suite, root=tmp_path, cache_dir=tmp_path / "cache")  # another process: read from the run dir
    with pytest.raises(CandidateFailed, match="non-finite loss"):
        fresh.evaluation("burgers1d")
    assert calls == [0]
